import { RunFailedError } from '../errors.js';
import { emptyPlan, type Step, type StepContext, type StepPlan } from '../engine/types.js';
import { inSubnet, parseCidr } from '../net.js';
import { shq } from '../shell.js';
import { osProfile } from '../engine/os-profile.js';
import { layout, packagesFor, sitePorts } from './common.js';
import { releaseProblems } from '../runbook/release-rules.js';
import type { Runbook } from '../runbook/schema.js';
import type { Facts, LiveVrrp } from '../engine/facts.js';

const MIN_FREE_MB = 1024;
const MAX_SKEW_MS = 5000;

/** Problems found on one node; the engine runs preflight on every node before anything else. */
export async function preflightProblems(ctx: StepContext): Promise<string[]> {
  const rb = ctx.runbook;
  const problems: string[] = [];
  const cidr = parseCidr(rb.vrrp.vip)!;
  const iface = ctx.node.interface;
  const addrs = ctx.facts.interfaces[iface];
  if (!addrs) {
    problems.push(`interface ${iface} does not exist (found: ${Object.keys(ctx.facts.interfaces).join(', ')})`);
  } else if (!addrs.some((a) => inSubnet(a.split('/')[0], cidr))) {
    problems.push(
      `interface ${iface} has no address in the VIP's subnet ${rb.vrrp.vip} (it has: ${addrs.join(', ') || 'none'})`,
    );
  }
  if (ctx.facts.freeDiskMb < MIN_FREE_MB)
    problems.push(
      `only ${ctx.facts.freeDiskMb} MiB free for ${rb.build.buildDir}; at least ${MIN_FREE_MB} MiB are needed`,
    );
  if (!ctx.facts.systemd) problems.push('systemd is not running; ha-setup manages services with systemd');
  // The same rules `validate --os` and `plan --offline --os` apply.
  for (const p of releaseProblems(rb, ctx.facts.release)) problems.push(`${p.path}: ${p.message}`);

  const times = Object.values(ctx.clusterFacts)
    .map((f) => f.epochMs)
    .filter((t) => t > 0);
  if (times.length > 1 && Math.max(...times) - Math.min(...times) > MAX_SKEW_MS) {
    problems.push(
      `clocks differ by ${Math.max(...times) - Math.min(...times)} ms between nodes ` +
        `(more than ${MAX_SKEW_MS} ms); enable NTP (chrony or systemd-timesyncd)`,
    );
  }

  const L = layout(rb);
  const hook = rb.keepalived.notifyHook;
  const vrid = rb.vrrp.virtualRouterId;
  const host = parseHostProbe((await ctx.t.exec(hostProbeScript(rb), { quiet: true })).stdout);
  // The site's ports (HTTP, and HTTPS with site.tls) must be free or held by our own nginx.
  for (const port of sitePorts(rb)) {
    const users = (host.portUsers.get(port) ?? []).join('\n');
    if (users !== '' && !users.includes('nginx')) {
      problems.push(`port ${port} is in use by another program: ${users.split('\n')[0]}`);
    } else if (users.includes('nginx') && !host.ourNginx.has(port)) {
      problems.push(
        `port ${port} is used by an nginx ` +
          `that is not ${L.nginxBinary} (a distribution nginx?); stop and disable it first`,
      );
    }
  }

  if (hook && !host.hookExecutable)
    problems.push(
      `keepalived.notifyHook: ${hook} is not an executable ` +
        `file on ${ctx.node.name}; install it there first (transitions and split brain would go unreported)`,
    );

  // The rule looks at every node of this run: reported once, by the first of them.
  if (ctx.node.name === Object.keys(ctx.clusterFacts)[0])
    problems.push(...vrrpIdentityProblems(rb, ctx.cluster, ctx.clusterFacts));

  // Once our keepalived runs here with this VRID, the VIP and the VRID's adverts on the segment are
  // this cluster's own: the network probes below (several seconds) were done on the first apply.
  if (host.ourKeepalived) return problems;

  await ensureProbeTools(ctx);

  // The VIP must not answer unless a node of this cluster holds it (known from every node's facts).
  const heldByCluster = Object.values(ctx.clusterFacts).some((f) =>
    Object.values(f.interfaces)
      .flat()
      .some((a) => a.split('/')[0] === cidr.address),
  );
  if (!heldByCluster && addrs) {
    const probeVip = await ctx.t.exec(
      `if command -v arping >/dev/null; then echo arping; arping -c 2 ` +
        `-w 2 -I ${shq(iface)} ${shq(cidr.address)} 2>&1 || true; ` +
        `elif command -v ping >/dev/null; then ping ` +
        `-c 1 -W 1 ${shq(cidr.address)} >/dev/null 2>&1 && echo answered || echo silent; else echo unknown; fi`,
      { quiet: true },
    );
    const clusterMacs = Object.values(ctx.clusterFacts).flatMap((f) => f.macs);
    const verdict = vipProbeVerdict(probeVip.stdout, clusterMacs);
    if (verdict.kind === 'foreign')
      problems.push(
        `the VIP ${cidr.address} already answers on the ` +
          `network${verdict.macs.length > 0 ? ` (from ${verdict.macs.join(', ')})` : ''} and no node of this cluster ` +
          `holds it; another host uses it`,
      );
    else if (verdict.kind === 'unknown')
      ctx.warn('neither arping nor ping is installed: could not check that the VIP is free');
  }

  // Listen for VRRP adverts with our VRID from hosts outside this cluster.
  const listen = await ctx.t.exec(
    `command -v tcpdump >/dev/null || { echo no-tcpdump; exit 0; }; timeout 3 ` +
      `tcpdump -nn -i ${shq(iface)} -c 5 ${shq(
        `ip proto 112 and ip[((ip[0]&0xf)<<2)+1] = ${vrid}`,
      )} 2>/dev/null | awk '{print $3}' | sort -u || true`,
    { quiet: true },
  );
  const out = listen.stdout.trim();
  if (out === 'no-tcpdump')
    ctx.warn(`tcpdump is not installed: could not listen for VRRP adverts with VRID ${vrid} on ${iface}`);
  else {
    const clusterHosts = new Set(ctx.cluster.map((n) => n.host));
    const foreign = out.split('\n').filter((s) => s !== '' && !clusterHosts.has(s));
    if (foreign.length > 0)
      problems.push(
        `VRID ${vrid} is already advertised on ${iface} by ${foreign.join(', ')}; choose another vrrp.virtualRouterId`,
      );
  }
  return problems;
}

