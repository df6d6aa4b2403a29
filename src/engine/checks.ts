import { shq, shqAll } from '../shell.js';
import type { Transport } from './transport.js';
import type { CheckContext, Step } from './types.js';

// Every step's check is a read-only script. A no-op apply used to run them one SSH exec each
// (about 20 per node under sudo); they go to the host together now, in one round trip per node.
// Starting a process costs milliseconds on a small VM: the prelude hashes every planned file in one
// sha256sum and reads marker files with the shell's own `read`, so a check spawns little of its own.

const MARK = 'ha-setup-check';

/**
 * Shell test: the file at `path` has this sha256 (answered from the prelude's one sha256sum when it hashed that path).
 */
export function fileHasSha256(path: string, sha256: string): string {
  return `ha_file_is ${shq(path)} ${shq(sha256)}`;
}

/** Shell test: the file at `path` holds exactly one line, `value` (a marker ha-setup wrote). */
export function fileHoldsLine(path: string, value: string): string {
  return `ha_line_is ${shq(path)} ${shq(value)}`;
}

/**
 * Defines the helpers above for a check script; `files` are hashed up front, together. A path that
 * was not, or whose sum differs, is hashed again on its own (a differing file is the rare case). Pure.
 */
export function checkPrelude(files: string[]): string {
  const paths = [...new Set(files)];
  return [
    `ha_sums="\n${paths.length > 0 ? `$(sha256sum -- ${shqAll(paths)} 2>/dev/null)` : ''}\n"`,
    `ha_file_is() { case "$ha_sums" in *"\n$2  $1\n"*) return 0 ;; esac; ` +
      `[ "$(sha256sum -- "$1" 2>/dev/null | cut -d' ' -f1)" = "$2" ]; }`,
    `ha_line_is() { ha_line=; ha_more=; { IFS= read -r ha_line; IFS= read -r ha_more; } 2>/dev/null <"$1" ` +
      `|| [ -n "$ha_line" ] || return 1; [ "$ha_line" = "$2" ] && [ -z "$ha_more" ]; }`,
  ].join('\n');
}

export interface CheckScript {
  id: string;
  script: string;
  /** The step's planned files: hashed by the prelude, once for every check of the batch. */
  files?: string[];
}

/** A step's check with its planned files (what the prelude hashes). */
export function stepCheck(step: Pick<Step, 'id' | 'check'>, ctx: CheckContext): CheckScript {
  return { id: step.id, script: step.check(ctx), files: ctx.plan.files.map((f) => f.path) };
}

/** One script running each check in its own subshell (an `exit` ends only that check), printing its status. Pure. */
export function batchedChecksScript(checks: CheckScript[]): string {
  return [
    checkPrelude(checks.flatMap((c) => c.files ?? [])),
    ...checks.map(
      (c) => `(\n${c.script.trim() || 'true'}\n) </dev/null >/dev/null 2>&1; echo ${shq(`${MARK} ${c.id}`)} $?`,
    ),
  ].join('\n');
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

/**
 * Runs the checks on one host in one round trip. A failure to run them at all gives an empty map: callers check one by
 * one.
 */
export async function runChecks(t: Transport, checks: CheckScript[]): Promise<Map<string, boolean>> {
  if (checks.length === 0) return new Map();
  try {
    const r = await t.exec(batchedChecksScript(checks), { quiet: true });
    return parseBatchedChecks(r.stdout);
  } catch {
    return new Map();
  }
}

/** Runs one check (with the prelude for its step's files); true when it exits 0. */
export async function runCheck(t: Transport, check: Omit<CheckScript, 'id'>): Promise<boolean> {
  return (await t.exec(`${checkPrelude(check.files ?? [])}\n${check.script}`, { quiet: true })).code === 0;
}
