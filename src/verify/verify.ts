import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RunFailedError } from '../errors.js';
import { vrrpViews, type VrrpView } from '../engine/cluster.js';
import { runbookDir, type NodeHandle } from '../engine/session.js';
import { runLocal } from '../local.js';
import { parseCidr } from '../net.js';
import { pollUntil, sleep } from '../poll.js';
import type { Runbook } from '../runbook/schema.js';
import { shq } from '../shell.js';
import { layout } from '../runbook/layout.js';
import { plannedMove } from './handoff.js';
import { servedCertificates } from './certificates.js';
import { measureOutage, probeOnce, type ProbeTls, startProber, startRemoteProber, type Outage } from './probe.js';
import { certificateNames } from '../runbook/tls-settings.js';

export const SCENARIOS = ['nginx-crash', 'nginx-stop', 'keepalived-stop', 'node-down', 'planned'] as const;
export type Scenario = (typeof SCENARIOS)[number];

export interface PhaseResult extends Outage {
  from: string;
  to: string | null;
  moved: boolean;
  splitBrain: boolean;
  maxHolders: number;
}

export interface VerifyResult {
  scenario: Scenario;
  at: string;
  probedFrom: string;
  vip: string;
  failover: PhaseResult;
  failback: (PhaseResult & { expected: 'back to the old master' | 'stays on the new master' }) | null;
  passed: boolean;
  problems: string[];
  states: VrrpView[];
}

export interface Env {
  rb: Runbook;
  runbookPath: string;
  handles: NodeHandle[];
  /** lab only: node name -> host-side veth, for node-down */
  labVeths?: Record<string, string>;
  log: (l: string) => void;
}

async function exec(h: NodeHandle, script: string): Promise<void> {
  const r = await h.t.exec(script);
  if (r.code !== 0) throw new RunFailedError(`${h.node.name}: ${script} failed (${r.code})`, [r.stderr.trim()]);
}

/** Watches every node's addresses so two VIP holders at once (split brain) are caught. */
function startHolderMonitor(env: Env, skip: () => Set<string>) {
  let running = true;
  const timeline: Array<{ t: number; holders: string[] }> = [];
  const t0 = performance.now();
  const loop = (async () => {
    while (running) {
      const active = env.handles.filter((h) => !skip().has(h.node.name));
      const views = await vrrpViews(active, env.rb).catch(() => []);
      timeline.push({ t: performance.now() - t0, holders: views.filter((v) => v.holdsVip).map((v) => v.node) });
      await sleep(100);
    }
  })();
  return {
    timeline,
    async stop() {
      running = false;
      await loop;
      return timeline;
    },
  };
}

async function action(env: Env, scenario: Scenario, holder: NodeHandle, target: NodeHandle | undefined): Promise<void> {
  const L = layout(env.rb);
  switch (scenario) {
    case 'nginx-crash':
      return exec(holder, `kill -9 "$(cat ${shq(L.pidFile)})"`);
    case 'nginx-stop':
      return exec(holder, 'systemctl stop nginx');
    case 'keepalived-stop':
      return exec(holder, 'systemctl stop keepalived');
    case 'node-down': {
      const veth = env.labVeths?.[holder.node.name];
      if (!veth)
        throw new RunFailedError(
          "the node-down scenario works on the lab only (it takes the node's link down from the lab host)",
        );
      await runLocal('ip', ['link', 'set', veth, 'down']);
      return;
    }
    case 'planned':
      return raisePriority(env, holder, target!);
  }
}

async function restore(env: Env, scenario: Scenario, holder: NodeHandle): Promise<void> {
  switch (scenario) {
    case 'nginx-crash':
    case 'nginx-stop':
      return exec(holder, 'systemctl start nginx');
    case 'keepalived-stop':
      return exec(holder, 'systemctl start keepalived');
    case 'node-down':
      await runLocal('ip', ['link', 'set', env.labVeths![holder.node.name], 'up']);
      return;
    case 'planned':
      return clearPromotions(env);
  }
}

