import type { NodeHandle } from '../engine/session.js';
import { parseCidr } from '../net.js';
import { pollUntil, sleep } from '../poll.js';
import { render } from '../render.js';
import type { Runbook } from '../runbook/schema.js';
import { shq } from '../shell.js';
import { layout } from '../runbook/layout.js';

/**
 * Connection handoff around a planned VIP move (script: templates/handoff.sh.njk). Without it a
 * request whose connection opened with the old holder a moment before the clients' ARP caches flip
 * is reset by the new holder; with it the new holder passes such packets to the old holder, which
 * keeps the VIP on lo until its connections are done.
 */

/** The safety timer ends a handoff ha-setup lost track of; a planned move and its drain take far less. */
export const HANDOFF_EXPIRE_SECONDS = 120;
/**
 * The old holder finishes its connections for at least this long after the move (stragglers whose ARP entry is late)...
 */
export const HANDOFF_MIN_DRAIN_MS = 1_000;
/** ...and at most this long (idle keep-alive connections would hold it for a minute). */
export const HANDOFF_MAX_DRAIN_MS = 10_000;

/** The script for one node (its own VRRP interface). Pure. */
export function handoffScript(rb: Runbook, iface: string): string {
  const L = layout(rb);
  return render('handoff.sh.njk', {
    vip: parseCidr(rb.vrrp.vip)!.address,
    iface,
    port: rb.site.listen,
    stateFile: L.handoffState,
    expireSeconds: HANDOFF_EXPIRE_SECONDS,
  });
}

/** The commands each side runs, in order (takeover names the old holder). Pure. */
export function handoffCommands(rb: Runbook): {
  release: string;
  takeover: (oldHolderAddress: string) => string;
  connections: string;
  end: string;
} {
  const s = shq(layout(rb).handoffScript);
  return {
    release: `/bin/sh ${s} release`,
    takeover: (oldHolderAddress) => `/bin/sh ${s} takeover ${shq(oldHolderAddress)}`,
    connections: `/bin/sh ${s} connections`,
    end: `/bin/sh ${s} end`,
  };
}

/**
 * The node's own IPv4 address on its VRRP interface (not the VIP): where the new holder sends the old connections'
 * packets.
 */
export async function addressOnInterface(h: NodeHandle, rb: Runbook): Promise<string | undefined> {
  const vip = parseCidr(rb.vrrp.vip)!.address;
  const r = await h.t.exec(`ip -4 -o addr show dev ${shq(h.node.interface)} scope global`, { quiet: true });
  return [...r.stdout.matchAll(/\binet (\d+\.\d+\.\d+\.\d+)\//g)].map((m) => m[1]).find((a) => a !== vip);
}

export interface Handoff {
  /**
   * Undo everything on both nodes; after a move (`moved`), first let the old holder finish its
   * connections on the VIP (bounded).
   */
  end(moved: boolean): Promise<void>;
}

/**
 * Every planned VIP move goes through here (ha-setup failover, the roll's way home, both phases of
 * the planned verification): the handoff is prepared on both nodes, `move` triggers the move (and
 * waits for it, or measures it), and the handoff ends once `moved` says whether the VIP moved.
 */
export async function plannedMove<T>(
  rb: Runbook,
  from: NodeHandle,
  to: NodeHandle,
  log: (l: string) => void,
  move: () => Promise<T>,
  moved: (result: T) => boolean,
): Promise<T> {
  const handoff = await beginHandoff(rb, from, to, log);
  let result: T;
  try {
    result = await move();
  } catch (e) {
    await handoff.end(false);
    throw e;
  }
  await handoff.end(moved(result));
  return result;
}

/**
 * Prepare both nodes before the VIP moves from `from` to `to`. When a node cannot take part (no nft,
 * a kernel without nft dup), the move goes ahead as before and the log says that connections open at
 * that instant may be reset.
 */
async function beginHandoff(rb: Runbook, from: NodeHandle, to: NodeHandle, log: (l: string) => void): Promise<Handoff> {
  const L = layout(rb);
  const c = handoffCommands(rb);
  const both = [from, to];
  const undo = async () => {
    await Promise.all(both.map((h) => h.t.exec(c.end, { quiet: true }).catch(() => undefined)));
  };
  try {
    const fromAddress = await addressOnInterface(from, rb);
    if (!fromAddress) throw new Error(`${from.node.name} has no IPv4 address of its own on ${from.node.interface}`);
    await Promise.all(
      both.map((h) =>
        h.t
          .exec(`mkdir -p ${shq(L.handoffScript.replace(/\/[^/]+$/, ''))}`, { quiet: true })
          .then(() => h.t.writeFile(L.handoffScript, handoffScript(rb, h.node.interface), { mode: 0o700 })),
      ),
    );
    const rel = await from.t.exec(c.release, { quiet: true });
    if (rel.code !== 0) throw new Error(`${from.node.name}: ${(rel.stderr || rel.stdout).trim()}`);
    const take = await to.t.exec(c.takeover(fromAddress), { quiet: true });
    if (take.code !== 0) throw new Error(`${to.node.name}: ${(take.stderr || take.stdout).trim()}`);
  } catch (e) {
    await undo();
    log(
      `connection handoff unavailable (${(e as Error).message.split('\n')[0]}): connections open at the instant the ` +
        `VIP moves may be reset`,
    );
    return { end: async () => undefined };
  }
  return {
    async end(moved) {
      const start = Date.now();
      let open = -1;
      if (moved) {
        // The old holder drains: at least the minimum, until it has no connection on the VIP, at most the maximum.
        await sleep(250);
        ({ last: open = -1 } = await pollUntil(
          async () => {
            const r = await from.t.exec(c.connections, { quiet: true }).catch(() => undefined);
            const n = r && r.code === 0 ? Number(r.stdout.trim()) : -1;
            return { done: n === 0 && Date.now() - start >= HANDOFF_MIN_DRAIN_MS, value: n };
          },
          { budgetMs: HANDOFF_MAX_DRAIN_MS - 250, intervalMs: 250 },
        ));
      }
      if (open > 0)
        log(
          `handoff: ${from.node.name} still had ${open} connection(s) on the ` +
            `VIP after ${HANDOFF_MAX_DRAIN_MS / 1000} s; they are closed now`,
        );
      await undo();
    },
  };
}
