import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  acquireScript,
  describeHolder,
  heartbeatScript,
  type LockInfo,
  releaseScript,
  STALE_S,
} from '../../src/engine/lock.js';

// The cluster lock's shell, run for real in bash on a temp file (the lab runs it on the nodes).
const run = (script: string) => spawnSync('bash', ['-c', `set -euo pipefail\n${script}`], { encoding: 'utf8' });
const info = (n: string): LockInfo => ({
  lockId: `id-${n}`,
  runId: `run-${n}`,
  owner: `op@laptop-${n}`,
  pid: 100,
  command: 'apply',
  startedAt: '2026-12-01T00:00:00Z',
});

describe('cluster lock', () => {
  it('one run holds it; a second is refused and told who holds it; release frees it', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'ha-lock-')), 'lock.json');
    expect(run(acquireScript(info('a'), file)).status).toBe(0);
    expect(run(acquireScript(info('a'), file)).status).toBe(0); // the holder again (a resumed step)
    const b = run(acquireScript(info('b'), file));
    expect(b.status).toBe(4);
    expect(describeHolder(b.stdout)).toMatch(
      /^run run-a \(`ha-setup apply` by op@laptop-a, pid 100, started 2026-12-01T00:00:00Z, alive \d+ s ago\)$/,
    );
    expect(run(heartbeatScript('id-a', file)).status).toBe(0);
    expect(run(releaseScript('id-b', file)).status).toBe(0); // not b's: stays
    expect(run(acquireScript(info('b'), file)).status).toBe(4);
    expect(run(releaseScript('id-a', file)).status).toBe(0);
    expect(run(acquireScript(info('b'), file)).status).toBe(0);
  });

  it(
    'a lock without a heartbeat for longer than the stale time is taken over, ' +
      'and its holder learns it lost the lock',
    () => {
      const file = join(mkdtempSync(join(tmpdir(), 'ha-lock-')), 'lock.json');
      expect(run(acquireScript(info('a'), file)).status).toBe(0);
      execFileSync('touch', ['-d', `-${STALE_S + 5} seconds`, file]);
      const b = run(acquireScript(info('b'), file));
      expect(b.status).toBe(0);
      expect(b.stdout).toMatch(/^stale: .*"runId":"run-a".* heartbeat \d+ s ago/);
      expect(run(heartbeatScript('id-a', file)).status).toBe(4);
    },
  );
});
