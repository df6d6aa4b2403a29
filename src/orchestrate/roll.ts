import { CancelledError, RunFailedError } from '../errors.js';
import { pollUntil } from '../poll.js';
import { shq } from '../shell.js';
import { layout } from '../runbook/layout.js';
import { plannedMove } from '../verify/handoff.js';
import { clearPromotions, plannedFailover } from '../verify/verify.js';
import { vrrpViews, waitForSingleHolder, type VrrpView } from '../engine/cluster.js';
import { executeSteps, type ExecuteOptions, type NodeOutcome } from '../engine/executor.js';
import type { NodeHandle } from '../engine/session.js';

/** One line of what the roll did, kept in the run record and printed by apply. */
export interface RollEvent {
  at: string;
  node: string;
  what: string;
  /** Who held the VIP right after this event. */
  vipHolder?: string;
}

export class RollStoppedError extends RunFailedError {}

/**
 * The order a roll takes: nodes that do not hold the VIP first (lowest priority first, so the best
 * standby is touched as late as possible), the VIP holder last. Pure.
 */
export function rollOrder(pending: Array<{ name: string; priority: number }>, holder: string | undefined): string[] {
  const others = pending
    .filter((n) => n.name !== holder)
    .sort((a, b) => a.priority - b.priority)
    .map((n) => n.name);
  return pending.some((n) => n.name === holder) ? [...others, holder!] : others;
}

/** A node is healthy again when nginx answers /ha-health with its name and keepalived is BACKUP or MASTER. */
export async function healthGate(
  h: NodeHandle,
  o: Pick<ExecuteOptions, 'runbook'>,
  budgetMs = 20_000,
): Promise<{ ok: boolean; detail: string }> {
  const rb = o.runbook;
  const L = layout(rb);
  const script =
    `body=$(curl -fsS -m 2 -- ${shq(`http://127.0.0.1:${rb.site.listen}/ha-health`)} 2>&1); echo "nginx: $body"; ` +
    `systemctl is-active keepalived | sed 's/^/keepalived: /'; echo ` +
    `"vrrp: $(cat ${shq(L.stateFile)} 2>/dev/null || echo unknown)"`;
  const { done, last } = await pollUntil(
    async () => {
      const r = await h.t.exec(script, { quiet: true });
      return { done: gatePassed(h.node.name, r.stdout), value: r.stdout.trim().replace(/\n/g, ', ') };
    },
    { budgetMs, intervalMs: 250 },
  );
  return { ok: done, detail: last ?? '' };
}

/**
 * What the gate script printed says healthy: nginx answers with this node's name, keepalived is BACKUP or MASTER. Pure.
 */
export function gatePassed(node: string, out: string): boolean {
  const nginxOk = out.split('\n').includes(`nginx: ${node}`);
  return nginxOk && /^keepalived: active$/m.test(out) && /^vrrp: (BACKUP|MASTER)$/m.test(out);
}

/**
 * Finish the nodes that stopped before a disruptive step, one at a time: the VIP is moved away from
 * a node before anything disruptive runs there, and each node must pass its health gate before the
 * next one starts. At the end the VIP goes back where the priorities put it.
 */
export interface RollEnv {
  handles: NodeHandle[];
  runbook: ExecuteOptions['runbook'];
  runbookPath: string;
  /** Aborted: no further node is started; the VIP goes home and the roll ends with where it stopped. */
  signal?: AbortSignal;
}

/**
 * Do `work` on the named nodes one at a time, in that order: the VIP is moved away from a node
 * before its work starts (when another node can take it), each node must pass its health gate
 * before the next starts, and at the end the VIP goes back where the priorities put it. `work`
 * throws to stop the roll; the nodes after it are not touched.
 */
export async function rollNodes(
  o: RollEnv,
  order: string[],
  what: (node: string) => string,
  work: (h: NodeHandle) => Promise<void>,
  event: (node: string, what: string, vipHolder?: string) => void,
  log: (l: string) => void,
): Promise<void> {
  const env = { rb: o.runbook, runbookPath: o.runbookPath, handles: o.handles, log };
  const holderNow = async () => (await vrrpViews(o.handles, o.runbook)).find((v) => v.holdsVip)?.node;
  const rolled: string[] = [];
  for (const name of order) {
    if (o.signal?.aborted) {
      // A safe point: the last node passed its gate. Put the VIP where the priorities say and stop.
      await goHome();
      const holder = await holderNow();
      event(name, 'interrupted before this node; roll stopped', holder);
      throw new CancelledError(
        `interrupted: the roll stopped before ${name}; the cluster serves from ${holder ?? 'no node'}`,
        [
          `rolled: ${rolled.join(', ') || 'none'}; not rolled: ${order.slice(order.indexOf(name)).join(', ')}`,
          'run the command again to roll the rest',
        ],
      );
    }
    const h = o.handles.find((x) => x.node.name === name)!;
    if ((await holderNow()) === name) {
      if (o.handles.length > 1) {
        const moved = await plannedFailover(env);
        event(name, `VIP moved away before ${what(name)}: ${moved.from} -> ${moved.to}`, moved.to);
      } else {
        event(name, `single node: ${what(name)} in place (nginx hot upgrade keeps connections)`, name);
      }
    }
    await work(h);
    const gate = await healthGate(h, o);
    event(name, `health gate ${gate.ok ? 'passed' : 'FAILED'}: ${gate.detail}`, await holderNow());
    if (!gate.ok) {
      throw new RollStoppedError(
        `the roll stopped at ${name}: it did not come back healthy within 20 s; the other nodes were not touched`,
        [
          `gate: ${gate.detail}`,
          `fix ${name} (logs: ${h.logPath}), then run the command again: it resumes with ${name}`,
        ],
      );
    }
    rolled.push(name);
  }
  if (order.length > 0) {
    const holder = await goHome();
    event('cluster', 'roll finished; promotions cleared', holder);
  }

  /** Back to the priorities' choice (the promote boost is cleared; preemption moves the VIP home). */
  async function goHome(): Promise<string | undefined> {
    // With preemption the highest priority takes the VIP back; wait for that, not the first poll.
    const home = o.runbook.vrrp.preempt
      ? [...o.handles].sort((a, b) => b.node.priority - a.node.priority)[0]
      : undefined;
    const before = await holderNow();
    const from = o.handles.find((x) => x.node.name === before);
    const move = async () => {
      await clearPromotions(env);
      return (await waitForSingleHolder(o.handles, o.runbook, 15_000, home?.node.name)).holder;
    };
    if (!home || !from || from === home) return move();
    return plannedMove(o.runbook, from, home, log, move, (holder) => holder === home.node.name);
  }
}

