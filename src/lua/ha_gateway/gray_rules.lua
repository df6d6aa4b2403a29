-- Gray release rules for ha-setup's gateway: what Redis holds, compiled once per change, and the
-- decision for one request. Pure Lua (no ngx; Lua 5.1/LuaJIT and 5.3 alike), tested on its own.
--
-- Rules (see `ha-setup gray`): client IPv4 addresses and CIDRs, values of the gray header or
-- cookie, and a percentage of the remaining clients, chosen by a stable hash of the client key.
local _M = {}

-- "a.b.c.d" -> its value as a number (no bit library needed: exact in a double), or nil.
local function ipv4_number(s)
  if type(s) ~= "string" then return nil end
  local a, b, c, d = s:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if not a then return nil end
  -- A float from the start: Lua 5.3 integers may be 32 bits wide (fengari); LuaJIT has only doubles.
  local n = 0.0
  for _, o in ipairs({ a, b, c, d }) do
    local v = tonumber(o)
    if v > 255 or (#o > 1 and o:sub(1, 1) == "0") then return nil end
    n = n * 256 + v
  end
  return n
end
_M.ipv4_number = ipv4_number

-- "10.0.0.0/8" or "10.1.2.3" -> { net = <network / 2^(32-len)>, div = 2^(32-len) }, or nil.
local function cidr(s)
  local addr, len = s:match("^([%d.]+)/(%d+)$")
  if not addr then addr, len = s, "32" end
  local n = ipv4_number(addr)
  local bits = tonumber(len)
  if not n or not bits or bits > 32 or (#len > 1 and len:sub(1, 1) == "0") then return nil end
  local div = 2 ^ (32 - bits)
  return { net = math.floor(n / div), div = div, text = s }
end

local VALUE = "^[%w._~:@+=-]+$"

-- What Redis answered (lists of strings, the percentage as a string) -> compiled rules, and the
-- entries that were skipped with why. Entries are validated here too: Redis is edited by hand.
function _M.compile(ips, values, percent)
  local rules = { nets = {}, values = {}, percent = 0, counts = { ips = 0, values = 0 } }
  local skipped = {}
  for _, s in ipairs(ips or {}) do
    local c = cidr(s)
    if c then
      rules.nets[#rules.nets + 1] = c
      rules.counts.ips = rules.counts.ips + 1
    else
      skipped[#skipped + 1] = "ip " .. tostring(s) .. " is not an IPv4 address or CIDR"
    end
  end
  for _, v in ipairs(values or {}) do
    if type(v) == "string" and #v <= 128 and v:match(VALUE) then
      if not rules.values[v] then rules.counts.values = rules.counts.values + 1 end
      rules.values[v] = true
    else
      skipped[#skipped + 1] = "value " .. tostring(v) .. " has characters a header or cookie value here may not have"
    end
  end
  if percent ~= nil and percent ~= "" then
    local p = tonumber(percent)
    if p and p >= 0 and p <= 100 and p % 1 == 0 then
      rules.percent = p
    else
      skipped[#skipped + 1] = "percent " .. tostring(percent) .. " is not a whole number from 0 to 100"
    end
  end
  return rules, skipped
end

-- The decision for one request. `bucket` is the client key's stable hash mod 100 (0..99), so the
-- same client keeps its side as long as the percentage does not change.
-- Returns true (canary) or false (stable), and why.
function _M.decide(rules, client_ip, header_value, cookie_value, bucket)
  if not rules then return false, "no rules" end
  if header_value and rules.values[header_value] then return true, "header" end
  if cookie_value and rules.values[cookie_value] then return true, "cookie" end
  local n = ipv4_number(client_ip)
  if n then
    for _, c in ipairs(rules.nets) do
      if math.floor(n / c.div) == c.net then return true, "ip " .. c.text end
    end
  end
  if rules.percent > 0 and bucket ~= nil and bucket < rules.percent then
    return true, "percent " .. rules.percent
  end
  return false, "stable"
end

-- The rules in a form for the status page: the lists as Redis gave them (compiled ones only).
function _M.describe(rules)
  if not rules then return nil end
  local ips, values = {}, {}
  for i, c in ipairs(rules.nets) do ips[i] = c.text end
  for v in pairs(rules.values) do values[#values + 1] = v end
  table.sort(values)
  return { ips = ips, values = values, percent = rules.percent }
end

return _M
