import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
// @ts-expect-error fengari ships no types
import fengari from 'fengari';

// The gateway's pure Lua runs in a real Lua VM (fengari, Lua 5.3 in JavaScript): those modules use
// nothing beyond what Lua 5.1/LuaJIT and 5.3 share.
const { lua, lauxlib, lualib, to_luastring, to_jsstring } = fengari;

const luaDir = join(import.meta.dirname, '..', '..', 'src', 'lua', 'ha_gateway');

/**
 * Returns a runner for chunks with src/lua/ha_gateway/<module>.lua in scope as `local <module>`;
 * a chunk must return a string. The other modules of the directory are `require`-able as
 * `ha_gateway.<name>` (package.preload), as on the nodes.
 */
export function luaModuleRunner(module: string): (chunk: string) => string {
  const preload = readdirSync(luaDir)
    .filter((f) => f.endsWith('.lua'))
    .map(
      (f) =>
        `package.preload["ha_gateway.${f.slice(0, -4)}"] = function() ${readFileSync(join(luaDir, f), 'utf8')}\nend`,
    )
    .join('\n');
  return (chunk) => {
    const L = lauxlib.luaL_newstate();
    lualib.luaL_openlibs(L);
    const code = `${preload}\nlocal ${module} = require("ha_gateway.${module}")\n${chunk}`;
    if (lauxlib.luaL_loadstring(L, to_luastring(code)) !== lua.LUA_OK || lua.lua_pcall(L, 0, 1, 0) !== lua.LUA_OK) {
      throw new Error(to_jsstring(lua.lua_tostring(L, -1)));
    }
    return to_jsstring(lua.lua_tostring(L, -1));
  };
}
