-- /ha-gateway/status (localhost only): every discovered upstream's peers, their source, version,
-- and the last Consul error; the gray release rules in force and the last Redis error; as JSON.
local cjson = require "cjson.safe"
local discovery = require "ha_gateway.discovery"
local peers = require "ha_gateway.peers"
local gray = require "ha_gateway.gray"
local gray_rules = require "ha_gateway.gray_rules"

local _M = {}

function _M.run()
  local d = ngx.shared.ha_gateway
  local out = { node = ngx.var.hostname, upstreams = {} }
  for _, u in ipairs(discovery.config().upstreams) do
    local list = peers.decode(d:get("peers:" .. u.name))
    local shown = {}
    for i, p in ipairs(list) do
      local addr = p.host .. ":" .. p.port
      shown[i] = { address = addr, weight = p.weight, healthy = not discovery.is_down(u.name, addr) }
    end
    out.upstreams[u.name] = {
      service = u.service,
      consul = "http://" .. u.consul.host .. ":" .. u.consul.port,
      peers = cjson.array_mt and setmetatable(shown, cjson.array_mt) or shown,
      version = d:get("version:" .. u.name),
      source = d:get("source:" .. u.name),
      last_ok = d:get("ok_at:" .. u.name),
      error = d:get("error:" .. u.name),
      error_at = d:get("error_at:" .. u.name),
    }
  end
  local g = gray.config()
  if g then
    local d = ngx.shared.ha_gateway_gray
    local rules = gray_rules.describe(gray.rules())
    if rules then
      rules.ips = cjson.array_mt and setmetatable(rules.ips, cjson.array_mt) or rules.ips
      rules.values = cjson.array_mt and setmetatable(rules.values, cjson.array_mt) or rules.values
    end
    out.gray = {
      redis = g.redis.host .. ":" .. g.redis.port .. "/" .. g.redis.db,
      key = g.key,
      stable = g.stable,
      canary = g.canary,
      -- null: no rules in force (Redis not answering), everything goes to stable.
      rules = rules or cjson.null,
      version = d:get("gray:version"),
      last_ok = d:get("gray:ok_at"),
      error = d:get("gray:error"),
      error_at = d:get("gray:error_at"),
    }
  end
  ngx.header["Content-Type"] = "application/json"
  ngx.say(cjson.encode(out))
end

return _M
