import { randomUUID } from 'node:crypto';
import { hostname, userInfo } from 'node:os';
import { RunFailedError } from '../errors.js';
import { shq } from '../shell.js';
import type { NodeHandle } from './session.js';

// One change at a time per cluster (k0sctl's phase/lock.go is the model): apply, failover, rollback
// and verify take a lock on every node before they change anything. The lock file names the run and
// who started it; its mtime is the heartbeat, renewed while the run lives. A lock whose heartbeat
// is older than STALE_S belongs to a run that died (a lost laptop, kill -9) and is taken over.

export const LOCK_FILE = '/var/lib/ha-setup/lock.json';
export const STALE_S = 45;
const HEARTBEAT_MS = 10_000;

export interface LockInfo {
  /** Unique to this run (two runs can start in the same second). */
  lockId: string;
  runId: string;
  owner: string;
  pid: number;
  command: string;
  startedAt: string;
}

export class ClusterLockedError extends RunFailedError {}

/** Shell: take the lock for `info` unless a live run holds it (exit 4, printing the holder's lock). */
export function acquireScript(info: LockInfo, file = LOCK_FILE): string {
  const f = shq(file);
  return [
    `f=${f}; mkdir -p "$(dirname "$f")"`,
    // The check and the write under one flock, so two runs reaching a node at once cannot both win.
    'exec 9>>"$f.guard"; flock -w 10 9 || { echo "lock guard busy" >&2; exit 5; }',
    `if [ -s "$f" ] && ! grep -qF ${shq(`"lockId":"${info.lockId}"`)} "$f"; then`,
    '  age=$(( $(date +%s) - $(stat -c %Y "$f") ))',
    `  if [ "$age" -lt ${STALE_S} ]; then cat "$f"; echo; echo "heartbeat $age"; exit 4; fi`,
    '  echo "stale: $(cat "$f") heartbeat $age s ago"',
    'fi',
    `printf '%s\\n' ${shq(JSON.stringify(info))} > "$f.tmp" && chmod 600 "$f.tmp" && mv -f "$f.tmp" "$f"`,
  ].join('\n');
}

/** Shell: renew the heartbeat while the lock is still ours (exit 4 when another run took it). */
export function heartbeatScript(lockId: string, file = LOCK_FILE): string {
  return `grep -qF ${shq(`"lockId":"${lockId}"`)} ${shq(file)} && touch ${shq(file)} || exit 4`;
}

export function releaseScript(lockId: string, file = LOCK_FILE): string {
  return `if grep -qF ${shq(`"lockId":"${lockId}"`)} ${shq(file)} 2>/dev/null; then rm -f ${shq(file)}; fi`;
}

/** "who holds it" from what the acquire script printed for a held lock. Pure. */
export function describeHolder(out: string): string {
  const [json, hb] = out
    .trim()
    .split('\n')
    .filter((l) => l.trim() !== '');
  const age = /^heartbeat (\d+)$/.exec(hb ?? '')?.[1];
  try {
    const h = JSON.parse(json) as LockInfo;
    const alive = age ? `, alive ${age} s ago` : '';
    return `run ${h.runId} (\`ha-setup ${h.command}\` by ${h.owner}, pid ${h.pid}, started ${h.startedAt}${alive})`;
  } catch {
    return `a run whose lock cannot be read (${json.slice(0, 120)})`;
  }
}

export interface ClusterLock {
  release(): Promise<void>;
}

/**
 * Takes the lock on every node, in node order; a node held by a live run stops it (the locks taken so
 * far are given back). While held, the heartbeat runs; losing the lock (another run took it over
 * after the heartbeat failed for STALE_S) calls `onLost`.
 */
export async function acquireClusterLock(
  handles: NodeHandle[],
  o: { runId: string; command: string; log: (l: string) => void; onLost?: (why: string) => void },
): Promise<ClusterLock> {
  const info: LockInfo = {
    lockId: randomUUID(),
    runId: o.runId,
    owner: `${userInfo().username}@${hostname()}`,
    pid: process.pid,
    command: o.command,
    startedAt: new Date().toISOString(),
  };
  const taken: NodeHandle[] = [];
  const release = async () => {
    await Promise.all(taken.map((h) => h.t.exec(releaseScript(info.lockId), { quiet: true }).catch(() => undefined)));
  };
  for (const h of handles) {
    const r = await h.t.exec(acquireScript(info), { quiet: true });
    if (r.code === 4) {
      await release();
      throw new ClusterLockedError(`${h.node.name} is locked by ${describeHolder(r.stdout)}`, [
        'another ha-setup run is changing this cluster: wait for it to finish',
        `a run that died leaves its lock behind; it is taken over ${STALE_S} s after its last heartbeat`,
      ]);
    }
    if (r.code !== 0) {
      await release();
      throw new RunFailedError(`cannot take the lock on ${h.node.name}: ${(r.stderr || r.stdout).trim()}`);
    }
    if (r.stdout.startsWith('stale:')) o.log(`${h.node.name}: took over a stale lock (${r.stdout.trim().slice(7)})`);
    taken.push(h);
  }
  let lost = false;
  const beat = setInterval(() => {
    for (const h of taken) {
      h.t.exec(heartbeatScript(info.lockId), { quiet: true }).then(
        (r) => {
          if (r.code === 4 && !lost) {
            lost = true;
            o.onLost?.(`${h.node.name}: another run took the lock over`);
          }
        },
        () => undefined,
      );
    }
  }, HEARTBEAT_MS);
  beat.unref();
  return {
    async release() {
      clearInterval(beat);
      await release();
    },
  };
}