export function rollEventLog(log: (l: string) => void): {
  events: RollEvent[];
  event: (node: string, what: string, vipHolder?: string) => void;
} {
  const events: RollEvent[] = [];
  return {
    events,
    event: (node, what, vipHolder) => {
      events.push({ at: new Date().toISOString(), node, what, vipHolder });
      log(`roll: ${node}: ${what}${vipHolder ? ` (VIP on ${vipHolder})` : ''}`);
    },
  };
}

/**
 * Finish the nodes that stopped before a disruptive step, one at a time (rollNodes): nodes without
 * the VIP first, the holder last after the VIP moved away.
 */
export async function rollDisruptive(
  o: ExecuteOptions,
  first: NodeOutcome[],
  log: (l: string) => void,
): Promise<{ outcomes: NodeOutcome[]; events: RollEvent[] }> {
  const { events, event } = rollEventLog(log);
  const pending = first.filter((x) => x.pendingDisruptive);
  const holderAtStart = (await vrrpViews(o.handles, o.runbook)).find((v) => v.holdsVip)?.node;
  const order = rollOrder(
    pending.map((x) => ({ name: x.node.name, priority: x.node.priority })),
    holderAtStart,
  );
  log(`roll: disruptive steps run one node at a time: ${order.join(' -> ')} (VIP on ${holderAtStart ?? 'no node'})`);
  const merged = new Map(first.map((x) => [x.node.name, x]));
  await rollNodes(
    o,
    order,
    (name) => merged.get(name)!.pendingDisruptive!,
    async (h) => {
      const name = h.node.name;
      const [second] = await executeSteps({ ...o, handles: [h], stopBeforeDisruptive: false }).catch(
        async (e: unknown) => {
          if (!(e instanceof CancelledError)) throw e;
          // Interrupted inside this node's steps: it has not passed its gate, so the VIP is not moved
          // back to it; it stays where the roll put it, on a node that is healthy.
          const serving = (await vrrpViews(o.handles, o.runbook)).find((v) => v.holdsVip)?.node;
          event(name, 'interrupted during its steps; roll stopped', serving);
          throw new CancelledError(
            `interrupted: the roll stopped during ${name}'s steps; the cluster serves from ${serving ?? 'no node'}`,
            [
              e.message,
              `${name} has not passed its health gate: the VIP was not moved back to it; not ` +
                `rolled: ${order.slice(order.indexOf(name) + 1).join(', ') || 'none'}`,
              'run the command again to finish the roll',
            ],
          );
        },
      );
      merged.set(name, mergeOutcomes(merged.get(name)!, second));
      if (!second.ok) {
        const serving = (await vrrpViews(o.handles, o.runbook)).find((v) => v.holdsVip)?.node;
        event(name, 'failed; roll stopped', serving);
        throw new RollStoppedError(
          `the roll stopped at ${name}: step ${second.failure?.stepId ?? '?'} failed; the cluster keeps ` +
            `serving from ${serving ?? 'no node'}`,
          [
            ...(second.failure ? second.failure.report(o.runbookPath) : []),
            `nodes not rolled yet: ${order.slice(order.indexOf(name) + 1).join(', ') || 'none'}`,
          ],
        );
      }
    },
    event,
    log,
  );
  return { outcomes: first.map((x) => merged.get(x.node.name)!), events };
}

/** The node's steps as one list: what ran before the roll stays "ran", the rest as the roll saw it. */
function mergeOutcomes(a: NodeOutcome, b: NodeOutcome): NodeOutcome {
  const before = new Map(a.steps.filter((s) => s.action === 'ran').map((s) => [s.id, s]));
  const steps = b.steps.map((s) => before.get(s.id) ?? s);
  return { ...b, steps, warnings: [...a.warnings, ...b.warnings], pendingDisruptive: undefined };
}

/**
 * The cluster serves when a node holds the VIP and nginx and keepalived run there; the views it was
 * judged from come along (one round trip per node).
 */
export async function clusterState(
  o: Pick<ExecuteOptions, 'handles' | 'runbook'>,
): Promise<{ serving: boolean; views: VrrpView[] }> {
  const views = await vrrpViews(o.handles, o.runbook);
  return { serving: views.find((v) => v.holdsVip)?.serving === true, views };
}
