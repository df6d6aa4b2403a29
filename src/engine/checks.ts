import { shq } from '../shell.js';
import type { Transport } from './transport.js';

// Every step's check is a read-only script. A no-op apply used to run them one SSH exec each
// (about 20 per node under sudo); they go to the host together now, in one round trip per node.

const MARK = 'ha-setup-check';

/** One script running each check in its own subshell (an `exit` ends only that check), printing its status. Pure. */
export function batchedChecksScript(checks: Array<{ id: string; script: string }>): string {
  return checks
    .map((c) => `(\n${c.script.trim() || 'true'}\n) </dev/null >/dev/null 2>&1; echo ${shq(`${MARK} ${c.id}`)} $?`)
    .join('\n');
}

/** Which checks passed, by id. A check without a status line (the batch broke off) is absent. Pure. */
export function parseBatchedChecks(output: string): Map<string, boolean> {
  const results = new Map<string, boolean>();
  for (const line of output.split('\n')) {
    const m = new RegExp(`^${MARK} (\\S+) (\\d+)$`).exec(line.trim());
    if (m) results.set(m[1], m[2] === '0');
  }
  return results;
}

/** Runs the checks on one host in one round trip. A failure to run them at all gives an empty map: callers check one by one. */
export async function runChecks(
  t: Transport,
  checks: Array<{ id: string; script: string }>,
): Promise<Map<string, boolean>> {
  if (checks.length === 0) return new Map();
  try {
    const r = await t.exec(batchedChecksScript(checks), { quiet: true });
    return parseBatchedChecks(r.stdout);
  } catch {
    return new Map();
  }
}

/** Runs one check; true when it exits 0. */
export async function runCheck(t: Transport, script: string): Promise<boolean> {
  return (await t.exec(script, { quiet: true })).code === 0;
}
