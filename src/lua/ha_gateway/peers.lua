-- Peer lists for ha-setup's gateway: parsing Consul's health answer, the compact form kept in the
-- shared dict, and the round-robin walk the balancer uses. Pure Lua (no ngx), tested on its own.
local ipv4 = require "ha_gateway.ipv4"

local _M = {}

local MAX_WEIGHT = 100

local function valid_port(p)
  return type(p) == "number" and p >= 1 and p <= 65535 and p % 1 == 0
end

-- A decoded /v1/health/service/<name>?passing answer -> list of { host, port, weight } sorted by
-- host:port, and the reasons entries were skipped. nil and an error when the answer is not a list.
-- Whoever can register a service in Consul picks these addresses: `allowed` (compiled CIDRs,
-- site.peerNetworks) limits them, and loopback, link-local (cloud metadata), multicast and
-- broadcast are refused unless allowed explicitly (ipv4.peer_problem).
function _M.from_consul(entries, allowed)
  if type(entries) ~= "table" then return nil, "the answer is not a JSON list" end
  local out, skipped, seen = {}, {}, {}
  for i, e in ipairs(entries) do
    local svc = type(e) == "table" and e.Service or nil
    if type(svc) ~= "table" then
      skipped[#skipped + 1] = "entry " .. i .. " has no Service"
    else
      local host = svc.Address
      if host == nil or host == "" then
        -- Consul leaves Service.Address empty when the service uses its node's address.
        host = type(e.Node) == "table" and e.Node.Address or nil
      end
      local weight = 1
      if type(svc.Weights) == "table" and type(svc.Weights.Passing) == "number" then
        weight = math.floor(svc.Weights.Passing)
      end
      local problem = ipv4.peer_problem(host, allowed)
      if problem then
        skipped[#skipped + 1] = "entry " .. i .. ": address " .. tostring(host) .. " " .. problem
      elseif not valid_port(svc.Port) then
        skipped[#skipped + 1] = "entry " .. i .. ": port " .. tostring(svc.Port) .. " is not a port"
      elseif weight ~= weight then
        skipped[#skipped + 1] = "entry " .. i .. ": weight is not a number"
      elseif weight < 1 then
        skipped[#skipped + 1] = "entry " .. i .. ": weight " .. weight .. " takes it out of rotation"
      else
        local key = host .. ":" .. svc.Port
        if not seen[key] then
          seen[key] = true
          out[#out + 1] = { host = host, port = svc.Port, weight = math.min(weight, MAX_WEIGHT) }
        end
      end
    end
  end
  table.sort(out, function(x, y) return x.host .. ":" .. x.port < y.host .. ":" .. y.port end)
  return out, skipped
end

-- "host:port weight=N" server lines of the runbook (the seed list) -> peers; others are skipped.
function _M.from_servers(lines, allowed)
  local out = {}
  for _, line in ipairs(lines) do
    local host, port = line:match("^(%d+%.%d+%.%d+%.%d+):(%d+)")
    local weight = tonumber(line:match("weight=(%d+)") or "1")
    if host and not ipv4.peer_problem(host, allowed) and valid_port(tonumber(port)) and not line:match("%sdown") and not line:match("%sbackup") then
      out[#out + 1] = { host = host, port = tonumber(port), weight = math.max(1, math.min(weight, MAX_WEIGHT)) }
    end
  end
  return out
end

function _M.encode(list)
  local parts = {}
  for i, p in ipairs(list) do parts[i] = p.host .. ":" .. p.port .. ":" .. p.weight end
  return table.concat(parts, ",")
end

function _M.decode(s)
  local out = {}
  if type(s) ~= "string" then return out end
  for host, port, weight in s:gmatch("([%d.]+):(%d+):(%d+)") do
    out[#out + 1] = { host = host, port = tonumber(port), weight = tonumber(weight), addr = host .. ":" .. port }
  end
  return out
end

-- The peers not marked down by the active health check; all of them when every one is down (a
-- health check that fails everywhere is more likely wrong than every backend).
function _M.healthy(list, is_down)
  local out = {}
  for _, p in ipairs(list) do
    if not is_down(p.host .. ":" .. p.port) then out[#out + 1] = p end
  end
  if #out == 0 then return list, true end
  return out, false
end

-- Every peer repeated by its weight, interleaved (a, b, a, b, a) so weights spread over time.
function _M.rotation(list)
  local out, left, any = {}, {}, true
  for i, p in ipairs(list) do left[i] = p.weight end
  while any do
    any = false
    for i, p in ipairs(list) do
      if left[i] > 0 then
        out[#out + 1] = p
        left[i] = left[i] - 1
        any = true
      end
    end
  end
  return out
end

-- The peer for the n-th request (n from 1) and, on a retry, the next one from position n on not
-- yet tried. `tried` has the addresses ("host:port") already tried as keys; returns nil when every
-- peer was tried.
function _M.pick(rotation, n, tried)
  local len = #rotation
  if len == 0 then return nil end
  if not tried then return rotation[((n - 1) % len) + 1], n end
  for k = 0, len - 1 do
    local p = rotation[((n - 1 + k) % len) + 1]
    if not tried[p.addr or (p.host .. ":" .. p.port)] then return p, n + k end
  end
  return nil
end

-- The addresses a request already tried, from $upstream_addr as nginx has it when the balancer
-- runs for a retry ("10.0.0.1:80, 10.0.0.2:80"; " : " separates the upstreams of an internal
-- redirect, whose peers then count as tried too: one retry fewer at worst, never one twice).
function _M.tried_from_upstream_addr(s)
  local tried = {}
  if type(s) ~= "string" then return tried end
  for addr in s:gmatch("[%d.]+:%d+") do tried[addr] = true end
  return tried
end

return _M
