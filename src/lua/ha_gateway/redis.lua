-- A small Redis client over nginx cosockets (non-blocking), enough for the gray release rules:
-- AUTH, SELECT and a pipeline of commands on one connection, kept alive between polls; with `tls`
-- ({ server_name }) over TLS (the cosocket's handshake, verified against lua_ssl_trusted_certificate).
-- Both flavors: the nginx flavor has no lua-resty-redis (OpenResty bundles it, the nginx flavor
-- would need it pinned and shipped), and the TLS is the cosocket's either way.
local tls_handshake = require("ha_gateway.tls").handshake

local _M = {}

-- Replies larger than these are refused: the rules are short strings, at most a few 100,000 of them.
local MAX_BULK = 512 * 1024
local MAX_ARRAY = 200000

local function command(args)
  local out = { "*", #args, "\r\n" }
  for _, a in ipairs(args) do
    a = tostring(a)
    out[#out + 1] = "$" .. #a .. "\r\n" .. a .. "\r\n"
  end
  return table.concat(out)
end
_M.command = command

-- One reply: a string, a number, a list, ngx.null for a nil bulk, or nil and an error ("-ERR ...").
local function read_reply(sock)
  local line, err = sock:receive("*l")
  if not line then return nil, "read failed: " .. tostring(err) end
  local kind, rest = line:sub(1, 1), line:sub(2)
  if kind == "+" then return rest end
  if kind == "-" then return nil, rest, true end
  if kind == ":" then return tonumber(rest) end
  if kind == "$" then
    local n = tonumber(rest)
    if not n then return nil, "bad bulk length" end
    if n < 0 then return ngx.null end
    if n > MAX_BULK then return nil, "a reply of " .. n .. " bytes is over the limit of " .. MAX_BULK end
    local data
    data, err = sock:receive(n + 2)
    if not data then return nil, "read failed: " .. tostring(err) end
    return data:sub(1, n)
  end
  if kind == "*" then
    local n = tonumber(rest)
    if not n then return nil, "bad array length" end
    if n < 0 then return ngx.null end
    if n > MAX_ARRAY then return nil, "a list of " .. n .. " entries is over the limit of " .. MAX_ARRAY end
    local list = {}
    for i = 1, n do
      local v, e, is_redis_error = read_reply(sock)
      if v == nil then
        if is_redis_error then v = { err = e } else return nil, e end
      end
      list[i] = v
    end
    return list
  end
  return nil, "not a Redis reply: " .. line:sub(1, 40)
end

-- Runs `commands` (each a list of arguments) as one pipeline; returns their replies in order, or
-- nil and an error. A Redis error reply to any command is an error of the whole call.
function _M.pipeline(opts, commands)
  local sock = ngx.socket.tcp()
  sock:settimeouts(opts.timeout_ms, opts.timeout_ms, opts.timeout_ms)
  local pool = "ha_gateway_redis:" .. opts.host .. ":" .. opts.port .. ":" .. opts.db .. (opts.tls and ":tls" or "")
  local ok, err = sock:connect(opts.host, opts.port, { pool = pool })
  if not ok then return nil, "connect to Redis " .. opts.host .. ":" .. opts.port .. " failed: " .. tostring(err) end
  local all = {}
  -- A pooled connection already did the TLS handshake, AUTH and SELECT.
  if sock:getreusedtimes() == 0 then
    if opts.tls then
      ok, err = tls_handshake(sock, opts.tls.server_name)
      if not ok then sock:close(); return nil, "TLS with Redis " .. opts.host .. ":" .. opts.port .. " (" .. opts.tls.server_name .. ") failed: " .. tostring(err) end
    end
    if opts.password and opts.password ~= "" then all[#all + 1] = { "AUTH", opts.password } end
    if opts.db ~= 0 then all[#all + 1] = { "SELECT", opts.db } end
  end
  local setup = #all
  for _, c in ipairs(commands) do all[#all + 1] = c end
  local req = {}
  for i, c in ipairs(all) do req[i] = command(c) end
  ok, err = sock:send(table.concat(req))
  if not ok then sock:close(); return nil, "send to Redis failed: " .. tostring(err) end
  local replies = {}
  for i = 1, #all do
    local v, e = read_reply(sock)
    if v == nil then
      sock:close()
      local what = i <= setup and all[i][1] or all[i][1] .. " " .. tostring(all[i][2] or "")
      return nil, "Redis " .. what .. ": " .. tostring(e)
    end
    if i > setup then replies[#replies + 1] = v end
  end
  sock:setkeepalive(60000, 2)
  return replies
end

return _M
