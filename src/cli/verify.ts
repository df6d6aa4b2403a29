import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import * as p from '@clack/prompts';
import { CancelledError, InvalidInputError, RunFailedError } from '../errors.js';
import { vrrpViews } from '../engine/cluster.js';
import { rollbackNginx } from '../orchestrate/rollback.js';
import { loadSecrets, newRunId, openSession, runbookDir, type NodeHandle } from '../engine/session.js';
import { acquireClusterLock } from '../engine/lock.js';
import { resolveNodes } from '../engine/nodes.js';
import type { ConnectError } from '../engine/transport.js';
import type { ResolvedNode } from '../engine/types.js';
import { labPaths } from '../lab/config.js';
import { readState } from '../lab/lab.js';
import { loadRunbook } from '../runbook/io.js';
import type { Runbook } from '../runbook/schema.js';
import { plannedFailover, SCENARIOS, verifyFailover, type Scenario, type VerifyResult } from '../verify/verify.js';
import {
  CERT_WARN_DAYS,
  type ServedCertificate,
  sameCertificateEverywhere,
  servedCertificates,
} from '../verify/certificates.js';
import { expectedVrrp } from '../verify/expected.js';
import { layout } from '../runbook/layout.js';
import { shq } from '../shell.js';
import { terminalConfirm, withInterrupts, type CliContext } from './context.js';

function labVethsFor(rb: Runbook): Record<string, string> | undefined {
  const state = readState(labPaths());
  if (!state) return undefined;
  const out: Record<string, string> = {};
  for (const n of rb.nodes) {
    const lab = state.nodes.find((x) => x.ip === n.host);
    if (!lab) return undefined;
    out[n.name ?? n.host.replace(/\./g, '-')] = `vb-${lab.machine}`;
  }
  return out;
}

/** What each crash scenario does to the VIP holder (the confirmation says it in these words). */
const DESTRUCTIVE: Record<Exclude<Scenario, 'planned'>, string> = {
  'nginx-crash': 'kills nginx (SIGKILL)',
  'nginx-stop': 'stops nginx',
  'keepalived-stop': 'stops keepalived',
  'node-down': 'takes the network link down',
};

export function formatVerify(r: VerifyResult): string[] {
  const f = r.failover;
  const lines = [
    `scenario ${r.scenario}: ${r.passed ? 'PASSED' : 'FAILED'} (probed from ${r.probedFrom})`,
    `  failover: ${f.from} -> ${f.to ?? '(nobody)'}; downtime ${f.downtimeMs} ms; ` +
      `${f.failedRequests} of ${f.totalRequests} probe requests failed; split brain: ${f.splitBrain ? 'YES' : 'no'}`,
  ];
  if (r.failback) {
    const b = r.failback;
    lines.push(
      `  failback (${b.expected}): ${b.from} -> ${b.to ?? '(nobody)'}; downtime ${b.downtimeMs} ms; ` +
        `${b.failedRequests} of ${b.totalRequests} failed; split brain: ${b.splitBrain ? 'YES' : 'no'}`,
    );
  }
  for (const p of r.problems) lines.push(`  problem: ${p}`);
  lines.push(
    `  VRRP states now: ${r.states.map((s) => `${s.node}=${s.state}${s.holdsVip ? ' (VIP)' : ''}`).join(', ')}`,
  );
  return lines;
}

export async function runVerify(
  path: string,
  runbook: Runbook,
  handles: NodeHandle[],
  scenario: Scenario,
  ctx: CliContext,
  to?: string,
  probeFrom?: string,
): Promise<VerifyResult> {
  const result = await verifyFailover(
    { rb: runbook, runbookPath: path, handles, labVeths: labVethsFor(runbook), log: ctx.print },
    scenario,
    to,
    probeFrom,
  );
  for (const l of formatVerify(result)) ctx.print(l);
  return result;
}

async function withSession<T>(
  file: string,
  ctx: CliContext,
  accept: boolean,
  fn: (path: string, rb: Runbook, handles: NodeHandle[]) => Promise<T>,
  opts: { unreachable?: Array<{ node: ResolvedNode; error: ConnectError }>; lock?: string } = {},
): Promise<T> {
  const { path, runbook } = loadRunbook(file);
  const secrets = loadSecrets(runbook, path);
  const runId = newRunId();
  const handles = await openSession(
    {
      runbookPath: path,
      runbook,
      acceptNewHostKeys: accept,
      confirmHostKey: terminalConfirm(ctx),
      runId,
      unreachable: opts.unreachable,
    },
    secrets,
  );
  try {
    // Commands that move the VIP or change a node hold the cluster lock while they run.
    if (!opts.lock) return await fn(path, runbook, handles);
    const lock = await acquireClusterLock(handles, { runId, command: opts.lock, log: ctx.print });
    try {
      return await fn(path, runbook, handles);
    } finally {
      await lock.release();
    }
  } finally {
    await Promise.all(handles.map((h) => h.t.close()));
  }
}

