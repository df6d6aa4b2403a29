-- balancer_by_lua for upstreams discovered from Consul: round robin (weighted by Consul's
-- Weights.Passing) over the shared dict's peer list; a failed try moves on to a peer not yet
-- tried, up to one try per peer (set_more_tries), so one dead peer does not fail a request.
-- This runs for every request: the shared dict is read at most every RECHECK seconds per worker,
-- and a first try allocates nothing (no ngx.ctx, no table): a retry finds the peers already tried
-- in $upstream_addr. Measured on the lab (npm run bench:gateway), that halved the Lua share of the
-- CPU on this path.
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

-- The peer list of a new version, rebuilt from the shared dict. Kept out of current(): its closure
-- makes LuaJIT close an upvalue (bytecode UCLO) on every return of the function it is in, which the
-- JIT cannot compile, and current() runs for every request (seen with jit.v on the lab: the whole
-- balancer ran in the interpreter).
local function rebuild(name, k, version, now)
  local all = peers.decode(ngx.shared.ha_gateway:get(k.peers))
  local list, all_down = peers.healthy(all, function(addr) return discovery.is_down(name, addr) end)
  if all_down and #all > 0 then
    ngx.log(ngx.WARN, "ha-gateway: upstream ", name, ": every peer failed its health check; using them all")
  end
  local c = { version = version, rotation = peers.rotation(list), size = #list, checked = now }
  cache[name] = c
  return c
end

local function current(name)
  local c = cache[name]
  local now = ngx_now()
  if c and now - c.checked < RECHECK then return c end
  local k = keys[name]
  if not k then
    k = { version = "version:" .. name, peers = "peers:" .. name }
    keys[name] = k
  end
  local version = ngx.shared.ha_gateway:get(k.version)
  if c and c.version == version then
    c.checked = now
    return c
  end
  return rebuild(name, k, version, now)
end

function _M.run(name)
  local c = current(name)
  local n, tried
  if balancer.get_last_failure() == nil then
    -- first try of this request
    n = (counter[name] or 0) + 1
    counter[name] = n
    if c.size > 1 then
      local ok, err = balancer.set_more_tries(c.size - 1)
      if not ok then ngx.log(ngx.WARN, "ha-gateway: set_more_tries: ", err) end
    end
  else
    -- a retry (rare): on from where this worker's rotation is now, skipping what was tried
    n = counter[name] or 1
    tried = peers.tried_from_upstream_addr(ngx.var.upstream_addr)
  end
  local p = peers.pick(c.rotation, n, tried)
  if not p then
    ngx.log(ngx.ERR, "ha-gateway: upstream ", name, ": no peer left to try")
    return ngx.exit(502)
  end
  local ok, err = balancer.set_current_peer(p.host, p.port)
  if not ok then
    ngx.log(ngx.ERR, "ha-gateway: set_current_peer ", p.host, ":", p.port, ": ", err)
    return ngx.exit(500)
  end
end

return _M
