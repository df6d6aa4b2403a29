-- Peer lists from Consul without reloading nginx: one worker polls Consul's health API on a timer
-- and writes each upstream's peer list (with a version) into the shared dict `ha_gateway`; every
-- worker's balancer reads it from there. Consul unreachable, a bad or an empty answer: the last
-- known good list stays, the error is logged and shown on /ha-gateway/status.
local cjson = require "cjson.safe"
local http = require "ha_gateway.http"
local ipv4 = require "ha_gateway.ipv4"
local peers = require "ha_gateway.peers"

local _M = {}
local config = { upstreams = {} }
-- site.peerNetworks, compiled: where peers may be (empty: anywhere but the special ranges).
local allowed = {}
-- A Consul answer larger than this is refused (a few thousand instances fit easily).
local MAX_BODY = 4 * 1024 * 1024

local function dict() return ngx.shared.ha_gateway end

function _M.config() return config end

-- init_by_lua: seed every upstream with the runbook's servers unless a list is already there (a
-- reload keeps the shared dict and with it what Consul said last).
function _M.init(cfg)
  config = cfg
  allowed = ipv4.compile_all(cfg.peer_networks)
  local d = dict()
  for _, u in ipairs(cfg.upstreams) do
    local seed = peers.encode(peers.from_servers(u.seeds, allowed))
    if d:add("peers:" .. u.name, seed) then
      d:set("version:" .. u.name, 1)
      d:set("source:" .. u.name, "seed (runbook servers; Consul not asked yet)")
    end
  end
end

local function failed(u, msg)
  local d = dict()
  local previous = d:get("error:" .. u.name)
  d:set("error:" .. u.name, msg)
  d:set("error_at:" .. u.name, ngx.now())
  -- Logged once per change of error, not on every poll.
  if previous ~= msg then
    ngx.log(ngx.ERR, "ha-gateway: upstream ", u.name, ": ", msg, "; keeping the last known peer list")
  end
end

function _M.poll_once(u)
  local path = "/v1/health/service/" .. u.service .. "?passing=1"
  local headers = {}
  if u.token and u.token ~= "" then headers["X-Consul-Token"] = u.token end
  local res, err = http.get(u.consul.host, u.consul.port, path, headers, u.timeout_ms, MAX_BODY, u.consul.tls)
  if not res then return failed(u, "Consul unreachable: " .. err) end
  if res.status ~= 200 then
    return failed(u, "Consul answered HTTP " .. res.status .. ": " .. (res.body or ""):sub(1, 120))
  end
  local decoded, derr = cjson.decode(res.body)
  if decoded == nil then return failed(u, "Consul's answer is not JSON: " .. tostring(derr)) end
  local list, skipped = peers.from_consul(decoded, allowed)
  if not list then return failed(u, "Consul's answer: " .. skipped) end
  if #skipped > 0 then
    ngx.log(ngx.WARN, "ha-gateway: upstream ", u.name, ": skipped ", table.concat(skipped, "; "))
  end
  if #list == 0 then
    return failed(u, "Consul lists no passing instance of " .. u.service)
  end
  local d = dict()
  local encoded = peers.encode(list)
  if d:get("peers:" .. u.name) ~= encoded then
    d:set("peers:" .. u.name, encoded)
    d:incr("version:" .. u.name, 1, 0)
    ngx.log(ngx.NOTICE, "ha-gateway: upstream ", u.name, " peers now ", encoded)
  end
  d:set("source:" .. u.name, "consul")
  d:set("ok_at:" .. u.name, ngx.now())
  d:delete("error:" .. u.name)
end

local function tick(premature, u)
  if premature or ngx.worker.exiting() then return end
  local ok, err = pcall(_M.poll_once, u)
  if not ok then failed(u, "poll failed: " .. tostring(err)) end
end

-- Active health check of one peer: an HTTP GET of check.path; any answer below 500 is healthy.
local function probe(u, addr)
  local host, port = addr:match("^(.+):(%d+)$")
  local res, err = http.get(host, tonumber(port), u.check.path, nil, u.check.timeout_ms, 64 * 1024)
  if not res then return false, err end
  if res.status >= 500 then return false, "HTTP " .. res.status end
  return true
end

-- Counts consecutive results per peer; `fall` failures mark it down, `rise` successes up again.
-- A change bumps the upstream's version, so every worker's balancer rebuilds its rotation.
local function check_tick(premature, u)
  if premature or ngx.worker.exiting() then return end
  local d = dict()
  local list = peers.decode(d:get("peers:" .. u.name))
  local threads = {}
  for i, p in ipairs(list) do
    threads[i] = ngx.thread.spawn(probe, u, p.host .. ":" .. p.port)
  end
  for i, p in ipairs(list) do
    local addr = p.host .. ":" .. p.port
    local waited, ok, err = ngx.thread.wait(threads[i])
    -- A probe that raised a Lua error did not show the peer healthy.
    if not waited then ok, err = false, "health check error: " .. tostring(ok) end
    local key = u.name .. ":" .. addr
    local down = d:get("down:" .. key)
    if ok then
      d:set("fails:" .. key, 0)
      if down and d:incr("oks:" .. key, 1, 0) >= u.check.rise then
        d:delete("down:" .. key)
        d:incr("version:" .. u.name, 1, 0)
        ngx.log(ngx.NOTICE, "ha-gateway: upstream ", u.name, ": ", addr, " is healthy again")
      end
    else
      d:set("oks:" .. key, 0)
      if not down and d:incr("fails:" .. key, 1, 0) >= u.check.fall then
        d:set("down:" .. key, tostring(err))
        d:incr("version:" .. u.name, 1, 0)
        ngx.log(ngx.ERR, "ha-gateway: upstream ", u.name, ": ", addr, " failed its health check (", tostring(err), "); taken out of rotation")
      end
    end
  end
end

function _M.is_down(name, addr)
  return dict():get("down:" .. name .. ":" .. addr) ~= nil
end

-- init_worker_by_lua: worker 0 polls (one set of requests to Consul per node, not per worker).
function _M.start()
  if ngx.worker.id() ~= 0 then return end
  for _, u in ipairs(config.upstreams) do
    ngx.timer.at(0, tick, u)
    local ok, err = ngx.timer.every(u.interval, tick, u)
    if not ok then ngx.log(ngx.ERR, "ha-gateway: cannot start the poll timer for ", u.name, ": ", err) end
    if u.check then
      ok, err = ngx.timer.every(u.check.interval, check_tick, u)
      if not ok then ngx.log(ngx.ERR, "ha-gateway: cannot start the health check timer for ", u.name, ": ", err) end
    end
  end
end

return _M
