import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve, dirname } from 'node:path';
import { describe, expect, it } from 'vitest';

// The layers of src/, lowest first. A module may import its own layer or a lower one, never a
// higher one, and static imports form no cycle. A new directory or top-level file must be placed here.
const LAYERS: Array<[string, string[]]> = [
  ['base', ['errors.ts', 'shell.ts', 'net.ts', 'paths.ts', 'render.ts', 'local.ts', 'poll.ts']],
  ['model', ['catalog.ts', 'runbook/', 'sources/git-syntax.ts', 'sources/mirror.ts', 'sources/spec.ts']],
  ['engine', ['engine/']],
  ['steps', ['steps/', 'sources/prepare.ts']],
  ['verify', ['verify/']],
  ['orchestrate', ['orchestrate/']],
  ['features', ['docs/', 'gray/', 'lab/', 'wizard/']],
  ['cli', ['cli/']],
];

const src = resolve(import.meta.dirname, '..', '..', 'src');
const files = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );

function layerOf(file: string): number {
  const rel = relative(src, file);
  const i = LAYERS.findIndex(([, members]) => members.some((m) => (m.endsWith('/') ? rel.startsWith(m) : rel === m)));
  if (i < 0) throw new Error(`${rel} is in no layer: add it to LAYERS in test/unit/layers.test.ts`);
  return i;
}

/** Relative imports of a file: static (`from '...'`) and dynamic (`import('...')`). */
function importsOf(file: string): Array<{ target: string; dynamic: boolean }> {
  const text = readFileSync(file, 'utf8');
  const out: Array<{ target: string; dynamic: boolean }> = [];
  for (const m of text.matchAll(/^(?:import|export)\s[^;]*?from\s+'(\.[^']+)'/gms))
    out.push({ target: m[1], dynamic: false });
  for (const m of text.matchAll(/import\(\s*'(\.[^']+)'\s*\)/g)) out.push({ target: m[1], dynamic: true });
  return out.map((x) => ({ ...x, target: resolve(dirname(file), x.target.replace(/\.js$/, '.ts')) }));
}

describe('layers of src/', () => {
  const all = files(src);

  it('every import points to the same layer or a lower one', () => {
    const upward: string[] = [];
    for (const f of all) {
      for (const { target } of importsOf(f)) {
        if (layerOf(target) > layerOf(f)) {
          upward.push(
            `${relative(src, f)} (${LAYERS[layerOf(f)][0]}) ` +
              `imports ${relative(src, target)} (${LAYERS[layerOf(target)][0]})`,
          );
        }
      }
    }
    expect(upward).toEqual([]);
  });

  it('static imports form no cycle', () => {
    const graph = new Map(
      all.map((f) => [
        f,
        importsOf(f)
          .filter((i) => !i.dynamic)
          .map((i) => i.target),
      ]),
    );
    const cycles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const stack: string[] = [];
    const visit = (f: string) => {
      state.set(f, 'open');
      stack.push(f);
      for (const t of graph.get(f) ?? []) {
        if (state.get(t) === 'open')
          cycles.push([...stack.slice(stack.indexOf(t)), t].map((x) => relative(src, x)).join(' -> '));
        else if (!state.has(t)) visit(t);
      }
      stack.pop();
      state.set(f, 'done');
    };
    for (const f of all) if (!state.has(f)) visit(f);
    expect(cycles).toEqual([]);
  });

  it('the check sees a violation when there is one', () => {
    // engine importing a step would be upward; a file outside every layer is an error.
    expect(layerOf(join(src, 'engine', 'executor.ts'))).toBeLessThan(layerOf(join(src, 'steps', 'index.ts')));
    expect(() => layerOf(join(src, 'nowhere', 'x.ts'))).toThrow(/is in no layer/);
  });
});
