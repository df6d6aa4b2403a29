import { parseCidr } from '../net.js';
import { pollUntil } from '../poll.js';
import type { Runbook } from '../runbook/schema.js';
import { shq } from '../shell.js';
import { layout } from '../runbook/layout.js';
import type { NodeHandle } from './session.js';

export interface VrrpView {
  node: string;
  holdsVip: boolean;
  state: string;
  /** `systemctl is-active` of each unit. */
  nginx: string;
  keepalived: string;
  /** nginx and keepalived are both active on the node. */
  serving: boolean;
  /** The track files: the planned-failover boost and the maintenance flag (0 when absent). */
  promote: number;
  maintenance: number;
}

/**
 * Which nodes hold the VIP, what keepalived says (the notify script's last state), whether nginx and
 * keepalived run there and what the track files say, one round trip each.
 */
export async function vrrpViews(handles: NodeHandle[], rb: Runbook): Promise<VrrpView[]> {
  const { address: vip, prefix } = parseCidr(rb.vrrp.vip)!;
  const L = layout(rb);
  return Promise.all(
    handles.map(async (h) => {
      // One line per answer, whatever a file holds (empty, several lines, missing).
      const r = await h.t.exec(
        `if ip -o -4 addr show dev ${shq(h.node.interface)} | grep -w ${shq(`${vip}/${prefix}`)} >/dev/null; ` +
          `then echo holds; else echo free; fi; s=$(head -n1 ${shq(L.stateFile)} 2>/dev/null); ` +
          `echo "\${s:-unknown}"; systemctl is-active nginx || true; systemctl is-active keepalived || true; ` +
          `for f in ${shq(L.promoteFile)} ${shq(L.maintenanceFile)}; do v=$(head -n1 "$f" 2>/dev/null); ` +
          `echo "\${v:-0}"; done`,
        { quiet: true },
      );
      const [hold, state, nginx, keepalived, promote, maintenance] = r.stdout.trim().split('\n');
      return {
        node: h.node.name,
        holdsVip: hold === 'holds',
        state: state || 'unknown',
        nginx: nginx ?? 'unknown',
        keepalived: keepalived ?? 'unknown',
        serving: nginx === 'active' && keepalived === 'active',
        promote: Number(promote) || 0,
        maintenance: Number(maintenance) || 0,
      };
    }),
  );
}

/** Wait until exactly one node holds the VIP (and, with `expected`, that it is that node). */
export async function waitForSingleHolder(
  handles: NodeHandle[],
  rb: Runbook,
  budgetMs = 10_000,
  expected?: string,
): Promise<{ holder?: string; views: VrrpView[] }> {
  const { last } = await pollUntil(
    async () => {
      const views = await vrrpViews(handles, rb);
      const holders = views.filter((v) => v.holdsVip);
      const holder = holders.length === 1 ? holders[0].node : undefined;
      return { done: holder !== undefined && (!expected || holder === expected), value: { holder, views } };
    },
    { budgetMs, intervalMs: 200 },
  );
  return last ?? { views: [] };
}

export async function keepalivedLogTail(h: NodeHandle, rb: Runbook, lines = 10): Promise<string[]> {
  const r = await h.t.exec(
    `tail -n ${lines} ${shq(rb.logging.keepalivedLog)} 2>/dev/null || journalctl -u ` +
      `keepalived -n ${lines} --no-pager 2>/dev/null || true`,
    { quiet: true },
  );
  return r.stdout.trim().split('\n').filter(Boolean);
}
