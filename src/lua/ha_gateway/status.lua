-- /ha-gateway/status (localhost only): every discovered upstream's peers, their source, version,
-- and the last Consul error, as JSON.
local cjson = require "cjson.safe"
local discovery = require "ha_gateway.discovery"
local peers = require "ha_gateway.peers"

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
  ngx.header["Content-Type"] = "application/json"
  ngx.say(cjson.encode(out))
end

return _M
