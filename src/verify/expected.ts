import { vrrpViews, type VrrpView } from '../engine/cluster.js';
import type { NodeHandle } from '../engine/session.js';
import { pollUntil } from '../poll.js';
import type { Runbook } from '../runbook/schema.js';

/** What status knows of a node when it judges whether the VRRP state is the one the runbook gives. */
export interface NodeVrrpFacts {
  name: string;
  priority: number;
  reachable: boolean;
  nginx: string;
  keepalived: string;
  vrrpState: string;
  holdsVip: boolean;
  /** The planned-failover boost (track file ha_promote, weight 1): 0 unless a move is in progress or kept. */
  promote: number;
  /** 1 while `ha-setup failover` keeps the node in FAULT (track file ha_maintenance). */
  maintenance: number;
}

export interface ExpectedVrrp {
  /** The node that should hold the VIP, or null when no node can. */
  holder: string | null;
  /** Per node: MASTER, BACKUP, or "not serving" (nginx or keepalived down, in maintenance, unreachable). */
  states: Record<string, 'MASTER' | 'BACKUP' | 'not serving'>;
  problems: string[];
}

function serving(n: NodeVrrpFacts): boolean {
  return (
    n.reachable && n.nginx === 'active' && n.keepalived === 'active' && n.maintenance === 0 && n.vrrpState !== 'FAULT'
  );
}

/**
 * The VRRP state each node should be in, from the runbook's priorities and the track files: with
 * preemption the serving node with the highest effective priority holds the VIP; without it, a
 * serving holder keeps it. Pure; `status` reports every node that differs.
 */
export function expectedVrrp(nodes: NodeVrrpFacts[], preempt: boolean): ExpectedVrrp {
  const candidates = nodes.filter(serving);
  const holders = nodes.filter((n) => n.holdsVip);
  const effective = (n: NodeVrrpFacts) => n.priority + n.promote;
  const top = Math.max(...candidates.map(effective));
  const best = candidates.filter((n) => effective(n) === top);
  let holder: string | null = null;
  if (!preempt && holders.length === 1 && serving(holders[0])) holder = holders[0].name;
  // Equal priorities: keepalived breaks the tie by address; any of them is as expected.
  else if (best.length > 0) holder = (best.find((n) => n.holdsVip) ?? best[0]).name;
  const states: ExpectedVrrp['states'] = {};
  const problems: string[] = [];
  for (const n of nodes) {
    states[n.name] = !serving(n) ? 'not serving' : n.name === holder ? 'MASTER' : 'BACKUP';
    if (!n.reachable) continue;
    if (states[n.name] === 'MASTER' && !n.holdsVip)
      problems.push(
        `${n.name} should hold the VIP (${preempt ? 'highest priority' : 'the serving holder'}) but does not`,
      );
    if (states[n.name] !== 'MASTER' && n.holdsVip)
      problems.push(
        states[n.name] === 'not serving'
          ? `${n.name} holds the VIP but is not serving`
          : `${n.name} holds the VIP but ${holder} should (priority ${nodes.find((x) => x.name === holder)?.priority})`,
      );
  }
  return { holder, states, problems };
}

/** The nodes' VRRP facts as `expectedVrrp` reads them, from views of nodes that all answered. */
export function factsFromViews(views: VrrpView[], handles: NodeHandle[]): NodeVrrpFacts[] {
  return views.map((v) => ({
    name: v.node,
    priority: handles.find((h) => h.node.name === v.node)?.node.priority ?? 0,
    reachable: true,
    nginx: v.nginx,
    keepalived: v.keepalived,
    vrrpState: v.state,
    holdsVip: v.holdsVip,
    promote: v.promote,
    maintenance: v.maintenance,
  }));
}

/** Exactly one node holds the VIP and it is the one the priorities and track files give. Pure. */
export function settledHolder(views: VrrpView[], handles: NodeHandle[], preempt: boolean): string | undefined {
  const holders = views.filter((v) => v.holdsVip);
  if (holders.length !== 1) return undefined;
  const expected = expectedVrrp(factsFromViews(views, handles), preempt).holder;
  return expected === null || expected === holders[0].node ? holders[0].node : undefined;
}

/**
 * Waits (up to `budgetMs`) until the VIP has settled: one holder, the expected one (a node that has just
 * started takes the VIP over by preemption a few adverts later). Returns the last views, the holder
 * when exactly one node holds the VIP, and the node expected to.
 */
export async function waitForExpectedHolder(
  handles: NodeHandle[],
  rb: Runbook,
  budgetMs = 10_000,
): Promise<{ holder?: string; expected: string | null; views: VrrpView[] }> {
  const { last } = await pollUntil(
    async () => {
      const views = await vrrpViews(handles, rb);
      const holders = views.filter((v) => v.holdsVip);
      const expected = expectedVrrp(factsFromViews(views, handles), rb.vrrp.preempt).holder;
      return {
        done: settledHolder(views, handles, rb.vrrp.preempt) !== undefined,
        value: { holder: holders.length === 1 ? holders[0].node : undefined, expected, views },
      };
    },
    { budgetMs, intervalMs: 200 },
  );
  return last ?? { expected: null, views: [] };
}
