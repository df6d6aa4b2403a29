import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Listr, type DefaultRenderer, type ListrTaskWrapper, type SimpleRenderer } from 'listr2';
import { CancelledError, HaSetupError, RunFailedError } from '../errors.js';
import { tail } from '../local.js';
import type { Runbook } from '../runbook/schema.js';
import type { SiteFiles } from '../runbook/site-files.js';
import { type CheckScript, runCheck, runChecks, stepCheck } from './checks.js';
import { decide, digestPlan, fingerprintPlan, type RecordedEntry } from './decide.js';
import { mirrorJournal, parseJournal, saveJournal, type Journal } from './journal.js';
import { appliesTo, resolveNodes } from './nodes.js';
import { runbookDir, type NodeHandle } from './session.js';
import { CommandFailedError, ConnectError } from './transport.js';
import type { LocalSource, ResolvedNode, Step, StepContext, StepPlan } from './types.js';

export interface StepOutcome {
  id: string;
  action: 'ran' | 'skipped' | 'failed' | 'not reached';
  reason: string;
  durationMs: number;
}

export interface NodeOutcome {
  node: ResolvedNode;
  ok: boolean;
  steps: StepOutcome[];
  /** With stopBeforeDisruptive: the disruptive step this node stopped before (it has work left). */
  pendingDisruptive?: string;
  failure?: StepFailure;
  warnings: string[];
  logPath: string;
}

/** A failed step with everything the report needs. */
export class StepFailure extends RunFailedError {
  constructor(
    readonly nodeName: string,
    readonly stepId: string,
    readonly cause: unknown,
    readonly logPath: string,
  ) {
    super(`${nodeName}: step ${stepId} failed`);
  }

  report(runbookPath: string): string[] {
    const lines = [`node:      ${this.nodeName}`, `step:      ${this.stepId}`];
    const c = this.cause;
    if (c instanceof CommandFailedError) {
      lines.push(
        `command:   ${c.command.split('\n').join('\n           ')}`,
        `exit code: ${c.exitCode}`,
        'last output:',
      );
      lines.push(...tail(c.output, 20).map((l) => `  | ${l}`));
    } else if (c instanceof HaSetupError) {
      lines.push(`error:     ${c.message}`, ...c.details.map((d) => `  ${d}`));
    } else {
      lines.push(`error:     ${c instanceof Error ? c.message : String(c)}`);
    }
    lines.push(`log:       ${this.logPath}`);
    lines.push(
      this.stepId === 'preflight'
        ? `next:      fix the cause, then run ` +
            `\`ha-setup apply ${runbookPath}\` again (preflight stopped the run before any step)`
        : `next:      fix the cause, then run \`ha-setup apply ${runbookPath}\` again; it resumes at this step`,
    );
    return lines;
  }
}

export interface ExecuteOptions {
  runbook: Runbook;
  runbookPath: string;
  handles: NodeHandle[];
  steps: Step[];
  sources: Record<string, LocalSource>;
  siteFiles?: SiteFiles;
  secrets: Record<string, string>;
  concurrency: number;
  /** At most this many nodes run a step that compiles at the same time (unset: no limit). */
  buildConcurrency?: number;
  renderer: 'default' | 'simple' | 'silent';
  runId: string;
  /** Stop a node before the first disruptive step that would run (the roll continues it alone). */
  stopBeforeDisruptive?: boolean;
  /** Steps that ran per node, kept across calls so a dependent step still knows its dependency ran. */
  rerun?: Map<string, Set<string>>;
  /** Each node's journal as this run left it, kept across calls (the facts hold the one read at connect). */
  journals?: Map<string, Journal>;
  /**
   * Stop at the next safe point: no step starts once it is aborted (the running one finishes).
   * A hard stop (the CLI's second Ctrl-C) closes the connections instead; the journal keeps the
   * interrupted step as running, so the next apply runs it again.
   */
  signal?: AbortSignal;
}

