import { createHash } from 'node:crypto';
import type { JournalEntry } from './journal.js';
import type { Step, StepPlan } from './types.js';

// Pure decision logic: which steps run and why. Unit-tested with a fake transport.

export interface PlanDigest {
  commands: string;
  files: Record<string, string>;
  uploads: Record<string, string>;
}

export function digestPlan(plan: StepPlan): PlanDigest {
  const h = (s: string) => createHash('sha256').update(s).digest('hex').slice(0, 16);
  return {
    commands: h(JSON.stringify(plan.commands)),
    files: Object.fromEntries(
      plan.files.map((f) => [f.path, h(`${f.mode}:${f.owner ?? ''}:${f.group ?? ''}:${f.content}`)]),
    ),
    uploads: Object.fromEntries(plan.uploads.map((u) => [u.remote, u.sha256.slice(0, 16)])),
  };
}

/** The step's input fingerprint: a hash of its plan (commands, file contents and modes, uploads). */
export function fingerprintPlan(plan: StepPlan): string {
  return createHash('sha256')
    .update(JSON.stringify(digestPlan(plan)))
    .digest('hex');
}

/** Names what changed between the recorded digest and the new one, for "will re-run because ...". */
export function describeChange(before: PlanDigest | undefined, after: PlanDigest): string {
  if (!before) return 'its input changed';
  const parts: string[] = [];
  if (before.commands !== after.commands) parts.push('commands');
  for (const [path, h] of Object.entries(after.files)) if (before.files[path] !== h) parts.push(path);
  for (const path of Object.keys(before.files)) if (!(path in after.files)) parts.push(`${path} (removed)`);
  for (const [path, h] of Object.entries(after.uploads)) if (before.uploads[path] !== h) parts.push(path);
  return parts.length > 0 ? `${parts.join(', ')} changed` : 'its input changed';
}

export type Decision =
  | { action: 'skip'; reason: 'done' }
  | { action: 'run'; reason: string }
  | { action: 'check'; reason: 'fingerprint matches' };

export interface RecordedEntry extends JournalEntry {
  digest?: PlanDigest;
  /** The step's dependencies when it ran: a step that gained one runs again (recorded since 0.2). */
  dependsOn?: string[];
}

/**
 * Decide before the host check: run (with the reason) or check-then-skip. `rerun` holds the ids of
 * steps that already ran in this run; a step whose dependency ran runs too.
 */
export function decide(
  step: Step,
  plan: StepPlan,
  entry: RecordedEntry | undefined,
  rerun: ReadonlySet<string>,
): Decision {
  if (step.always) return { action: 'run', reason: 'always runs' };
  const dep = step.dependsOn.find((d) => rerun.has(d));
  if (dep) return { action: 'run', reason: `${dep} re-ran` };
  if (!entry) return { action: 'run', reason: 'not run yet' };
  if (entry.status === 'running') return { action: 'run', reason: 'it was interrupted' };
  if (entry.status === 'failed') return { action: 'run', reason: 'it failed last time' };
  // A dependency the step did not have when it last ran: what it depends on may have changed since.
  const added = entry.dependsOn ? step.dependsOn.filter((d) => !entry.dependsOn!.includes(d)) : [];
  if (added.length > 0) return { action: 'run', reason: `it now depends on ${added.join(', ')}` };
  const fp = fingerprintPlan(plan);
  if (entry.fingerprint !== fp) return { action: 'run', reason: describeChange(entry.digest, digestPlan(plan)) };
  return { action: 'check', reason: 'fingerprint matches' };
}
