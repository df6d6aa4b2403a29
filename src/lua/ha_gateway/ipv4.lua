-- IPv4 addresses and networks for ha-setup's gateway: parsing (no leading zeros, no names), CIDR
-- membership, and the ranges a proxied peer must never be in. Pure Lua (no ngx; Lua 5.1/LuaJIT and
-- 5.3 alike), tested on its own.
local _M = {}

local floor = math.floor

-- "a.b.c.d" -> its value as a number (exact in a double: no bit library needed), or nil. Leading
-- zeros are refused: "010" is 8 to some parsers and 10 to others.
function _M.number(s)
  if type(s) ~= "string" then return nil end
  local a, b, c, d = s:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if not a then return nil end
  -- A float from the start: Lua 5.3 integers may be 32 bits wide (fengari); LuaJIT has only doubles.
  local n = 0.0
  for _, o in ipairs({ a, b, c, d }) do
    local v = tonumber(o)
    if #o > 3 or v > 255 or (#o > 1 and o:sub(1, 1) == "0") then return nil end
    n = n * 256 + v
  end
  return n
end

-- "10.0.0.0/8" or "10.1.2.3" -> { len = 8, net = <address / 2^(32-len)>, div = 2^(32-len), text }, or nil.
function _M.cidr(s)
  if type(s) ~= "string" then return nil end
  local addr, len = s:match("^([%d.]+)/(%d+)$")
  if not addr then addr, len = s, "32" end
  local n = _M.number(addr)
  local bits = tonumber(len)
  if not n or not bits or bits > 32 or #len > 2 or (#len > 1 and len:sub(1, 1) == "0") then return nil end
  local div = 2 ^ (32 - bits)
  return { len = bits, net = floor(n / div), div = div, text = s }
end

function _M.contains(c, n)
  return floor(n / c.div) == c.net
end

-- Where a proxied request must never go, whoever names the peer (Consul, a runbook): this host
-- ("this network", loopback), cloud metadata and other link-local addresses, multicast, the
-- reserved block and the broadcast address.
local SPECIAL = {
  { _M.cidr("0.0.0.0/8"), "in 0.0.0.0/8 (this network)" },
  { _M.cidr("127.0.0.0/8"), "a loopback address" },
  { _M.cidr("169.254.0.0/16"), "link-local (169.254.0.0/16: cloud metadata lives here)" },
  { _M.cidr("224.0.0.0/4"), "a multicast address" },
  { _M.cidr("240.0.0.0/4"), "reserved or broadcast (240.0.0.0/4)" },
}

-- Why `host` may not be a peer, or nil. `allowed` (compiled CIDRs, may be empty): when given, the
-- peer must be in one of them, and only there may a special range be used (127.0.0.0/8 for an app
-- on the node itself).
function _M.peer_problem(host, allowed)
  local n = _M.number(host)
  if not n then return "is not an IPv4 address" end
  if allowed and #allowed > 0 then
    for _, c in ipairs(allowed) do
      if _M.contains(c, n) then return nil end
    end
    return "is outside the allowed peer networks"
  end
  for _, s in ipairs(SPECIAL) do
    if _M.contains(s[1], n) then return "is " .. s[2] end
  end
  return nil
end

-- A list of CIDR strings -> compiled list (invalid entries dropped: the runbook validated them).
function _M.compile_all(list)
  local out = {}
  for _, s in ipairs(list or {}) do
    local c = _M.cidr(s)
    if c then out[#out + 1] = c end
  end
  return out
end

return _M