/** A counting semaphore: `run` waits for one of `size` slots. */
export function slots(size: number) {
  let free = size;
  const waiting: Array<() => void> = [];
  return async <T>(run: () => Promise<T>): Promise<T> => {
    if (free > 0) free--;
    else await new Promise<void>((resolve) => waiting.push(resolve));
    try {
      return await run();
    } finally {
      const next = waiting.shift();
      if (next) next();
      else free++;
    }
  };
}

type StepFlag = Step['disruptive'] | Step['compiles'];
const flagFor = (flag: StepFlag, pc: Parameters<Step['plan']>[0]) =>
  typeof flag === 'function' ? flag(pc) : flag === true;

export const compiles = (step: Step, pc: Parameters<Step['plan']>[0]): boolean => flagFor(step.compiles, pc);

export const isDisruptive = (step: Step, pc: Parameters<Step['plan']>[0]): boolean => flagFor(step.disruptive, pc);

export function localJournalPath(runbookPath: string, rb: Runbook, node: ResolvedNode): string {
  return join(runbookDir(runbookPath), 'records', rb.name, `${node.name}.journal.json`);
}

export function substituteSecrets(content: string, secrets: Record<string, string>): string {
  return content.replace(/@@secret:([A-Za-z_][A-Za-z0-9_]*)@@/g, (_, name: string) => {
    const v = secrets[name];
    if (v === undefined) throw new RunFailedError(`the secret ${name} is needed but not set`);
    return v;
  });
}

/** The default `run`: files, then uploads, then commands, each command separately so a failure names it. */
export async function runPlan(ctx: StepContext): Promise<void> {
  for (const f of ctx.plan.files) {
    await ctx.t.writeFile(f.path, substituteSecrets(f.content, ctx.secrets), {
      mode: f.mode,
      owner: f.owner,
      group: f.group,
    });
  }
  for (const u of ctx.plan.uploads) await ctx.t.upload(u.local, u.remote, { mode: u.mode });
  for (const cmd of ctx.plan.commands) await runCommand(ctx, cmd);
}

