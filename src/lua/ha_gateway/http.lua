-- A small HTTP/1.0 GET over nginx cosockets (non-blocking; never LuaSocket inside nginx), enough
-- for Consul's HTTP API: one request per connection, body read to Content-Length or to close, never
-- more than `max_body` bytes. With `tls` ({ server_name }), HTTPS: the cosocket's own TLS handshake,
-- the certificate verified against lua_ssl_trusted_certificate for that name.
--
-- Why not lua-resty-http: TLS is the cosocket's (sslhandshake), not the client library's, and this
-- GET is all Consul needs; lua-resty-http would be one more source to pin and ship on the nginx
-- flavor (OpenResty does not bundle it either) for the same request.
local tls_handshake = require("ha_gateway.tls").handshake

local _M = {}

function _M.get(host, port, path, headers, timeout_ms, max_body, tls)
  max_body = max_body or 1024 * 1024
  local sock = ngx.socket.tcp()
  sock:settimeouts(timeout_ms, timeout_ms, timeout_ms)
  local ok, err = sock:connect(host, port)
  if not ok then return nil, "connect to " .. host .. ":" .. port .. " failed: " .. tostring(err) end
  if tls then
    ok, err = tls_handshake(sock, tls.server_name)
    if not ok then sock:close(); return nil, "TLS with " .. host .. ":" .. port .. " (" .. tls.server_name .. ") failed: " .. tostring(err) end
  end
  local req = { "GET ", path, " HTTP/1.0\r\nHost: ", tls and tls.server_name or host, ":", port, "\r\nAccept: application/json\r\n" }
  for k, v in pairs(headers or {}) do req[#req + 1] = k .. ": " .. v .. "\r\n" end
  req[#req + 1] = "\r\n"
  ok, err = sock:send(table.concat(req))
  if not ok then sock:close(); return nil, "send to " .. host .. ":" .. port .. " failed: " .. tostring(err) end
  local line
  line, err = sock:receive("*l")
  if not line then sock:close(); return nil, "no answer from " .. host .. ":" .. port .. ": " .. tostring(err) end
  local status = tonumber(line:match("^HTTP/1%.%d (%d%d%d)"))
  if not status then sock:close(); return nil, "not an HTTP answer: " .. line:sub(1, 80) end
  local res = { status = status, headers = {} }
  local length
  while true do
    line, err = sock:receive("*l")
    if not line then sock:close(); return nil, "headers cut short: " .. tostring(err) end
    if line == "" then break end
    local name, value = line:match("^([^:]+):%s*(.*)$")
    if name then
      res.headers[name:lower()] = value
      if name:lower() == "content-length" then length = tonumber(value) end
    end
  end
  if length and length > max_body then
    sock:close()
    return nil, "answer of " .. length .. " bytes is over the limit of " .. max_body
  end
  local body
  if length then
    body, err = sock:receive(length)
  else
    -- No length: read to the close, in pieces, and stop at the limit.
    local parts, size = {}, 0
    while true do
      local data, rerr, partial = sock:receive(8192)
      data = data or partial
      if data and #data > 0 then
        size = size + #data
        if size > max_body then sock:close(); return nil, "answer over the limit of " .. max_body .. " bytes" end
        parts[#parts + 1] = data
      end
      if rerr == "closed" then body = table.concat(parts); break end
      if rerr then err = rerr; break end
    end
  end
  sock:close()
  if not body then return nil, "body cut short: " .. tostring(err) end
  res.body = body
  return res
end

return _M