/**
 * Settings two keepalived must share to hear each other. Changed on a pair that serves, a roll
 * (node by node) would leave a node with the new settings that does not hear its peer: both take
 * the VIP (split brain), and a planned move cannot happen. Refused before anything is touched, with
 * the maintenance path that works. One node serving alone can change them (nothing to split), unless
 * the run is limited (`--limit`): the nodes it leaves out keep the settings they have. Pure.
 */
export function vrrpIdentityProblems(
  rb: Runbook,
  cluster: Array<{ name: string }>,
  clusterFacts: Record<string, Facts>,
): string[] {
  const serving = cluster.filter((n) => clusterFacts[n.name]?.keepalivedActive && clusterFacts[n.name]?.liveVrrp);
  const left = cluster.filter((n) => !clusterFacts[n.name]);
  if (serving.length < 2 && (left.length === 0 || serving.length === 0)) return [];
  const wanted = {
    virtualRouterId: rb.vrrp.virtualRouterId,
    version: rb.vrrp.version,
    auth: Boolean(rb.vrrp.auth),
    unicast: rb.vrrp.unicast,
  };
  const changes: string[] = [];
  for (const [field, live] of [
    ['virtualRouterId', (v: LiveVrrp) => v.vrid],
    ['version', (v: LiveVrrp) => v.version],
    ['auth', (v: LiveVrrp) => v.auth],
    ['unicast', (v: LiveVrrp) => v.unicast],
  ] as const) {
    const want = wanted[field];
    const differing = serving.filter((n) => live(clusterFacts[n.name].liveVrrp!) !== want);
    if (differing.length === 0) continue;
    const now = [...new Set(differing.map((n) => String(live(clusterFacts[n.name].liveVrrp!))))].join(' / ');
    const shown = field === 'auth' ? (want ? 'a password' : 'none') : String(want);
    const nowShown = field === 'auth' ? (now === 'true' ? 'a password' : 'none') : now;
    changes.push(`vrrp.${field}: ${nowShown} on ${differing.map((n) => n.name).join(', ')}, ${shown} in the runbook`);
  }
  if (changes.length === 0) return [];
  if (left.length > 0)
    return [
      `${changes.join('; ')}: --limit leaves ${left.map((n) => n.name).join(', ')} on the settings it runs with, ` +
        'and nodes with different VRRP settings do not hear each other (both would hold the VIP). ' +
        'Change them on every node in one apply, without --limit.',
    ];
  return [
    `${changes.join('; ')}: keepalived serves on ${serving.map((n) => n.name).join(' and ')}, and nodes with ` +
      'different VRRP settings do not hear each other, so this change cannot roll node by node ' +
      '(both nodes would hold the VIP). ' +
      'Maintenance path: stop keepalived on every node except the one holding the VIP (`systemctl stop keepalived`; ' +
      'the holder keeps the VIP), then apply again: the holder reloads into the new settings (the VIP is absent for ' +
      'about three advert intervals) and the others start with them.',
  ];
}

/**
 * What preflight reads on a host, in one round trip (a process costs milliseconds on a small VM):
 * who listens on the site's ports and whether that is this runbook's nginx (its binary, or the
 * nginx ha-setup's own unit runs: another flavor or prefix of this cluster, which the apply replaces
 * by rolling the unit), whether the notify hook is executable, whether our keepalived runs with this
 * VRID. Pure.
 */