export function registerVerify(program: Command, ctx: CliContext): void {
  program
    .command('verify')
    .description(
      'measured VIP failover test: by default the zero-loss planned move and back; ' +
        'crash scenarios (they break the VIP holder) only by name',
    )
    .argument('<runbook>', 'runbook file')
    .option('--scenario <name>', `${SCENARIOS.join(', ')} (all but planned break the VIP holder on purpose)`, 'planned')
    .option('--to <node>', 'the node expected to take over (default: the highest-priority other node)')
    .option(
      '--probe-from <node>',
      'probe the VIP from this node instead of this machine (automatic when this machine cannot reach it)',
    )
    .option('--yes', 'run a destructive scenario without asking (needed without a terminal)')
    .option('--accept-new-host-keys', 'trust and record host keys not seen before')
    .action(
      async (
        file: string,
        opts: { scenario: string; to?: string; probeFrom?: string; yes?: boolean; acceptNewHostKeys?: boolean },
      ) => {
        if (!SCENARIOS.includes(opts.scenario as Scenario))
          throw new InvalidInputError(`--scenario ${opts.scenario}: choose one of ${SCENARIOS.join(', ')}`);
        // Crash scenarios cost real requests on a serving cluster: asked at a terminal, --yes otherwise.
        if (opts.scenario !== 'planned' && opts.yes !== true) {
          const what = DESTRUCTIVE[opts.scenario as Exclude<Scenario, 'planned'>];
          if (!ctx.interactive)
            throw new InvalidInputError(
              `--scenario ${opts.scenario} ${what} on the VIP holder: clients see failed requests; add --yes to ` +
                `run it without a terminal`,
              ['the default scenario (planned) moves the VIP without a failed request'],
            );
          const ok = await p.confirm({
            input: ctx.input,
            output: ctx.output,
            message:
              `--scenario ${opts.scenario} ${what} on the VIP holder; clients will see failed requests ` +
              `while the VIP moves. Run it?`,
            initialValue: false,
          });
          if (p.isCancel(ok) || ok !== true) throw new CancelledError('verification not run');
        }
        const result = await withSession(
          file,
          ctx,
          opts.acceptNewHostKeys === true,
          (path, rb, handles) => runVerify(path, rb, handles, opts.scenario as Scenario, ctx, opts.to, opts.probeFrom),
          { lock: 'verify' },
        );
        if (!result.passed)
          throw new RunFailedError(`failover verification failed (${opts.scenario})`, result.problems);
        ctx.result = 0;
      },
    );
}

export function registerFailover(program: Command, ctx: CliContext): void {
  program
    .command('failover')
    .description('planned maintenance: move the VIP away from its holder (to --to) before stopping anything there')
    .argument('<runbook>', 'runbook file')
    .option('--to <node>', 'node name or address to move the VIP to (default: the highest-priority other node)')
    .option('--accept-new-host-keys', 'trust and record host keys not seen before')
    .action(async (file: string, opts: { to?: string; acceptNewHostKeys?: boolean }) => {
      const moved = await withSession(
        file,
        ctx,
        opts.acceptNewHostKeys === true,
        (path, rb, handles) => plannedFailover({ rb, runbookPath: path, handles, log: ctx.print }, opts.to),
        { lock: 'failover' },
      );
      ctx.print(
        moved.from === moved.to
          ? `${moved.to} already holds the VIP`
          : `the VIP moved from ${moved.from} to ${moved.to}; it is now safe to stop nginx or ` +
              `keepalived on ${moved.from}`,
      );
      ctx.print(`to move it back later: ha-setup failover ${file} --to ${moved.from}`);
      ctx.result = 0;
    });
}

