-- balancer_by_lua for upstreams discovered from Consul: round robin (weighted by Consul's
-- Weights.Passing) over the shared dict's peer list; a failed try moves on to a peer not yet
-- tried, up to one try per peer (set_more_tries), so one dead peer does not fail a request.
-- This runs for every request: the shared dict is read at most every RECHECK seconds per worker,
-- and a request keeps per-request state (ngx.ctx) only when a retry could need it.
local balancer = require "ngx.balancer"
local discovery = require "ha_gateway.discovery"
local peers = require "ha_gateway.peers"

local ngx_now = ngx.now
-- How stale a worker's view may be: Consul is polled every `interval` (1 s and up) anyway.
local RECHECK = 0.1

local _M = {}
local cache = {} -- per worker: upstream name -> { version, rotation, size, checked }
local keys = {}  -- upstream name -> its shared dict keys, built once
local counter = {}

local function current(name)
  local c = cache[name]
  local now = ngx_now()
  if c and now - c.checked < RECHECK then return c end
  local k = keys[name]
  if not k then
    k = { version = "version:" .. name, peers = "peers:" .. name }
    keys[name] = k
  end
  local d = ngx.shared.ha_gateway
  local version = d:get(k.version)
  if c and c.version == version then
    c.checked = now
    return c
  end
  local all = peers.decode(d:get(k.peers))
  local list, all_down = peers.healthy(all, function(addr) return discovery.is_down(name, addr) end)
  if all_down and #all > 0 then
    ngx.log(ngx.WARN, "ha-gateway: upstream ", name, ": every peer failed its health check; using them all")
  end
  c = { version = version, rotation = peers.rotation(list), size = #list, checked = now }
  cache[name] = c
  return c
end

function _M.run(name)
  local c = current(name)
  local n, tried, ctx
  if balancer.get_last_failure() == nil then
    -- first try of this request
    n = (counter[name] or 0) + 1
    counter[name] = n
    if c.size > 1 then
      local ok, err = balancer.set_more_tries(c.size - 1)
      if not ok then ngx.log(ngx.WARN, "ha-gateway: set_more_tries: ", err) end
    end
  else
    ctx = ngx.ctx
    tried = ctx.ha_tried
    n = ctx.ha_next or 1
  end
  local p, at = peers.pick(c.rotation, n, tried)
  if not p then
    ngx.log(ngx.ERR, "ha-gateway: upstream ", name, ": no peer left to try")
    return ngx.exit(502)
  end
  if c.size > 1 then
    -- remembered for a retry: which peers this request tried, where the rotation goes on
    ctx = ctx or ngx.ctx
    tried = tried or {}
    tried[p] = true
    ctx.ha_tried = tried
    ctx.ha_next = at + 1
  end
  local ok, err = balancer.set_current_peer(p.host, p.port)
  if not ok then
    ngx.log(ngx.ERR, "ha-gateway: set_current_peer ", p.host, ":", p.port, ": ", err)
    return ngx.exit(500)
  end
end

return _M
