-- Gray release from Redis: chosen clients go to the canary upstream, everyone else to stable.
-- Worker 0 reads the rules from Redis every `refresh` seconds, validates and compiles them, and
-- stores the valid ones in a shared dict of their own (ha_gateway_gray: a large rule set can never evict
-- the Consul peer lists); every worker compiles them once per version and routes in set_by_lua.
-- Redis unreachable or refusing: no rules, everything goes to stable, and the error is logged
-- once and shown on /ha-gateway/status.
local cjson = require "cjson.safe"
local redis = require "ha_gateway.redis"
local gray_rules = require "ha_gateway.gray_rules"

local _M = {}
local config
local compiled, compiled_version
local checked_at = -1
local header_var, cookie_var -- ngx.var names, built once
-- How stale a worker's rules may be: Redis is read every `refresh` (1 s and up) anyway.
local RECHECK = 0.1

local function dict() return ngx.shared.ha_gateway_gray end

function _M.config() return config end

-- cfg is nil when the site has no gray release (init_by_lua calls this either way).
function _M.init(cfg)
  config = cfg
  header_var = cfg and cfg.header and ("http_" .. cfg.header) or nil
  cookie_var = cfg and cfg.cookie and ("cookie_" .. cfg.cookie) or nil
end

local function failed(msg)
  local d = dict()
  local previous = d:get("gray:error")
  d:set("gray:error", msg)
  d:set("gray:error_at", ngx.now())
  -- Rules nobody can refresh are not trusted: stable for everyone until Redis answers again.
  if d:get("gray:rules") ~= nil then
    d:delete("gray:rules")
    d:incr("gray:version", 1, 0)
  end
  if previous ~= msg then
    ngx.log(ngx.ERR, "ha-gateway: gray release: ", msg, "; all traffic goes to ", config.stable)
  end
end

function _M.poll_once()
  local k = config.key
  local replies, err = redis.pipeline(config.redis, {
    { "SMEMBERS", k .. ":ips" }, { "SMEMBERS", k .. ":values" }, { "GET", k .. ":percent" },
  })
  if not replies then return failed(err) end
  -- Sets come back in any order: sorted, an unchanged rule set encodes the same every time.
  for i = 1, 2 do
    if type(replies[i]) ~= "table" then return failed("Redis answered SMEMBERS with a non-list (is the key another type?)") end
    table.sort(replies[i])
  end
  local percent = replies[3]
  if percent == ngx.null then percent = nil end
  local rules, skipped, too_many = gray_rules.compile(replies[1], replies[2], percent)
  if not rules then return failed("refused the rule set: " .. too_many) end
  if #skipped > 0 then
    ngx.log(ngx.WARN, "ha-gateway: gray release: skipped ", #skipped, " entries: ", table.concat(skipped, "; ", 1, math.min(#skipped, 10)))
  end
  -- Only what compiled is stored: the workers never see an entry this poll refused.
  local encoded = cjson.encode({ ips = rules.valid.ips, values = rules.valid.values, percent = rules.percent })
  local d = dict()
  -- Compared by digest: a large rule set is not copied out of the dict on every poll.
  local digest = ngx.md5(encoded)
  if d:get("gray:digest") ~= digest or d:get("gray:rules") == nil then
    -- safe_set never evicts: a rule set too large for the dict is an error, not lost keys.
    local ok, err = d:safe_set("gray:rules", encoded)
    if not ok then
      return failed("cannot keep the rule set (" .. #encoded .. " bytes) in lua_shared_dict ha_gateway_gray: " .. tostring(err))
    end
    d:set("gray:digest", digest)
    d:incr("gray:version", 1, 0)
    ngx.log(ngx.NOTICE, "ha-gateway: gray release rules now ", rules.counts.ips, " ip(s), ", rules.counts.values, " value(s), ", rules.percent, "%")
  end
  d:set("gray:ok_at", ngx.now())
  if d:get("gray:error") then
    d:delete("gray:error")
    ngx.log(ngx.NOTICE, "ha-gateway: gray release: Redis answers again")
  end
end

local function tick(premature)
  if premature or ngx.worker.exiting() then return end
  local ok, err = pcall(_M.poll_once)
  if not ok then failed("poll failed: " .. tostring(err)) end
end

function _M.start()
  if not config or ngx.worker.id() ~= 0 then return end
  ngx.timer.at(0, tick)
  local ok, err = ngx.timer.every(config.refresh, tick)
  if not ok then ngx.log(ngx.ERR, "ha-gateway: cannot start the gray release timer: ", err) end
end

-- This worker's compiled rules, rebuilt when the shared version moves (looked at every RECHECK s).
function _M.rules()
  local now = ngx.now()
  if now - checked_at < RECHECK then return compiled end
  checked_at = now
  local d = dict()
  local version = d:get("gray:version") or 0
  if version ~= compiled_version then
    local raw = d:get("gray:rules")
    local decoded = raw and cjson.decode(raw)
    compiled = decoded and (gray_rules.compile(decoded.ips, decoded.values, tostring(decoded.percent))) or nil
    compiled_version = version
  end
  return compiled
end

-- set_by_lua of the site's location /: the upstream for this request, stable unless the rules choose
-- the client; then $ha_gray says why (the access log). set_by_lua, not access_by_lua: no coroutine
-- per request. The site sets $ha_gray to "-" before this runs, so a stable request writes nothing,
-- and without rules reads nothing either.
function _M.route()
  local rules = _M.rules()
  if gray_rules.empty(rules) then return config.stable end
  local var = ngx.var
  local header = header_var and var[header_var] or nil
  local cookie = cookie_var and var[cookie_var] or nil
  local client = var.remote_addr
  local bucket = ngx.crc32_long(cookie or client) % 100
  local canary, why = gray_rules.decide(rules, client, header, cookie, bucket)
  if not canary then return config.stable end
  var.ha_gray = why
  return config.canary
end

return _M
