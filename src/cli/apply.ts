import type { Command } from 'commander';
import { CancelledError, InvalidInputError, RunFailedError } from '../errors.js';
import { resolveNodes } from '../engine/nodes.js';
import type { Runbook } from '../runbook/schema.js';
import { keepalivedLogTail } from '../engine/cluster.js';
import { settledHolder, waitForExpectedHolder } from '../verify/expected.js';
import { executeSteps, writeRunRecord, type ExecuteOptions, type NodeOutcome } from '../engine/executor.js';
import type { Journal } from '../engine/journal.js';
import { acquireClusterLock } from '../engine/lock.js';
import { clusterState, rollDisruptive, RollStoppedError, type RollEvent } from '../orchestrate/roll.js';
import { loadSecrets, newRunId, openSession, runbookDir, type NodeHandle } from '../engine/session.js';
import type { Step } from '../engine/types.js';
import { join } from 'node:path';
import { writeHandover } from '../docs/handover.js';
import {
  loadRunbook,
  readSecretsFile,
  recordPinsInRunbook,
  runbookToYaml,
  secretsPathFor,
  writeFileAtomic,
  writeSecretsFile,
} from '../runbook/io.js';
import { replayRunbook } from '../runbook/replay.js';
import { readSiteFiles, type SiteFiles } from '../runbook/site-files.js';
import { runVerify } from './verify.js';
import { prepareSources } from '../sources/prepare.js';
import { INSTALL_STEPS, PREFLIGHT } from '../steps/index.js';
import { terminalConfirm, version, withInterrupts, type CliContext } from './context.js';

export interface ApplyFlags {
  concurrency?: string;
  buildConcurrency?: string;
  acceptNewHostKeys?: boolean;
  renderer?: 'default' | 'simple' | 'silent';
  hosts?: string;
  vip?: string;
  name?: string;
  verify?: boolean;
  limit?: string;
  trustOnFirstDownload?: boolean;
}

export function registerApply(program: Command, ctx: CliContext): void {
  program
    .command('apply')
    .description('execute the runbook on every node over SSH (resumable: run it again after a failure)')
    .argument('<runbook>', 'runbook file')
    .option('--concurrency <n>', 'nodes worked on at the same time', '8')
    .option(
      '--build-concurrency <n>',
      'nodes that compile at the same time (default: all); 1 leaves the other nodes their CPU for traffic, ' +
        'and nodes sharing a compiler cache then hit it',
    )
    .option('--accept-new-host-keys', 'trust and record host keys not seen before (a changed key always fails)')
    .option('--renderer <name>', 'task list output: default, simple or silent')
    .option(
      '--hosts <list>',
      'replay: build the same cluster on these hosts (in node order) and write a runbook for it',
    )
    .option('--vip <cidr>', "replay: the new cluster's VIP")
    .option('--name <name>', "replay: the new runbook's name")
    .option('--limit <nodes>', 'work on these nodes only (names or addresses, comma-separated)')
    .option(
      '--trust-on-first-download',
      'accept sources without a pin once: print their sha256 or commit and record it in the runbook',
    )
    .option('--no-verify', 'skip the failover test at the end even when verify.failover is true')
    .action(async (file: string, flags: ApplyFlags) => {
      const target = flags.hosts ? writeReplay(file, flags, ctx) : file;
      ctx.result = await runApply(target, flags, ctx);
    });
}

export async function runApply(
  file: string,
  flags: ApplyFlags,
  ctx: CliContext,
  steps: Step[] = INSTALL_STEPS,
): Promise<number> {
  // Bad counts are refused before anything connects.
  nodeCounts(flags);
  const { path, runbook } = loadRunbook(file);
  const secrets = loadSecrets(runbook, path);
  const runId = newRunId();
  const startedAt = new Date();
  const siteFiles = readSiteFiles(runbook, runbookDir(path));
  const only = flags.limit ? limitToIndexes(runbook, flags.limit) : undefined;
  const handles = await openSession(
    {
      runbookPath: path,
      runbook,
      acceptNewHostKeys: flags.acceptNewHostKeys === true,
      confirmHostKey: terminalConfirm(ctx),
      runId,
      only,
    },
    secrets,
  );
  const hardStop = () => {
    for (const h of handles) void h.t.close();
  };
  try {
    // One change at a time: a second apply (or failover, rollback, verify) on this cluster refuses.
    const lock = await acquireClusterLock(handles, {
      runId,
      command: 'apply',
      log: ctx.print,
      onLost: (why) => {
        ctx.printError(`lost the cluster lock (${why}): stopping`);
        hardStop();
      },
    });
    try {
      return await withInterrupts(ctx, hardStop, (signal) =>
        applyConnected(path, runbook, handles, secrets, siteFiles, runId, startedAt, only, flags, ctx, steps, signal),
      );
    } finally {
      await lock.release();
    }
  } finally {
    await Promise.all(handles.map((h) => h.t.close()));
  }
}

