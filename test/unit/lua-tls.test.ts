import { describe, expect, it } from 'vitest';
import { luaModuleRunner } from '../helpers/lua-vm.js';

/** Runs a Lua chunk with `tls` in scope; it must return a string. */
const run = luaModuleRunner('tls');

/** A cosocket stand-in whose sslhandshake does `body` (a Lua function body of (self, session, name, verify)). */
const sock = (body: string) => `{ sslhandshake = function(self, session, name, verify) ${body} end }`;
const handshake = (body: string) =>
  run(`local ok, err = tls.handshake(${sock(body)}, "consul.lab"); return tostring(ok) .. " | " .. tostring(err)`);

describe('the TLS handshake of the gateway (Lua)', () => {
  it('asks the cosocket to verify the certificate for the name, without reusing a session', () => {
    expect(handshake('return tostring(session) .. " " .. name .. " " .. tostring(verify)')).toBe('true | nil');
    expect(
      run(`local seen
      tls.handshake({ sslhandshake = function(self, session, name, verify)
        seen = tostring(session) .. " " .. name .. " " .. tostring(verify) end }, "redis.lab")
      return seen`),
    ).toBe('nil redis.lab true');
  });

  it('an error returned is a failed handshake; a success without a session is a success', () => {
    expect(handshake('return nil, "certificate host mismatch"')).toBe('nil | certificate host mismatch');
    expect(handshake('return nil')).toBe('true | nil');
  });

  it("resty.core's assertion on a handshake that failed at once is a failed handshake, not an error", () => {
    expect(handshake('assert(false)')).toBe('nil | the certificate does not verify for consul.lab');
  });
});
