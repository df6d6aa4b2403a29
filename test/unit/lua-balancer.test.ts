import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const source = readFileSync(new URL('../../src/lua/ha_gateway/balancer.lua', import.meta.url), 'utf8');

/** The text of a top-level function of balancer.lua, from its header to its closing `end`. */
function body(header: string): string {
  const start = source.indexOf(header);
  expect(start, header).toBeGreaterThanOrEqual(0);
  const end = source.indexOf('\nend\n', start);
  return source.slice(start, end);
}

describe('gateway balancer (Lua)', () => {
  // A closure in a function makes LuaJIT close its upvalues (bytecode UCLO) on every return, which the
  // JIT does not compile: the per-request path ran in the interpreter until the list rebuild moved out
  // (jit.v on the lab: "NYI: bytecode UCLO at balancer.lua:25").
  it('creates no closure on the per-request path (current, run): LuaJIT can compile it', () => {
    for (const header of ['local function current(name)', 'function _M.run(name)'])
      expect(body(header)).not.toMatch(/function\s*\(/);
    expect(body('local function rebuild(')).toMatch(/function\s*\(/); // the check sees closures
  });
});