export async function runCommand(ctx: Pick<StepContext, 't' | 'progress'>, cmd: string): Promise<string> {
  const r = await ctx.t.exec(cmd, { onLine: ctx.progress });
  if (r.code !== 0) throw new CommandFailedError(cmd, r.code, `${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/**
 * Run the ordered steps on every node: nodes in parallel (bounded), steps in order per node.
 * A step is skipped when its journal entry is done with the same fingerprint and its check passes
 * on the host; a step whose dependency ran runs too. A failing node stops its own later steps only.
 */
export async function executeSteps(o: ExecuteOptions): Promise<NodeOutcome[]> {
  const outcomes = new Map<string, NodeOutcome>();
  const interrupted = () => o.signal?.aborted === true;
  const compileSlot = o.buildConcurrency ? slots(o.buildConcurrency) : <T>(run: () => Promise<T>) => run();

  const nodeTask =
    (h: NodeHandle) =>
    async (
      _ctx: unknown,
      task: ListrTaskWrapper<unknown, typeof DefaultRenderer | typeof SimpleRenderer, typeof SimpleRenderer>,
    ) => {
      const outcome: NodeOutcome = { node: h.node, ok: true, steps: [], warnings: [], logPath: h.logPath };
      outcomes.set(h.node.name, outcome);
      const journal: Journal = o.journals?.get(h.node.name) ?? parseJournal(h.facts.journal, o.runbook.name);
      o.journals?.set(h.node.name, journal);
      const localJournal = localJournalPath(o.runbookPath, o.runbook, h.node);
      // The mirror follows the host even when no step runs (a new runbook copy, a no-op apply).
      mirrorJournal(journal, localJournal);
      const rerun = o.rerun?.get(h.node.name) ?? new Set<string>();
      o.rerun?.set(h.node.name, rerun);
      const mine = o.steps.filter((s) => appliesTo(s, h.node));
      const base = {
        runbook: o.runbook,
        node: h.node,
        // Every node of the runbook, not only those this call works on (a roll runs one node at a
        // time, --limit a few): unicast peers and the ACME peers are the whole cluster.
        cluster: resolveNodes(o.runbook),
        facts: h.facts,
        sources: o.sources,
        siteFiles: o.siteFiles,
        clusterFacts: Object.fromEntries(o.handles.map((x) => [x.node.name, x.facts])),
      };
      // Every check the journal leaves to the host goes there in one round trip; the answers hold
      // until a step runs on this node, then the checks of the steps after it go again, together.
      const plans = new Map<string, StepPlan>();
      for (const step of mine) {
        try {
          plans.set(step.id, step.plan(base));
        } catch {
          // Planned again in the loop below, which reports the error at its step.
        }
      }
      const checksFrom = (from: number) => {
        const batch: CheckScript[] = [];
        for (const step of mine.slice(from)) {
          const plan = plans.get(step.id);
          if (!plan || (rerun.has(step.id) && !step.always)) continue;
          try {
            if (decide(step, plan, journal.steps[step.id] as RecordedEntry | undefined, rerun).action === 'check')
              batch.push(stepCheck(step, { ...base, plan, secrets: o.secrets }));
          } catch {
            // Checked again one by one below, which reports the error at its step.
          }
        }
        return runChecks(h.t, batch);
      };
      let prechecked = await checksFrom(0);
      let checksStale = false;
      for (const [i, step] of mine.entries()) {
        if (interrupted()) {
          // A safe point: between two steps. The rest is left for the next apply.
          outcome.ok = false;
          for (const rest of mine.slice(i))
            outcome.steps.push({ id: rest.id, action: 'not reached', reason: 'interrupted', durationMs: 0 });
          outcome.failure = new StepFailure(
            h.node.name,
            step.id,
            new CancelledError(`interrupted before ${step.id}`),
            h.logPath,
          );
          return;
        }
        const started = Date.now();
        task.title = `${h.node.name}: ${step.title} (${i + 1}/${mine.length})`;
        let plan: StepPlan;
        let ctx: StepContext;
        try {
          plan = plans.get(step.id) ?? step.plan(base);
          ctx = {
            ...base,
            plan,
            t: h.t,
            secrets: o.secrets,
            // The default renderer shows the latest line in place; the line-based renderer would print
            // every compiler line, so it shows only the steps.
            progress:
              o.renderer === 'default'
                ? (line) => {
                    task.output = line.slice(0, 200);
                  }
                : () => {},
            warn: (message) => {
              outcome.warnings.push(`${step.id}: ${message}`);
            },
          };
          const entry = journal.steps[step.id] as RecordedEntry | undefined;
          // Already ran in this apply (before a roll continued this node): done.
          if (rerun.has(step.id) && !step.always) {
            outcome.steps.push({ id: step.id, action: 'skipped', reason: 'done', durationMs: Date.now() - started });
            continue;
          }
          let d = decide(step, plan, entry, rerun);
          if (d.action === 'check') {
            if (checksStale) {
              prechecked = await checksFrom(i);
              checksStale = false;
            }
            const known = prechecked.get(step.id);
            d =
              (known ?? (await runCheck(h.t, stepCheck(step, ctx))))
                ? { action: 'skip', reason: 'done' }
                : { action: 'run', reason: 'the host no longer matches (check failed)' };
          }
          if (d.action === 'skip') {
            outcome.steps.push({ id: step.id, action: 'skipped', reason: 'done', durationMs: Date.now() - started });
            continue;
          }
          if (o.stopBeforeDisruptive && isDisruptive(step, base)) {
            outcome.pendingDisruptive = step.id;
            break;
          }
          task.output = `${step.id}: running (${d.reason})`;
          // A read-only step (preflight) leaves no journal entry and does not change what the checks saw.
          const record: RecordedEntry | undefined = step.readOnly
            ? undefined
            : {
                fingerprint: fingerprintPlan(plan),
                status: 'running',
                startedAt: new Date().toISOString(),
                commands: plan.commands,
                files: plan.files.map((f) => f.path),
                digest: digestPlan(plan),
                dependsOn: step.dependsOn,
              };
          if (record) {
            journal.steps[step.id] = record;
            checksStale = true;
            await saveJournal(h.t, journal, localJournal);
          }
          const work = () => (step.run ? step.run(ctx) : runPlan(ctx));
          // Without --build-concurrency every node compiles at once: there is no slot to wait for.
          if (compiles(step, base) && o.buildConcurrency) {
            task.output = `${step.id}: waiting for a build slot (--build-concurrency ${o.buildConcurrency})`;
            await compileSlot(work);
          } else await work();
          if (record) {
            record.status = 'done';
            record.endedAt = new Date().toISOString();
            record.durationMs = Date.now() - started;
            await saveJournal(h.t, journal, localJournal);
          }
          rerun.add(step.id);
          outcome.steps.push({ id: step.id, action: 'ran', reason: d.reason, durationMs: Date.now() - started });
        } catch (e) {
          outcome.ok = false;
          outcome.steps.push({
            id: step.id,
            action: 'failed',
            reason: e instanceof Error ? e.message : String(e),
            durationMs: Date.now() - started,
          });
          for (const rest of mine.slice(i + 1))
            outcome.steps.push({ id: rest.id, action: 'not reached', reason: '', durationMs: 0 });
          const entry = journal.steps[step.id];
          if (entry && entry.status === 'running' && !(e instanceof ConnectError) && !interrupted()) {
            entry.status = 'failed';
            entry.endedAt = new Date().toISOString();
            await saveJournal(h.t, journal, localJournal).catch(() => {});
          }
          outcome.failure = new StepFailure(h.node.name, step.id, e, h.logPath);
          throw outcome.failure;
        }
      }
      const tally = (action: string) => outcome.steps.filter((s) => s.action === action).length;
      task.title = `${h.node.name}: ${tally('ran')} ran, ${tally('skipped')} already done`;
    };

  const list = new Listr(
    o.handles.map((h) => ({ title: h.node.name, task: nodeTask(h) })),
    {
      concurrent: o.concurrency,
      exitOnError: false,
      registerSignalListeners: false,
      renderer: o.renderer,
      fallbackRenderer: 'simple',
      rendererOptions: { collapseErrors: false, showErrorMessage: false } as never,
    },
  );
  await list.run();
  if (interrupted()) {
    const where = [...outcomes.values()].map(
      (x) =>
        `${x.node.name}: ${x.steps.filter((s) => s.action === 'ran').length} step(s) ran${
          x.failure ? `, stopped before ${x.failure.stepId}` : ', done'
        }`,
    );
    throw new CancelledError(
      `interrupted (${where.join('; ')}); run \`ha-setup apply\` again to resume where it stopped`,
    );
  }
  return o.handles.map(
    (h) => outcomes.get(h.node.name) ?? { node: h.node, ok: false, steps: [], warnings: [], logPath: h.logPath },
  );
}