export function hostProbeScript(rb: Runbook): string {
  const L = layout(rb);
  const lines: string[] = [];
  for (const port of sitePorts(rb)) {
    const filter = shq(`sport = :${port}`);
    lines.push(`ss -Hltnp ${filter} 2>/dev/null | sed 's/^/port ${port} /'`);
    lines.push(
      `{ pgrep -f ${shq(`[n]ginx: master process ${L.nginxBinary}`)} >/dev/null || { grep -q 'managed by ha-setup' ` +
        `${shq(L.nginxUnit)} 2>/dev/null && m=$(systemctl show -p MainPID --value nginx) && [ "$m" != 0 ] && ss ` +
        `-Hltnp ${filter} | grep -q "pid=$m,"; }; } && echo 'ours ${port}'`,
    );
  }
  const hook = rb.keepalived.notifyHook;
  if (hook) lines.push(`[ -f ${shq(hook)} ] && [ -x ${shq(hook)} ] && echo hook-executable`);
  lines.push(
    `systemctl is-active --quiet keepalived && ` +
      `grep -qw ${shq(`virtual_router_id ${rb.vrrp.virtualRouterId}`)} ${shq(L.keepalivedConf)} && echo our-keepalived`,
  );
  return `${lines.map((l) => `${l}\n`).join('')}true`;
}

export interface HostProbe {
  portUsers: Map<number, string[]>;
  ourNginx: Set<number>;
  hookExecutable: boolean;
  ourKeepalived: boolean;
}

/** Reads hostProbeScript's output. Pure. */
export function parseHostProbe(output: string): HostProbe {
  const probe: HostProbe = { portUsers: new Map(), ourNginx: new Set(), hookExecutable: false, ourKeepalived: false };
  for (const line of output.split('\n')) {
    const port = /^port (\d+) (.*)$/.exec(line);
    if (port) {
      const n = Number(port[1]);
      probe.portUsers.set(n, [...(probe.portUsers.get(n) ?? []), port[2]]);
      continue;
    }
    const ours = /^ours (\d+)$/.exec(line.trim());
    if (ours) probe.ourNginx.add(Number(ours[1]));
    else if (line.trim() === 'hook-executable') probe.hookExecutable = true;
    else if (line.trim() === 'our-keepalived') probe.ourKeepalived = true;
  }
  return probe;
}

export type VipProbeVerdict = { kind: 'silent' | 'cluster' | 'unknown' } | { kind: 'foreign'; macs: string[] };

/**
 * Reads the VIP probe's output. A node of this cluster may take the VIP between the facts and the
 * probe (a backup whose peer is not running yet becomes master a few adverts later): an ARP answer
 * from one of the cluster's own hardware addresses is not another host. ping cannot tell who answered.
 */
export function vipProbeVerdict(output: string, clusterMacs: string[]): VipProbeVerdict {
  const lines = output.trim().split('\n');
  if (lines[0] !== 'arping') {
    const word = lines[0]?.trim();
    return word === 'answered' ? { kind: 'foreign', macs: [] } : { kind: word === 'unknown' ? 'unknown' : 'silent' };
  }
  const answering = [
    ...new Set([...output.matchAll(/\[([0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5})\]/g)].map((m) => m[1].toLowerCase())),
  ];
  if (answering.length === 0) return { kind: 'silent' };
  const ours = new Set(clusterMacs.map((m) => m.toLowerCase()));
  const foreign = answering.filter((m) => !ours.has(m));
  return foreign.length === 0 ? { kind: 'cluster' } : { kind: 'foreign', macs: foreign };
}

/**
 * tcpdump and arping make the VRID and VIP checks real; without them they could only warn. Installed
 * when missing (small diagnostic packages); if that fails, the checks below warn as before.
 */
async function ensureProbeTools(ctx: StepContext): Promise<void> {
  const pkgs = packagesFor('preflight', ctx.facts);
  if (pkgs.length === 0) return;
  const install = osProfile(ctx.facts).installQuietly(pkgs);
  const r = await ctx.t.exec(
    `if command -v tcpdump >/dev/null && command -v arping >/dev/null; then ` +
      `exit 0; fi\n${install}\ncommand -v tcpdump >/dev/null && command -v arping >/dev/null`,
    { quiet: true },
  );
  if (r.code !== 0) ctx.warn(`could not install ${pkgs.join(' ')} for the network checks`);
}

export class PreflightError extends RunFailedError {}

export const preflightStep: Step = {
  id: 'preflight',
  title: 'Preflight checks',
  appliesTo: 'all',
  dependsOn: [],
  always: true,
  readOnly: true,
  plan(): StepPlan {
    const plan = emptyPlan();
    plan.notes.push(
      'checks: interface and subnet, VIP free, site port free, disk space, clock skew, sudo, VRID not in use',
    );
    return plan;
  },
  check() {
    return 'false';
  },
  async run(ctx) {
    const problems = await preflightProblems(ctx);
    if (problems.length > 0) throw new PreflightError(`preflight found ${problems.length} problem(s)`, problems);
  },
};
