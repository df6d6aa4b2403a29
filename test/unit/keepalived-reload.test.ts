import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { wrapScript } from '../../src/engine/transport.js';
import { reloadCommand } from '../../src/steps/keepalived-config.js';

/**
 * Runs reloadCommand under bash as the executor does (set -euo pipefail), with systemctl and
 * journalctl replaced by scripts: keepalived `active` or not; the journal logs the VRRP process's
 * "Reloading" `lag` seconds after the reload (what a real keepalived does in a few ms).
 */
function run(o: { active: boolean; lag: number }) {
  const dir = mkdtempSync(join(tmpdir(), 'ha-reload-'));
  const witness = join(dir, 'check_witness.sh');
  writeFileSync(witness, '#!/bin/sh\nexit 0\n');
  const bin = join(dir, 'bin');
  const stub = (name: string, body: string) => {
    execFileSync('mkdir', ['-p', bin]);
    writeFileSync(join(bin, name), `#!/bin/bash\n${body}\n`);
    chmodSync(join(bin, name), 0o755);
  };
  const reloadedAt = join(dir, 'reloaded-at');
  stub(
    'systemctl',
    `case "$1" in is-active) ${o.active ? 'exit 0' : 'exit 3'};; ` +
      `reload) date +%s.%N > ${reloadedAt}; [ -e ${witness} ] && echo "witness present at reload";; esac`,
  );
  stub(
    'journalctl',
    `case " $* " in *" --show-cursor "*) echo 'an old line'; echo '-- cursor: s=1';; ` +
      `*" --after-cursor s=1 "*) [ -e ${reloadedAt} ] && ` +
      `awk -v t="$(cat ${reloadedAt})" -v now="$(date +%s.%N)" 'BEGIN { exit !(now - t >= ${o.lag}) }' && ` +
      `echo 'Dec 08 01:27:59 node1 Keepalived_vrrp[55]: Reloading';; esac; exit 0`,
  );
  const started = Date.now();
  const out = execFileSync('bash', ['-c', wrapScript(reloadCommand(witness))], {
    env: { ...process.env, PATH: `${bin}:${process.env.PATH}` },
  }).toString();
  return { out, ms: Date.now() - started, gone: !existsSync(witness), reloaded: existsSync(reloadedAt) };
}

describe('keepalived-config: reload, and the witness script once vrrp.witness is removed', () => {
  it('with a witness in the runbook only reloads a running keepalived', () => {
    expect(reloadCommand()).toBe('if systemctl is-active --quiet keepalived; then systemctl reload keepalived; fi');
  });

  it('removes the script only after the VRRP process logged its reload, not as soon as the reload returns', () => {
    const r = run({ active: true, lag: 0.5 });
    expect(r.out).toContain('witness present at reload');
    expect(r.reloaded).toBe(true);
    expect(r.gone).toBe(true);
    expect(r.out).toContain('(vrrp.witness is gone)');
    // 0.5 s until "Reloading", then 1 s more; never the 10 s fallback.
    expect(r.ms).toBeGreaterThanOrEqual(1400);
    expect(r.ms).toBeLessThan(8000);
  });

  it('keepalived not running: no reload, the script goes at once', () => {
    const r = run({ active: false, lag: 0 });
    expect(r.reloaded).toBe(false);
    expect(r.gone).toBe(true);
    expect(r.ms).toBeLessThan(1000);
  });
});