export function registerRollback(program: Command, ctx: CliContext): void {
  program
    .command('rollback')
    .description(
      'bring the previous nginx build back (sbin/nginx.old), ' +
        'one node at a time with the VIP moved away first, by hot upgrade',
    )
    .argument('<runbook>', 'runbook file')
    .option('--limit <nodes>', 'only these nodes (comma-separated names or addresses)')
    .option('--accept-new-host-keys', 'trust and record host keys not seen before')
    .action(async (file: string, opts: { limit?: string; acceptNewHostKeys?: boolean }) => {
      const only = opts.limit
        ?.split(',')
        .map((x) => x.trim())
        .filter(Boolean);
      await withSession(
        file,
        ctx,
        opts.acceptNewHostKeys === true,
        (path, rb, handles) =>
          withInterrupts(
            ctx,
            () => {
              for (const h of handles) void h.t.close();
            },
            (signal) => rollbackNginx({ runbook: rb, runbookPath: path, handles, signal }, ctx.print, only),
          ),
        { lock: 'rollback' },
      );
      ctx.print('rolled back: the previous nginx build serves on every node named above');
      ctx.print(
        `the runbook still describes the newer build: change it before the next ` +
          `\`ha-setup apply ${file}\`, which would install that build again`,
      );
      ctx.result = 0;
    });
}

export function registerStatus(program: Command, ctx: CliContext): void {
  program
    .command('status')
    .description(
      'per node: reachable, nginx active, keepalived state, VIP holder, versions, uptime, ' +
        'the certificate served (site.tls), last verification',
    )
    .argument('<runbook>', 'runbook file')
    .option('--json', 'machine-readable output')
    .option('--accept-new-host-keys', 'trust and record host keys not seen before')
    .action(async (file: string, opts: { json?: boolean; acceptNewHostKeys?: boolean }) => {
      // Status is what you run when a node died: every node is shown, the unreachable ones as such.
      const unreachable: Array<{ node: ResolvedNode; error: ConnectError }> = [];
      const report = await withSession(
        file,
        ctx,
        opts.acceptNewHostKeys === true,
        async (path, rb, handles) => {
          const views = await vrrpViews(handles, rb);
          const served = rb.site.tls ? await servedCertificates(handles, rb) : [];
          const L = layout(rb);
          const reached = await Promise.all(
            handles.map(async (h) => {
              const r = await h.t.exec(
                // Since PID 1 started: the boot on a host, the container's start where /proc/uptime is the host's.
                `ps -o etimes= -p 1 | tr -d ' '; head -n1 ${shq(L.splitFlag)} 2>/dev/null || echo -`,
                { quiet: true },
              );
              const [up, split] = r.stdout.trim().split('\n');
              const view = views.find((v) => v.node === h.node.name)!;
              const { nginx, keepalived, promote, maintenance } = view;
              return {
                name: h.node.name,
                host: h.node.host,
                role: h.node.role,
                priority: h.node.priority,
                reachable: true,
                error: null as string | null,
                nginx,
                keepalived,
                vrrpState: view.state,
                holdsVip: view.holdsVip,
                nginxVersion: h.facts.nginxVersionOutput.split('\n')[0] ?? '',
                keepalivedVersion: h.facts.keepalivedVersionOutput.split('\n')[0] ?? '',
                os: `${h.facts.osId} ${h.facts.osVersion}`,
                uptimeS: Math.round(Number(up) || 0),
                promote,
                maintenance,
                /** "<since> <MAC of the other holder>" while this node's split-brain watch sees a second holder. */
                splitBrainSeen: split && split !== '-' ? split : null,
                tls: tlsStatus(served.find((c) => c.node === h.node.name)),
              };
            }),
          );
          const lost = unreachable.map(({ node, error }) => ({
            name: node.name,
            host: node.host,
            role: node.role,
            priority: node.priority,
            reachable: false,
            error: error.message,
            nginx: 'unknown',
            keepalived: 'unknown',
            vrrpState: 'unknown',
            holdsVip: false,
            nginxVersion: '',
            keepalivedVersion: '',
            os: 'unknown',
            uptimeS: 0,
            promote: 0,
            maintenance: 0,
            splitBrainSeen: null as string | null,
            tls: null,
          }));
          const order = resolveNodes(rb).map((n) => n.name);
          const all = [...reached, ...lost].sort((a, b) => order.indexOf(a.name) - order.indexOf(b.name));
          const expected = expectedVrrp(all, rb.vrrp.preempt);
          const nodes = all.map((n) => ({ ...n, expectedState: expected.states[n.name] }));
          const lastVerifyFile = join(runbookDir(path), 'records', rb.name, 'last-verify.json');
          const lastVerify = existsSync(lastVerifyFile)
            ? (JSON.parse(readFileSync(lastVerifyFile, 'utf8')) as VerifyResult)
            : null;
          return {
            runbook: rb.name,
            vip: rb.vrrp.vip,
            certificates: rb.site.tls ? sameCertificateEverywhere(rb, served) : null,
            nodes,
            expectedHolder: expected.holder,
            splitBrain: nodes.filter((n) => n.holdsVip).length > 1 || nodes.some((n) => n.splitBrainSeen !== null),
            problems: expected.problems,
            lastVerify: lastVerify && {
              scenario: lastVerify.scenario,
              at: lastVerify.at,
              passed: lastVerify.passed,
              downtimeMs: lastVerify.failover.downtimeMs,
            },
          };
        },
        { unreachable },
      );
      if (opts.json) ctx.print(JSON.stringify(report, null, 2));
      else {
        ctx.print(`${report.runbook}: VIP ${report.vip}`);
        for (const n of report.nodes) {
          if (!n.reachable) {
            ctx.print(`  ${n.name.padEnd(12)} ${n.host.padEnd(15)} ${n.role}/${n.priority}  UNREACHABLE`);
            ctx.print(`  ${''.padEnd(12)} ${n.error}`);
            continue;
          }
          ctx.print(
            `  ${n.name.padEnd(12)} ${n.host.padEnd(15)} ${n.role}/${n.priority}  ` +
              `nginx:${n.nginx}  keepalived:${n.keepalived}  VRRP:${n.vrrpState}` +
              `${n.holdsVip ? '  holds the VIP' : ''}  (expected: ${n.expectedState})`,
          );
          if (n.splitBrainSeen) ctx.print(`  ${''.padEnd(12)} SPLIT BRAIN seen by this node since ${n.splitBrainSeen}`);
          ctx.print(
            `  ${''.padEnd(12)} ${n.os}; up ${formatUptime(n.uptimeS)}; ${
              n.nginxVersion || 'nginx not installed'
            }; ${n.keepalivedVersion || 'keepalived not installed'}`,
          );
          for (const l of formatTlsStatus(n.tls)) ctx.print(`  ${''.padEnd(12)} ${l}`);
        }
        for (const problem of report.problems) ctx.print(`problem: ${problem}`);
        if (report.certificates)
          ctx.print(`certificates: ${report.certificates.what}${report.certificates.same ? '' : ' (PROBLEM)'}`);
        const holders = report.nodes.filter((n) => n.holdsVip).map((n) => n.name);
        ctx.print(
          holders.length === 1
            ? `VIP holder: ${holders[0]}`
            : holders.length === 0
              ? 'VIP holder: none of the reachable nodes holds the VIP'
              : `VIP holders: ${holders.join(', ')} (SPLIT BRAIN: the nodes do not hear each other's VRRP adverts)`,
        );
        ctx.print(
          report.lastVerify
            ? `last verification: ${report.lastVerify.scenario} at ${report.lastVerify.at}: ` +
                `${report.lastVerify.passed ? 'passed' : 'FAILED'}, downtime ${report.lastVerify.downtimeMs} ms`
            : 'no verification recorded yet (ha-setup verify)',
        );
      }
      const healthy =
        report.nodes.every((n) => n.reachable && n.nginx === 'active' && n.keepalived === 'active') &&
        report.nodes.filter((n) => n.holdsVip).length === 1 &&
        !report.splitBrain &&
        report.problems.length === 0 &&
        report.nodes.every((n) => !n.tls || n.tls.problems.length === 0) &&
        (report.certificates === null || report.certificates.same);
      ctx.result = healthy ? 0 : 1;
    });
}

