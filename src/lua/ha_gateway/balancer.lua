-- balancer_by_lua for upstreams discovered from Consul: round robin (weighted by Consul's
-- Weights.Passing) over the shared dict's peer list; a failed try moves on to a peer not yet
-- tried, up to one try per peer (set_more_tries), so one dead peer does not fail a request.
local balancer = require "ngx.balancer"
local discovery = require "ha_gateway.discovery"
local peers = require "ha_gateway.peers"

local _M = {}
local cache = {} -- per worker: upstream name -> { version, rotation, size }
local counter = {}

local function current(name)
  local d = ngx.shared.ha_gateway
  local version = d:get("version:" .. name)
  local c = cache[name]
  if c and c.version == version then return c end
  local all = peers.decode(d:get("peers:" .. name))
  local list, all_down = peers.healthy(all, function(addr) return discovery.is_down(name, addr) end)
  if all_down and #all > 0 then
    ngx.log(ngx.WARN, "ha-gateway: upstream ", name, ": every peer failed its health check; using them all")
  end
  c = { version = version, rotation = peers.rotation(list), size = #list }
  cache[name] = c
  return c
end

function _M.run(name)
  local c = current(name)
  local ctx = ngx.ctx
  local tried = ctx.ha_tried
  local n
  if not tried then
    tried = {}
    ctx.ha_tried = tried
    counter[name] = (counter[name] or 0) + 1
    n = counter[name]
    if c.size > 1 then
      local ok, err = balancer.set_more_tries(c.size - 1)
      if not ok then ngx.log(ngx.WARN, "ha-gateway: set_more_tries: ", err) end
    end
  else
    n = ctx.ha_next
  end
  local p, at = peers.pick(c.rotation, n, tried)
  if not p then
    ngx.log(ngx.ERR, "ha-gateway: upstream ", name, ": no peer left to try")
    return ngx.exit(502)
  end
  tried[p.host .. ":" .. p.port] = true
  ctx.ha_next = at + 1
  local ok, err = balancer.set_current_peer(p.host, p.port)
  if not ok then
    ngx.log(ngx.ERR, "ha-gateway: set_current_peer ", p.host, ":", p.port, ": ", err)
    return ngx.exit(500)
  end
end

return _M