/** Raise the target's priority above the holder's through the promote track file. */
async function raisePriority(env: Env, holder: NodeHandle, target: NodeHandle): Promise<void> {
  const L = layout(env.rb);
  if (!env.rb.vrrp.preempt) {
    // Without preemption a higher priority does not take over: the holder steps down (FAULT) through
    // its maintenance track file, which exists whether or not keepalived tracks nginx.
    await exec(holder, `echo 1 > ${shq(L.maintenanceFile)}`);
    return;
  }
  // Outrank every other node as it stands now (a node may still carry a boost from an earlier move),
  // and only then clear the others' boosts: clearing first would let preemption move the VIP to a
  // node nobody asked for, outside the connection handoff.
  const boosts = await Promise.all(
    env.handles.map(
      async (h) =>
        Number((await h.t.exec(`cat ${shq(L.promoteFile)} 2>/dev/null || echo 0`, { quiet: true })).stdout.trim()) || 0,
    ),
  );
  const others = env.handles.filter((h) => h !== target);
  const highest = Math.max(
    holder.node.priority,
    ...others.map((h) => h.node.priority + boosts[env.handles.indexOf(h)]),
  );
  const boost = Math.min(254 - target.node.priority, Math.max(0, highest - target.node.priority + 10));
  await exec(target, `echo ${boost} > ${shq(L.promoteFile)}`);
  await Promise.all(others.map((h) => exec(h, `echo 0 > ${shq(L.promoteFile)}`)));
}

export async function clearPromotions(env: Env): Promise<void> {
  const L = layout(env.rb);
  await Promise.all(
    env.handles.map((h) =>
      exec(
        h,
        `echo 0 > ${shq(L.promoteFile)}; echo 0 > ${shq(L.maintenanceFile)}; if systemctl is-active --quiet ` +
          `nginx; then echo 0 > ${shq(L.trackFile)}; fi`,
      ),
    ),
  );
}

async function waitFor(cond: () => Promise<boolean>, budgetMs: number): Promise<boolean> {
  return (await pollUntil(async () => ({ done: await cond(), value: undefined }), { budgetMs, intervalMs: 100 })).done;
}

/**
 * Two holders in two consecutive polls (100 ms apart). A preempting master adds the VIP a few
 * milliseconds before the old one drops it; a single poll can catch that handover, which is not
 * split brain.
 */
export function sustainedSplitBrain(timeline: Array<{ holders: string[] }>): boolean {
  return timeline.some((t, i) => t.holders.length > 1 && (timeline[i + 1]?.holders.length ?? 0) > 1);
}

/** Where the failover test probes: over HTTPS on the TLS port when the site has one (what clients use). */
export function probeTarget(rb: Runbook): { port: number; tls?: ProbeTls; url: (host: string) => string } {
  if (!rb.site.tls) return { port: rb.site.listen, url: (h) => `http://${h}:${rb.site.listen}/ha-health` };
  const port = rb.site.tls.listen;
  return { port, tls: { servername: certificateNames(rb.site)[0] }, url: (h) => `https://${h}:${port}/ha-health` };
}

async function measurePhase(
  env: Env,
  from: string,
  expectTo: (views: VrrpView[]) => string | undefined,
  act: () => Promise<void>,
  skip: () => Set<string>,
  probeFrom?: NodeHandle,
): Promise<PhaseResult> {
  const vip = parseCidr(env.rb.vrrp.vip)!.address;
  const target = probeTarget(env.rb);
  const prober = probeFrom
    ? startRemoteProber(probeFrom.t, vip, target.port, 50, 250, target.tls !== undefined)
    : startProber(vip, target.port, 50, 250, target.tls);
  const monitor = startHolderMonitor(env, skip);
  await sleep(400);
  await act();
  let to: string | undefined;
  const moved = await waitFor(async () => {
    const views = await vrrpViews(
      env.handles.filter((h) => !skip().has(h.node.name)),
      env.rb,
    );
    to = expectTo(views);
    return to !== undefined && prober.samples.some((s) => s.ok && s.node === to);
  }, 30_000);
  await sleep(800);
  const samples = await prober.stop();
  const timeline = await monitor.stop();
  const maxHolders = Math.max(0, ...timeline.map((t) => t.holders.length));
  return {
    from,
    to: moved ? to! : null,
    moved,
    splitBrain: sustainedSplitBrain(timeline),
    maxHolders,
    ...measureOutage(samples, to ?? ''),
  };
}

/**
 * Measured failover: break the VIP holder the scenario's way, measure client-observed downtime
 * and watch for split brain; then restore it and measure the failback (preempt) or confirm the
 * VIP stays where it went (nopreempt).
 */