/** A node's served certificate as status reports it (null without site.tls). */
function tlsStatus(c: ServedCertificate | undefined) {
  if (!c) return null;
  const v = c.view;
  return {
    subject: v?.subject ?? null,
    names: v?.names ?? [],
    issuer: v?.issuer ?? null,
    fingerprint: v?.fingerprint ?? null,
    notAfter: v?.notAfter ?? null,
    daysLeft: v?.daysLeft ?? null,
    problems: c.problems,
  };
}

/** Status lines for a node's certificate. Pure. */
export function formatTlsStatus(t: ReturnType<typeof tlsStatus>): string[] {
  if (!t) return [];
  if (!t.subject) return t.problems.map((p) => `TLS: ${p}`);
  const soon = t.daysLeft !== null && t.daysLeft < CERT_WARN_DAYS && t.daysLeft >= 0 ? ' (renewal overdue?)' : '';
  return [
    `TLS: ${t.subject}; names ${t.names.join(', ') || '(none)'}; issuer ${t.issuer}`,
    `     SHA-256 ${t.fingerprint}; until ${t.notAfter} (${t.daysLeft} days left${soon})`,
    ...t.problems.map((p) => `     PROBLEM: ${p}`),
  ];
}

/** 93784 s -> "1d 2h 3m". Pure. */
export function formatUptime(s: number): string {
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  return d > 0 ? `${d}d ${h}h ${m}m` : h > 0 ? `${h}h ${m}m` : `${m}m ${s % 60}s`;
}
