-- The TLS handshake of a cosocket, the peer's certificate verified for `server_name` (SNI too);
-- returns true, or nil and why.
--
-- OpenResty 1.27's lua-resty-core raises "assertion failed!" instead of returning an error when a
-- handshake that completed at once then fails its checks (the certificate's name, say): the FFI
-- call reports success and the result it then asks for is the error. Both are a failed handshake
-- here (the connection is closed either way). A successful handshake may hand back no session
-- (nil, no error): still a success.
local _M = {}

function _M.handshake(sock, server_name)
  local called, session, err = pcall(sock.sslhandshake, sock, nil, server_name, true)
  if not called then return nil, "the certificate does not verify for " .. server_name end
  if session == nil and err ~= nil then return nil, err end
  return true
end

return _M