async function applyConnected(
  path: string,
  runbook: Runbook,
  handles: NodeHandle[],
  secrets: Record<string, string>,
  siteFiles: SiteFiles,
  runId: string,
  startedAt: Date,
  only: number[] | undefined,
  flags: ApplyFlags,
  ctx: CliContext,
  steps: Step[],
  signal: AbortSignal,
): Promise<number> {
  {
    // Sources after connecting: which ones are needed can depend on the nodes' OS family.
    const { sources, learned } = await prepareSources(runbook, runbookDir(path), {
      log: ctx.print,
      trustOnFirstDownload: flags.trustOnFirstDownload === true,
      families: [...new Set(handles.map((h) => h.facts.family))],
    });
    if (learned.length > 0) {
      recordPinsInRunbook(path, learned);
      for (const p of learned)
        ctx.print(`pinned in ${path}: ${p.id} ${p.version} ${p.sha256 ? `sha256 ${p.sha256}` : `commit ${p.commit}`}`);
    }
    const base: Omit<ExecuteOptions, 'steps'> = {
      runbook,
      runbookPath: path,
      handles,
      sources,
      secrets,
      siteFiles,
      ...nodeCounts(flags),
      renderer: flags.renderer ?? (ctx.interactive ? 'default' : 'simple'),
      runId,
      signal,
    };
    // Preflight on every node first: one report for the whole cluster, nothing changed yet. Whether
    // the cluster serves is asked alongside (it reads only).
    const [pre, { serving, views: viewsAtStart }] = await Promise.all([
      executeSteps({ ...base, steps: [PREFLIGHT] }),
      clusterState(base),
    ]);
    if (pre.some((o) => !o.ok)) throw failureReport('preflight failed; nothing was changed', pre, path);
    // A serving cluster is changed without dropping requests: everything that does not disrupt
    // traffic runs on all nodes at once, then the disruptive rest rolls one node at a time.
    const rerun = new Map<string, Set<string>>();
    const journals = new Map<string, Journal>();
    let outcomes = await executeSteps({ ...base, steps, stopBeforeDisruptive: serving, rerun, journals });
    let roll: RollEvent[] = [];
    if (serving && outcomes.every((o) => o.ok) && outcomes.some((o) => o.pendingDisruptive)) {
      try {
        ({ outcomes, events: roll } = await rollDisruptive({ ...base, steps, rerun, journals }, outcomes, ctx.print));
      } catch (e) {
        writeRunRecord({ ...base, steps }, outcomes, startedAt, {
          serving,
          roll: e instanceof RollStoppedError || e instanceof CancelledError ? 'stopped' : 'failed',
        });
        throw e;
      }
    }
    const record = writeRunRecord({ ...base, steps }, outcomes, startedAt, { serving, roll });
    for (const o of outcomes) {
      const ran = o.steps.filter((s) => s.action === 'ran').map((s) => s.id);
      ctx.print(
        `${o.node.name}: ${o.ok ? 'ok' : 'FAILED'}; ran ${ran.length} step(s)` +
          `${ran.length ? ` (${ran.join(', ')})` : ''}, ` +
          `${o.steps.filter((s) => s.action === 'skipped').length} already done`,
      );
      for (const w of [...(pre.find((p) => p.node.name === o.node.name)?.warnings ?? []), ...o.warnings])
        ctx.print(`  warning: ${w}`);
    }
    if (outcomes.some((o) => !o.ok)) throw failureReport('apply failed', outcomes, path);

    const changed = outcomes.some((o) => o.steps.some((s) => s.action === 'ran'));
    if (steps.some((s) => s.id === 'start') && !only) {
      // The VIP settles where the priorities and track files put it (a node that has just started takes
      // it over a few adverts later). Nothing ran and it was settled a moment ago: no need to ask again.
      const atStart = changed ? undefined : settledHolder(viewsAtStart, handles, runbook.vrrp.preempt);
      const { holder, expected, views } = atStart
        ? { holder: atStart, expected: atStart, views: viewsAtStart }
        : await waitForExpectedHolder(handles, runbook);
      if (!holder) {
        const details = [];
        for (const h of handles) {
          const v = views.find((x) => x.node === h.node.name);
          details.push(
            `${h.node.name}: ${v?.holdsVip ? 'holds the VIP' : 'does not hold the VIP'}, VRRP state ${v?.state}`,
          );
          details.push(...(await keepalivedLogTail(h, runbook)).map((l) => `  | ${l}`));
        }
        throw new RunFailedError(
          `after 10 s ${views.filter((v) => v.holdsVip).length} nodes hold the VIP ${runbook.vrrp.vip} ` +
            `(exactly one should)`,
          details,
        );
      }
      ctx.print(`VIP ${runbook.vrrp.vip} is held by ${holder}`);
      if (expected && expected !== holder)
        ctx.print(
          `  warning: after 10 s the priorities still say ${expected} should hold it (\`ha-setup status\` shows why)`,
        );
      // Verification never hurts a serving cluster: nothing changed, no test; a change to a serving
      // cluster, the zero-loss planned failover; a first install, the crash test.
      const scenario = !changed ? undefined : serving ? 'planned' : 'nginx-crash';
      if (runbook.verify.failover && flags.verify !== false && !scenario)
        ctx.print('nothing changed on any node: no failover test');
      if (runbook.verify.failover && flags.verify !== false && scenario) {
        const result = await runVerify(path, runbook, handles, scenario, ctx);
        if (!result.passed) {
          ctx.print(`docs: ${writeHandover(path, runbook, version())}`);
          throw new RunFailedError('the cluster is installed but the failover test failed', result.problems);
        }
      }
    }
    ctx.print(`record: ${record}`);
    ctx.print(`docs: ${writeHandover(path, runbook, version())}`);
    return 0;
  }
}

