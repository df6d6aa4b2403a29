import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

// The formatter keeps code within 120 columns but cannot break a long string, comment or regex:
// this keeps those within it too (split a string with +, wrap a comment, build a regex from parts).
const MAX = 120;
const root = resolve(import.meta.dirname, '..', '..');
const sources = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory()
      ? e.name === 'fixtures' || e.name === 'node_modules'
        ? []
        : sources(join(dir, e.name))
      : /\.(ts|mjs|js)$/.test(e.name)
        ? [join(dir, e.name)]
        : [],
  );

describe('line length', () => {
  it(`no line of src, test, scripts or bin is longer than ${MAX} columns`, () => {
    const long = ['src', 'test', 'scripts', 'bin'].flatMap((d) =>
      sources(join(root, d)).flatMap((f) =>
        readFileSync(f, 'utf8')
          .split('\n')
          .flatMap((line, i) => (line.length > MAX ? [`${relative(root, f)}:${i + 1} (${line.length})`] : [])),
      ),
    );
    expect(long).toEqual([]);
  });
});