export function writeRunRecord(
  o: ExecuteOptions,
  outcomes: NodeOutcome[],
  startedAt: Date,
  extra: Record<string, unknown> = {},
): string {
  const dir = join(runbookDir(o.runbookPath), 'records', o.runbook.name);
  mkdirSync(dir, { recursive: true });
  const record = {
    runId: o.runId,
    runbook: o.runbook.name,
    startedAt: startedAt.toISOString(),
    endedAt: new Date().toISOString(),
    // What was built: every source with its checksum, and for git sources the exact commit.
    sources: Object.values(o.sources).map((s) => ({
      id: s.id,
      version: s.version,
      sha256: s.sha256,
      ...(s.git ? { git: s.git } : {}),
    })),
    ...extra,
    nodes: outcomes.map((out) => {
      const f = o.handles.find((h) => h.node.name === out.node.name)!.facts;
      return {
        name: out.node.name,
        host: out.node.host,
        role: out.node.role,
        ok: out.ok,
        facts: {
          os: `${f.osId} ${f.osVersion}`,
          release: f.release,
          family: f.family,
          arch: f.arch,
          cores: f.cores,
          memoryMb: f.memoryMb,
          firewall: f.firewall,
          selinux: f.selinux,
        },
        steps: out.steps,
        log: out.logPath,
      };
    }),
  };
  const file = join(dir, `run-${o.runId}.json`);
  writeFileSync(file, JSON.stringify(record, null, 2));
  writeFileSync(join(dir, 'last-run.json'), JSON.stringify(record, null, 2));
  return file;
}
