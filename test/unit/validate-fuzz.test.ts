import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { main } from '../../src/cli/main.js';

// `validate` over generated hostile runbooks: every field of two rich runbooks set to each hostile
// value, plus structural YAML cases. Whatever the input, validate answers 0 or 2, never a stack
// trace or an internal error, names every problem as `path: message`, and sends no control
// character to the terminal.

const root = join(import.meta.dirname, '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'ha-setup-fuzz-'));

const HOSTILE: unknown[] = [
  '',
  ' ',
  '-',
  '-x',
  '--upload-pack=touch /tmp/pwned',
  '$(touch /tmp/pwned)',
  '`id`',
  `\${IFS}`,
  'a;b',
  'a|b',
  'a&&b',
  'a\nb',
  'a\r\nb',
  '\u0000',
  '\u001b]0;pwned\u0007\u001b[2J',
  '\u009b31m',
  '../../../../etc/passwd',
  '/etc/shadow',
  '/',
  '/usr',
  'x'.repeat(10_000),
  '🙂',
  '%s%n',
  '<script>alert(1)</script>',
  '"quoted"',
  "it's",
  '\\',
  '127.0.0.010',
  '169.254.169.254',
  '0.0.0.0/0',
  'http://evil.example/',
  'ext::sh -c id',
  null,
  [],
  {},
  [1, 2],
  { a: 1 },
  -1,
  0,
  1.5,
  65536,
  1e308,
  Infinity,
  -Infinity,
  Number.NaN,
  true,
  false,
];

/** Every path to a leaf (and to each object, which can be replaced whole) in `value`. */
function paths(value: unknown, at: Array<string | number> = []): Array<Array<string | number>> {
  if (Array.isArray(value)) return [at, ...value.flatMap((v, i) => paths(v, [...at, i]))];
  if (value && typeof value === 'object')
    return [at, ...Object.entries(value).flatMap(([k, v]) => paths(v, [...at, k]))];
  return [at];
}

function setAt(doc: any, path: Array<string | number>, v: unknown): any {
  if (path.length === 0) return v;
  const copy = structuredClone(doc);
  let cur = copy;
  for (const p of path.slice(0, -1)) cur = cur[p];
  cur[path[path.length - 1]] = v;
  return copy;
}

async function validate(text: string) {
  const file = join(dir, 'fuzz.yaml');
  writeFileSync(file, text);
  let out = '';
  let err = '';
  const code = await main(['validate', file], {
    interactive: false,
    stdout: (s) => {
      out += s;
    },
    stderr: (s) => {
      err += s;
    },
  });
  return { code, out, err };
}

function expectClean(r: { code: number; out: string; err: string }, what: string) {
  expect([0, 2], `${what}: exit ${r.code}\n${r.err}`).toContain(r.code);
  expect(r.err, what).not.toMatch(/internal error|\n\s+at \S+ \(|TypeError|ReferenceError|RangeError/);
  // eslint-disable-next-line no-control-regex
  expect(r.out + r.err, what).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/);
  if (r.code === 2) {
    const lines = r.err.trimEnd().split('\n');
    expect(lines[0], what).toMatch(/^error: /);
    for (const l of lines.slice(1)) expect(l, what).toMatch(/^ {2}\S.*?: .+|^ {4}/);
  }
}

describe('validate over hostile runbooks', () => {
  const bases = {
    valid: parse(readFileSync(join(root, 'test', 'fixtures', 'valid.yaml'), 'utf8')),
    gray: parse(readFileSync(join(root, 'runbooks', 'example-gray.yaml'), 'utf8')),
  };
  // Fields a base leaves at their defaults, set explicitly so they are fuzzed too.
  bases.valid.site = {
    ...bases.valid.site,
    include: { http: ['a.conf'], server: ['b.conf'], lua: ['lua'] },
    peerNetworks: ['10.0.0.0/8'],
  };
  bases.valid.sources = {
    mirror: '/srv/mirror',
    gitRewrite: { 'https://github.com/': 'https://git.example/' },
    overrides: { ngx_cache_purge: { git: 'https://git.example/x.git', ref: 'v1' } },
  };
  bases.valid.logging = { keepalivedLog: '/var/log/keepalived.log', facility: 'local0' };
  bases.valid.build.configureArgs = ['--with-http_sub_module'];
  bases.valid.ssh = { ...bases.valid.ssh, sudoPasswordEnv: 'HA_SETUP_SUDO', knownHostsFile: 'kh' };

  for (const [name, base] of Object.entries(bases)) {
    it(`${name}: every field x ${HOSTILE.length} hostile values`, async () => {
      let cases = 0;
      let refused = 0;
      for (const path of paths(base)) {
        for (const v of HOSTILE) {
          const doc = setAt(base, path, v);
          const text = stringify(doc);
          const r = await validate(text);
          expectClean(r, `${path.join('.') || '(root)'} = ${JSON.stringify(v)?.slice(0, 60)}`);
          cases++;
          if (r.code === 2) refused++;
        }
      }
      console.log(`${name}: ${cases} hostile runbooks, ${refused} refused with exit 2, the rest valid`);
      // Most hostile values are wrong for most fields: a validator that let them through would show.
      expect(refused / cases).toBeGreaterThan(0.8);
    }, 300_000);
  }

  it('structural YAML cases', async () => {
    const deep = `${Array.from({ length: 500 }, (_, i) => `${'  '.repeat(i)}k${i}:`).join('\n')} 1\n`;
    const cases: Array<[string, string]> = [
      ['empty file', ''],
      ['only a comment', '# nothing\n'],
      ['a scalar', 'hello\n'],
      ['a list', '- 1\n- 2\n'],
      ['two documents', 'version: 1\n---\nversion: 1\n'],
      ['duplicate keys', 'version: 1\nversion: 1\n'],
      ['a tab indent', 'version: 1\nnodes:\n\t- host: x\n'],
      ['unclosed flow', 'nodes: [ { host: 1\n'],
      ['unknown alias', 'nodes: *x\n'],
      [
        'billion laughs',
        [
          'a: &a [x, x, x, x, x, x, x, x, x]',
          ...'bcdefgh'.split('').map((k, i) => `${k}: &${k} [${Array(9).fill(`*${'abcdefgh'[i]}`).join(', ')}]`),
        ].join('\n'),
      ],
      ['a merge key', 'base: &b { host: 1 }\nnodes: [ { <<: *b, role: master } ]\n'],
      ['js function tag', 'version: !!js/function "function(){}"\n'],
      ['binary tag', 'name: !!binary aGVsbG8=\n'],
      ['deep nesting', deep],
      ['NUL bytes', 'version: 1\u0000\n'],
      ['invalid UTF-8', Buffer.from([0x76, 0x3a, 0x20, 0xff, 0xfe, 0x0a]).toString('latin1')],
      ['huge key', `${'k'.repeat(100_000)}: 1\n`],
      ['escape sequence key', '"\\e]0;pwned\\a": 1\n'],
      ['__proto__ key', '__proto__: { polluted: true }\nversion: 1\n'],
      ['constructor key', 'constructor: { prototype: { polluted: true } }\n'],
    ];
    for (const [what, text] of cases) {
      const r = await validate(text);
      expectClean(r, what);
      expect(r.code, what).toBe(2);
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});