/** `--hosts`: write the replayed runbook (and its secrets) next to the original, return its path. */
function writeReplay(file: string, flags: ApplyFlags, ctx: CliContext): string {
  const { path, runbook } = loadRunbook(file);
  const doc = replayRunbook(
    runbook,
    flags
      .hosts!.split(',')
      .map((h) => h.trim())
      .filter(Boolean),
    flags.vip,
    flags.name,
  );
  const out = join(runbookDir(path), `${doc.name}.yaml`);
  writeFileAtomic(out, runbookToYaml(doc));
  // Secrets stay out of runbooks: carry the ones kept in the old secrets file over to the new one.
  const names = [runbook.vrrp.auth?.passwordEnv, runbook.ssh.sudoPasswordEnv].filter((n): n is string => Boolean(n));
  const old = readSecretsFile(secretsPathFor(path, runbook.name));
  const carried = Object.fromEntries(names.filter((n) => old[n] !== undefined).map((n) => [n, old[n]]));
  if (Object.keys(carried).length > 0) writeSecretsFile(secretsPathFor(out, doc.name), carried);
  ctx.print(`replay: wrote ${out} for ${doc.nodes.map((n) => n.host).join(', ')}`);
  return out;
}

export function limitToIndexes(rb: Runbook, limit: string): number[] {
  const wanted = limit
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
  const nodes = resolveNodes(rb);
  const unknown = wanted.filter((w) => !nodes.some((n) => n.name === w || n.host === w));
  if (unknown.length > 0)
    throw new InvalidInputError(`--limit: no node ${unknown.join(', ')}`, [
      `nodes: ${nodes.map((n) => n.name).join(', ')}`,
    ]);
  return nodes.filter((n) => wanted.includes(n.name) || wanted.includes(n.host)).map((n) => n.index);
}

function failureReport(title: string, outcomes: NodeOutcome[], runbookPath: string): RunFailedError {
  const details: string[] = [];
  for (const o of outcomes) {
    if (o.ok) {
      details.push(`${o.node.name}: ok`);
      continue;
    }
    details.push('', ...(o.failure ? o.failure.report(runbookPath) : [`${o.node.name}: failed`]));
  }
  return new RunFailedError(title, details);
}

function nodeCounts(flags: ApplyFlags): { concurrency: number; buildConcurrency?: number } {
  return {
    concurrency: positiveCount('--concurrency', flags.concurrency ?? '8'),
    buildConcurrency:
      flags.buildConcurrency === undefined ? undefined : positiveCount('--build-concurrency', flags.buildConcurrency),
  };
}

/** A count given on the command line: a whole number from 1. */
function positiveCount(flag: string, value: string): number {
  if (!/^[1-9][0-9]{0,3}$/.test(value))
    throw new InvalidInputError(`${flag}: ${value} is not a whole number from 1 to 9999`);
  return Number(value);
}
