import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  batchedChecksScript,
  checkPrelude,
  fileHasSha256,
  fileHoldsLine,
  parseBatchedChecks,
} from '../../src/engine/checks.js';
import { assumedFacts } from '../../src/engine/facts.js';
import { osProfile } from '../../src/engine/os-profile.js';
import { hostProbeScript, parseHostProbe } from '../../src/steps/preflight.js';
import { loadRunbook } from '../../src/runbook/io.js';

// The checks' shell helpers run in a real POSIX shell (dash on Debian, as on the nodes), against
// real files: a check that passes wrongly would leave a changed host unrepaired.
const sh = (script: string) => spawnSync('sh', ['-c', script], { encoding: 'utf8' });
const sha = (s: string) => createHash('sha256').update(s).digest('hex');

describe('check helpers', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ha-setup-checks-'));
  const conf = join(dir, 'nginx.conf');
  const other = join(dir, "it's here.conf");
  const marker = join(dir, '.ha-setup-built');
  const twoLines = join(dir, 'two-lines');
  const noNewline = join(dir, 'no-newline');
  writeFileSync(conf, 'worker_processes 2;\n');
  writeFileSync(other, 'x\n');
  writeFileSync(marker, 'abc123\n');
  writeFileSync(twoLines, 'abc123\nmore\n');
  writeFileSync(noNewline, 'abc123');

  const passes = (files: string[], test: string) => sh(`${checkPrelude(files)}\n${test}`).status === 0;

  it('a file matches its sum whether the prelude hashed it or not; another sum or a missing file does not', () => {
    for (const hashed of [[conf, other], []]) {
      expect(passes(hashed, fileHasSha256(conf, sha('worker_processes 2;\n')))).toBe(true);
      expect(passes(hashed, fileHasSha256(other, sha('x\n')))).toBe(true);
      expect(passes(hashed, fileHasSha256(conf, sha('worker_processes 3;\n')))).toBe(false);
      expect(passes(hashed, fileHasSha256(join(dir, 'absent'), sha('')))).toBe(false);
    }
    // One path's sum never answers for another path.
    expect(passes([conf, other], fileHasSha256(other, sha('worker_processes 2;\n')))).toBe(false);
  });

  it(
    'a marker holds exactly its one line (a trailing newline or none); a second line, ' +
      'another value or no file fails',
    () => {
      expect(passes([], fileHoldsLine(marker, 'abc123'))).toBe(true);
      expect(passes([], fileHoldsLine(noNewline, 'abc123'))).toBe(true);
      expect(passes([], fileHoldsLine(marker, 'abc12'))).toBe(false);
      expect(passes([], fileHoldsLine(twoLines, 'abc123'))).toBe(false);
      expect(passes([], fileHoldsLine(join(dir, 'absent'), ''))).toBe(false);
      expect(passes([], fileHoldsLine(marker, "abc123' ; true ; '"))).toBe(false);
    },
  );

  it('in a batch, every check sees the prelude of all files', () => {
    const out = execFileSync(
      'sh',
      [
        '-c',
        batchedChecksScript([
          { id: 'config', script: fileHasSha256(conf, sha('worker_processes 2;\n')), files: [conf] },
          { id: 'other', script: fileHasSha256(other, sha('y\n')), files: [other] },
          { id: 'marker', script: fileHoldsLine(marker, 'abc123') },
        ]),
      ],
      { encoding: 'utf8' },
    );
    expect([...parseBatchedChecks(out)]).toEqual([
      ['config', true],
      ['other', false],
      ['marker', true],
    ]);
  });

  const hasDpkg = sh('command -v dpkg-query').status === 0;
  it.skipIf(!hasDpkg)(
    'Debian: one dpkg-query tells whether every package is installed, with or without the architecture',
    () => {
      const test = osProfile(assumedFacts('debian12')).allInstalledTest;
      const arch = sh('dpkg --print-architecture').stdout.trim();
      const installed = (pkgs: string[]) => sh(test(pkgs)).status === 0;
      expect(installed(['dpkg', 'libc6', `libc6:${arch}`])).toBe(true);
      expect(installed(['dpkg', 'ha-setup-no-such-package'])).toBe(false);
      expect(installed(['ha-setup-no-such-package', 'dpkg'])).toBe(false);
      expect(installed(["it's"])).toBe(false);
    },
  );
});

describe("preflight's host probe", () => {
  it('reads listeners, our nginx, the hook and our keepalived from one output', () => {
    const rb = loadRunbook(join(import.meta.dirname, '..', '..', 'runbooks', 'example-nginx-lua.yaml')).runbook;
    const script = hostProbeScript(rb);
    expect(script.match(new RegExp(`ss -Hltnp 'sport = :${rb.site.listen}'`, 'g'))).toHaveLength(2);
    expect(script).not.toContain('hook-executable');
    const withHook = hostProbeScript({ ...rb, keepalived: { ...rb.keepalived, notifyHook: '/usr/local/bin/page me' } });
    expect(withHook).toContain(
      "[ -f '/usr/local/bin/page me' ] && [ -x '/usr/local/bin/page me' ] && echo hook-executable",
    );
    const probe = parseHostProbe(
      [
        'port 80 LISTEN 0 511 0.0.0.0:80 0.0.0.0:* users:(("nginx",pid=7144,fd=7))',
        'port 80 LISTEN 0 511 [::]:80 [::]:* users:(("nginx",pid=7144,fd=8))',
        'port 443 LISTEN 0 511 0.0.0.0:443 0.0.0.0:* users:(("apache2",pid=9,fd=3))',
        'ours 80',
        'our-keepalived',
      ].join('\n'),
    );
    expect(probe.portUsers.get(80)).toHaveLength(2);
    expect(probe.portUsers.get(443)?.[0]).toContain('apache2');
    expect([...probe.ourNginx]).toEqual([80]);
    expect(probe.ourKeepalived).toBe(true);
    expect(probe.hookExecutable).toBe(false);
    expect(parseHostProbe('')).toEqual({
      portUsers: new Map(),
      ourNginx: new Set(),
      hookExecutable: false,
      ourKeepalived: false,
    });
  });
});
