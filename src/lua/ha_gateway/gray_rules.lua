-- Gray release rules for ha-setup's gateway: what Redis holds, compiled once per change, and the
-- decision for one request. Pure Lua (no ngx; Lua 5.1/LuaJIT and 5.3 alike), tested on its own.
--
-- Rules (see `ha-setup gray`): client IPv4 addresses and CIDRs, values of the gray header or
-- cookie, and a percentage of the remaining clients, chosen by a stable hash of the client key.
local ipv4 = require "ha_gateway.ipv4"

local _M = {}

local floor = math.floor

-- How many rules a node takes. A rule set over either limit is refused as a whole (everyone goes
-- to stable, the status page says why): routing by half a rule set is worse than by none.
_M.MAX_IPS = 100000
_M.MAX_VALUES = 100000
_M.MAX_VALUE_LENGTH = 128

local VALUE = "^[%w._~:@+=-]+$"

-- What Redis answered (lists of strings, the percentage as a string) -> compiled rules, the
-- entries that were skipped with why, and an error when the set is over a limit. Entries are
-- validated here too: Redis is edited by hand.
--
-- Addresses are indexed by prefix length: a request looks up at most 33 hash keys whatever the
-- number of rules, instead of walking every CIDR.
function _M.compile(ips, values, percent)
  ips, values = ips or {}, values or {}
  local rules = {
    by_len = {}, lens = {}, values = {}, percent = 0,
    counts = { ips = 0, values = 0 }, valid = { ips = {}, values = {} },
  }
  local skipped = {}
  if #ips > _M.MAX_IPS then
    return nil, skipped, #ips .. " ip rules; a node takes at most " .. _M.MAX_IPS
  end
  if #values > _M.MAX_VALUES then
    return nil, skipped, #values .. " value rules; a node takes at most " .. _M.MAX_VALUES
  end
  for _, s in ipairs(ips) do
    local c = ipv4.cidr(s)
    if c then
      local t = rules.by_len[c.len]
      if not t then
        t = {}
        rules.by_len[c.len] = t
        rules.lens[#rules.lens + 1] = c.len
      end
      if not t[c.net] then
        t[c.net] = s
        rules.counts.ips = rules.counts.ips + 1
        rules.valid.ips[#rules.valid.ips + 1] = s
      end
    else
      skipped[#skipped + 1] = "ip " .. tostring(s) .. " is not an IPv4 address or CIDR"
    end
  end
  -- Most specific first: the reason names the narrowest matching rule.
  table.sort(rules.lens, function(a, b) return a > b end)
  for _, v in ipairs(values) do
    if type(v) == "string" and #v <= _M.MAX_VALUE_LENGTH and v:match(VALUE) then
      if not rules.values[v] then
        rules.counts.values = rules.counts.values + 1
        rules.valid.values[#rules.valid.values + 1] = v
      end
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

-- No rule at all: a request needs no look at its client, header or cookie.
function _M.empty(rules)
  return not rules or (rules.percent == 0 and rules.counts.ips == 0 and rules.counts.values == 0)
end

-- The decision for one request. `bucket` is the client key's stable hash mod 100 (0..99), so the
-- same client keeps its side as long as the percentage does not change.
-- Returns true (canary) or false (stable), and why.
function _M.decide(rules, client_ip, header_value, cookie_value, bucket)
  if not rules then return false, "no rules" end
  if header_value and rules.values[header_value] then return true, "header" end
  if cookie_value and rules.values[cookie_value] then return true, "cookie" end
  if rules.counts.ips > 0 then
    local n = ipv4.number(client_ip)
    if n then
      for _, len in ipairs(rules.lens) do
        local text = rules.by_len[len][floor(n / 2 ^ (32 - len))]
        if text then return true, "ip " .. text end
      end
    end
  end
  if rules.percent > 0 and bucket ~= nil and bucket < rules.percent then
    return true, "percent " .. rules.percent
  end
  return false, "stable"
end

-- The rules for the status page: counts, the percentage and at most `limit` of each list (a rule
-- set of 50,000 addresses is not a status page).
function _M.describe(rules, limit)
  if not rules then return nil end
  limit = limit or 100
  local ips, values = {}, {}
  for i = 1, math.min(limit, #rules.valid.ips) do ips[i] = rules.valid.ips[i] end
  for i = 1, math.min(limit, #rules.valid.values) do values[i] = rules.valid.values[i] end
  table.sort(ips)
  table.sort(values)
  return { ips = ips, values = values, percent = rules.percent, counts = { ips = rules.counts.ips, values = rules.counts.values } }
end

return _M
