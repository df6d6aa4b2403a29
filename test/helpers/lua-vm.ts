import { readFileSync } from 'node:fs';
import { join } from 'node:path';
// @ts-expect-error fengari ships no types
import fengari from 'fengari';

// The gateway's pure Lua runs in a real Lua VM (fengari, Lua 5.3 in JavaScript): those modules use
// nothing beyond what Lua 5.1/LuaJIT and 5.3 share.
const { lua, lauxlib, lualib, to_luastring, to_jsstring } = fengari;

/**
 * Returns a runner for chunks with src/lua/ha_gateway/<module>.lua in scope as `local <module>`;
 * a chunk must return a string.
 */
export function luaModuleRunner(module: string): (chunk: string) => string {
  const source = readFileSync(join(import.meta.dirname, '..', '..', 'src', 'lua', 'ha_gateway', `${module}.lua`), 'utf8');
  return (chunk) => {
    const L = lauxlib.luaL_newstate();
    lualib.luaL_openlibs(L);
    const code = `local ${module} = (function() ${source} end)()\n${chunk}`;
    if (lauxlib.luaL_loadstring(L, to_luastring(code)) !== lua.LUA_OK || lua.lua_pcall(L, 0, 1, 0) !== lua.LUA_OK) {
      throw new Error(to_jsstring(lua.lua_tostring(L, -1)));
    }
    return to_jsstring(lua.lua_tostring(L, -1));
  };
}