export async function verifyFailover(
  env: Env,
  scenario: Scenario,
  targetName?: string,
  probeFromName?: string,
): Promise<VerifyResult> {
  const rb = env.rb;
  const vip = parseCidr(rb.vrrp.vip)!.address;
  const problems: string[] = [];
  await clearPromotions(env);
  const before = await vrrpViews(env.handles, rb);
  const holders = before.filter((v) => v.holdsVip);
  if (holders.length !== 1)
    throw new RunFailedError(
      `before the test ${holders.length} nodes hold the VIP (exactly one should)`,
      before.map((v) => `${v.node}: ${v.state}${v.holdsVip ? ', holds the VIP' : ''}`),
    );
  const holder = env.handles.find((h) => h.node.name === holders[0].node)!;
  const others = env.handles.filter((h) => h !== holder).sort((a, b) => b.node.priority - a.node.priority);
  const target = targetName ? env.handles.find((h) => h.node.name === targetName) : others[0];
  if (!target || target === holder)
    throw new RunFailedError(`--to ${targetName}: not a node that could take over (holder is ${holder.node.name})`);
  // Probe from this machine when it reaches the VIP; otherwise from a node that does not hold it.
  let probeFrom = probeFromName
    ? env.handles.find((h) => h.node.name === probeFromName || h.node.host === probeFromName)
    : undefined;
  if (probeFromName && !probeFrom) throw new RunFailedError(`--probe-from ${probeFromName}: no such node`);
  const pt = probeTarget(rb);
  const url = pt.url(vip);
  let first = probeFrom ? { ok: false, error: 'not tried' } : await probeOnce(vip, pt.port, 2000, pt.tls);
  if (!first.ok) {
    if (probeFrom) env.log(`probing the VIP from ${probeFrom.node.name}`);
    else {
      probeFrom = others[others.length - 1];
      env.log(`this machine cannot reach ${url} (${first.error}); probing from ${probeFrom.node.name} instead`);
    }
    const r = await probeFrom.t.exec(`curl -fsS${pt.tls ? 'k' : ''} -m 2 -- ${url}`, { quiet: true });
    first = r.code === 0 ? { ok: true, node: r.stdout.trim() } : { ok: false, error: `curl exit ${r.code}` };
    if (!first.ok) throw new RunFailedError(`${url} answers neither this machine nor ${probeFrom.node.name}`);
  }
  if (first.node !== holder.node.name)
    problems.push(`/ha-health answered "${first.node}" but ${holder.node.name} holds the VIP`);
  // Every node must be able to take the VIP: nginx answers locally and keepalived runs, before any move.
  for (const h of env.handles) {
    const r = await h.t.exec(
      `curl -fsS -m 2 -o /dev/null -- http://127.0.0.1:${rb.site.listen}/ha-health && echo nginx-ok; systemctl ` +
        `is-active keepalived >/dev/null && echo keepalived-ok; true`,
      { quiet: true },
    );
    if (!r.stdout.includes('nginx-ok'))
      problems.push(`${h.node.name}: nginx does not answer /ha-health on 127.0.0.1:${rb.site.listen}`);
    if (!r.stdout.includes('keepalived-ok')) problems.push(`${h.node.name}: keepalived is not running`);
  }
  // With HTTPS, every node must serve a certificate clients accept before it may take the VIP.
  if (rb.site.tls)
    for (const c of await servedCertificates(env.handles, rb))
      for (const p of c.problems) problems.push(`${c.node}: ${p}`);

  const down = new Set<string>();
  const skip = () => down;
  env.log(`${scenario}: ${holder.node.name} holds ${vip}; breaking it`);
  // A planned move hands the connections open at that instant over (the crash scenarios cannot).
  const measureFailover = () =>
    measurePhase(
      env,
      holder.node.name,
      (views) => views.find((v) => v.holdsVip && v.node !== holder.node.name)?.node,
      async () => {
        if (scenario === 'node-down') down.add(holder.node.name);
        await action(env, scenario, holder, target);
      },
      skip,
      probeFrom,
    );
  const failover =
    scenario === 'planned'
      ? await plannedMove(rb, holder, target, env.log, measureFailover, (p) => p.moved)
      : await measureFailover();
  env.log(
    `${scenario}: VIP ${
      failover.moved ? `moved to ${failover.to}` : 'did not move'
    }; downtime ${failover.downtimeMs} ms, ${failover.failedRequests} failed of ${failover.totalRequests}`,
  );
  if (!failover.moved) problems.push(`the VIP did not move away from ${holder.node.name} within 30 s`);
  if (failover.splitBrain)
    problems.push(`split brain: ${failover.maxHolders} nodes held the VIP at once during failover`);
  if (failover.downtimeMs > rb.verify.maxDowntimeMs)
    problems.push(`downtime ${failover.downtimeMs} ms exceeds verify.maxDowntimeMs ${rb.verify.maxDowntimeMs}`);

  let failback: VerifyResult['failback'] = null;
  if (failover.moved) {
    const topPriority = Math.max(...env.handles.map((h) => h.node.priority));
    const expectBack = rb.vrrp.preempt && holder.node.priority === topPriority;
    const newHolder = failover.to!;
    const measureFailback = () =>
      measurePhase(
        env,
        newHolder,
        (views) => {
          const h = views.find((v) => v.holdsVip);
          if (expectBack) return h?.node === holder.node.name ? h.node : undefined;
          return h?.node;
        },
        async () => {
          down.delete(holder.node.name);
          await restore(env, scenario, holder);
          if (!expectBack) await sleep(3000);
        },
        skip,
        probeFrom,
      );
    const from = env.handles.find((h) => h.node.name === newHolder)!;
    const phase =
      scenario === 'planned' && expectBack
        ? await plannedMove(rb, from, holder, env.log, measureFailback, (p) => p.moved)
        : await measureFailback();
    failback = { ...phase, expected: expectBack ? 'back to the old master' : 'stays on the new master' };
    if (expectBack && !phase.moved)
      problems.push(`the VIP did not return to ${holder.node.name} after it was restored`);
    if (!expectBack && phase.to !== newHolder)
      problems.push(`with nopreempt the VIP should stay on ${newHolder}, but ${phase.to ?? 'no node'} holds it`);
    if (phase.splitBrain) problems.push(`split brain: ${phase.maxHolders} nodes held the VIP at once during failback`);
  } else {
    await restore(env, scenario, holder).catch(() => {});
  }
  if (scenario === 'planned') await clearPromotions(env);
  const states = await vrrpViews(env.handles, rb);
  const result: VerifyResult = {
    scenario,
    at: new Date().toISOString(),
    probedFrom: probeFrom ? `node ${probeFrom.node.name}` : 'control machine',
    vip: rb.vrrp.vip,
    failover,
    failback,
    passed: problems.length === 0,
    problems,
    states,
  };
  saveVerifyResult(env.runbookPath, rb, result);
  return result;
}

