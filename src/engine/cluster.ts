import { parseCidr } from '../net.js';
import type { Runbook } from '../runbook/schema.js';
import { shq } from '../shell.js';
import { layout } from '../runbook/layout.js';
import type { NodeHandle } from './session.js';

export interface VrrpView {
  node: string;
  holdsVip: boolean;
  state: string;
}

/** Which nodes hold the VIP and what keepalived says (the notify script's last state), one round trip each. */
export async function vrrpViews(handles: NodeHandle[], rb: Runbook): Promise<VrrpView[]> {
  const vip = parseCidr(rb.vrrp.vip)!.address;
  const L = layout(rb);
  return Promise.all(handles.map(async (h) => {
    const r = await h.t.exec(
      `if ip -o -4 addr show dev ${shq(h.node.interface)} | grep -w ${shq(`${vip}/${parseCidr(rb.vrrp.vip)!.prefix}`)} >/dev/null; then echo holds; else echo free; fi; cat ${shq(L.stateFile)} 2>/dev/null || echo unknown`,
      { quiet: true },
    );
    const [hold, state] = r.stdout.trim().split('\n');
    return { node: h.node.name, holdsVip: hold === 'holds', state: state ?? 'unknown' };
  }));
}

/** Polls until exactly one node holds the VIP; returns its name, or undefined after the budget. */
/** Wait until exactly one node holds the VIP (and, with `expected`, that it is that node). */
export async function waitForSingleHolder(handles: NodeHandle[], rb: Runbook, budgetMs = 10_000, expected?: string): Promise<{ holder?: string; views: VrrpView[] }> {
  const deadline = Date.now() + budgetMs;
  let views: VrrpView[] = [];
  let last: string | undefined;
  while (Date.now() < deadline) {
    views = await vrrpViews(handles, rb);
    const holders = views.filter((v) => v.holdsVip);
    last = holders.length === 1 ? holders[0].node : undefined;
    if (last && (!expected || last === expected)) return { holder: last, views };
    await new Promise((r) => setTimeout(r, 200));
  }
  return { holder: last, views };
}

export async function keepalivedLogTail(h: NodeHandle, rb: Runbook, lines = 10): Promise<string[]> {
  const r = await h.t.exec(`tail -n ${lines} ${shq(rb.logging.keepalivedLog)} 2>/dev/null || journalctl -u keepalived -n ${lines} --no-pager 2>/dev/null || true`, { quiet: true });
  return r.stdout.trim().split('\n').filter(Boolean);
}
