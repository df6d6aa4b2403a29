import { describe, expect, it } from 'vitest';
import type { VrrpView } from '../../src/engine/cluster.js';
import type { NodeHandle } from '../../src/engine/session.js';
import { expectedVrrp, settledHolder, type NodeVrrpFacts } from '../../src/verify/expected.js';

// What `status` calls the expected VRRP state: the runbook's priorities, the planned-failover track
// files, and which nodes serve at all.

const node = (name: string, priority: number, over: Partial<NodeVrrpFacts> = {}): NodeVrrpFacts => ({
  name,
  priority,
  reachable: true,
  nginx: 'active',
  keepalived: 'active',
  vrrpState: 'BACKUP',
  holdsVip: false,
  promote: 0,
  maintenance: 0,
  ...over,
});

describe('expectedVrrp', () => {
  it('with preemption the highest priority holds the VIP; the other is a backup', () => {
    const e = expectedVrrp([node('node1', 100, { holdsVip: true, vrrpState: 'MASTER' }), node('node2', 90)], true);
    expect(e).toEqual({ holder: 'node1', states: { node1: 'MASTER', node2: 'BACKUP' }, problems: [] });
  });

  it('a rebooted master that came back as backup under preemption is reported', () => {
    const e = expectedVrrp([node('node1', 100), node('node2', 90, { holdsVip: true, vrrpState: 'MASTER' })], true);
    expect(e.holder).toBe('node1');
    expect(e.problems).toEqual([
      'node1 should hold the VIP (highest priority) but does not',
      'node2 holds the VIP but node1 should (priority 100)',
    ]);
  });

  it('without preemption a serving holder keeps the VIP, whatever its priority', () => {
    const e = expectedVrrp([node('node1', 100), node('node2', 90, { holdsVip: true, vrrpState: 'MASTER' })], false);
    expect(e).toMatchObject({ holder: 'node2', problems: [] });
  });

  it('a planned failover (promote track file) moves the expected holder', () => {
    const e = expectedVrrp(
      [node('node1', 100), node('node2', 90, { holdsVip: true, vrrpState: 'MASTER', promote: 20 })],
      true,
    );
    expect(e).toMatchObject({ holder: 'node2', problems: [] });
  });

  it('nodes that do not serve are expected to hold nothing; one that still holds the VIP is reported', () => {
    const e = expectedVrrp(
      [
        node('node1', 100, { nginx: 'failed', holdsVip: true, vrrpState: 'MASTER' }),
        node('node2', 90, { maintenance: 1, vrrpState: 'FAULT' }),
        node('node3', 80),
      ],
      true,
    );
    expect(e.states).toEqual({ node1: 'not serving', node2: 'not serving', node3: 'MASTER' });
    expect(e.problems).toEqual([
      'node1 holds the VIP but is not serving',
      'node3 should hold the VIP (highest priority) but does not',
    ]);
  });

  it('both nodes holding the VIP (split brain) is a problem', () => {
    const e = expectedVrrp(
      [
        node('node1', 100, { holdsVip: true, vrrpState: 'MASTER' }),
        node('node2', 90, { holdsVip: true, vrrpState: 'MASTER' }),
      ],
      true,
    );
    expect(e.problems).toEqual(['node2 holds the VIP but node1 should (priority 100)']);
  });

  it('unreachable nodes are not serving and raise no problem of their own; none serving means no holder', () => {
    const e = expectedVrrp(
      [node('node1', 100, { reachable: false }), node('node2', 90, { keepalived: 'inactive' })],
      true,
    );
    expect(e).toEqual({ holder: null, states: { node1: 'not serving', node2: 'not serving' }, problems: [] });
  });
});

describe('settledHolder (apply waits for it at the end)', () => {
  const handles = [
    { node: { name: 'node1', priority: 100 } },
    { node: { name: 'node2', priority: 90 } },
  ] as unknown as NodeHandle[];
  const view = (node: string, o: Partial<VrrpView> = {}): VrrpView => ({
    node,
    holdsVip: false,
    state: 'BACKUP',
    nginx: 'active',
    keepalived: 'active',
    serving: true,
    promote: 0,
    maintenance: 0,
    ...o,
  });

  it('the master that has just started is not yet holding: not settled while the backup holds the VIP', () => {
    const views = [view('node1'), view('node2', { holdsVip: true, state: 'MASTER' })];
    expect(settledHolder(views, handles, true)).toBeUndefined();
    // Without preemption the holder keeps it: settled.
    expect(settledHolder(views, handles, false)).toBe('node2');
  });

  it('settled on the highest priority; on the backup while the master is in maintenance or not serving', () => {
    expect(settledHolder([view('node1', { holdsVip: true }), view('node2')], handles, true)).toBe('node1');
    const held = view('node2', { holdsVip: true, state: 'MASTER' });
    expect(settledHolder([view('node1', { maintenance: 1 }), held], handles, true)).toBe('node2');
    expect(settledHolder([view('node1', { nginx: 'inactive', serving: false }), held], handles, true)).toBe('node2');
  });

  it('two holders or none: never settled', () => {
    expect(settledHolder([view('node1'), view('node2')], handles, true)).toBeUndefined();
    const both = [view('node1', { holdsVip: true }), view('node2', { holdsVip: true })];
    expect(settledHolder(both, handles, true)).toBeUndefined();
  });
});