export function saveVerifyResult(runbookPath: string, rb: Runbook, result: VerifyResult): string {
  const dir = join(runbookDir(runbookPath), 'records', rb.name);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `verify-${result.at.replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify(result, null, 2));
  writeFileSync(join(dir, 'last-verify.json'), JSON.stringify(result, null, 2));
  return file;
}

/** Planned maintenance: move the VIP to `target` (default: the best other node) and wait for it. */
export async function plannedFailover(env: Env, targetName?: string): Promise<{ from: string; to: string }> {
  const views = await vrrpViews(env.handles, env.rb);
  const holderView = views.find((v) => v.holdsVip);
  if (!holderView) throw new RunFailedError('no node holds the VIP');
  const holder = env.handles.find((h) => h.node.name === holderView.node)!;
  const target = targetName
    ? env.handles.find((h) => h.node.name === targetName || h.node.host === targetName)
    : env.handles.filter((h) => h !== holder).sort((a, b) => b.node.priority - a.node.priority)[0];
  if (!target) throw new RunFailedError(`no node "${targetName}" in the runbook`);
  if (target === holder) return { from: holder.node.name, to: target.node.name };
  // With preemption, raisePriority clears the other nodes' boosts itself once the target outranks them.
  if (!env.rb.vrrp.preempt) await clearPromotions(env);
  const ok = await plannedMove(
    env.rb,
    holder,
    target,
    env.log,
    async () => {
      await raisePriority(env, holder, target);
      return waitFor(
        async () => (await vrrpViews(env.handles, env.rb)).find((v) => v.holdsVip)?.node === target.node.name,
        15_000,
      );
    },
    (moved) => moved,
  );
  if (!ok) throw new RunFailedError(`the VIP did not move to ${target.node.name} within 15 s`);
  // Without preemption the old holder need not stay in FAULT: back to BACKUP, it stays a standby for
  // the new holder and does not take the VIP back.
  if (!env.rb.vrrp.preempt) await exec(holder, `echo 0 > ${shq(layout(env.rb).maintenanceFile)}`);
  return { from: holder.node.name, to: target.node.name };
}
