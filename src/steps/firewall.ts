import { emptyPlan, type PlanContext, type Step, type StepPlan } from '../engine/types.js';
import { isIPv4 } from '../net.js';
import { shq } from '../shell.js';
import { sitePorts } from './common.js';

/** Rules that let VRRP (protocol 112) from the peers and the site's ports in. Never disables anything. */
export function firewallCommands(pc: PlanContext): { apply: string[]; verify: string[] } {
  const rb = pc.runbook;
  if (!rb.firewall.manage) return { apply: [], verify: [] };
  // The address a peer's adverts come from: its host when that is an address, else what the peer
  // itself has on its VRRP interface (a rule source must be an address for firewalld).
  const peers = pc.cluster
    .filter((n) => n.index !== pc.node.index)
    .map((n) =>
      isIPv4(n.host) ? n.host : (pc.clusterFacts[n.name]?.interfaces[n.interface]?.[0]?.split('/')[0] ?? n.host),
    );
  const ports = sitePorts(rb);
  switch (pc.facts.firewall) {
    case 'firewalld': {
      // VRRP from the peers only, as with iptables and nftables: anyone else on the segment could
      // otherwise advertise a higher priority and take the VIP.
      const rules = peers.map((p) => `rule family="ipv4" source address="${p}" protocol value="vrrp" accept`);
      return {
        apply: [
          ...rules.map((r) => `firewall-cmd --permanent --add-rich-rule=${shq(r)}`),
          ...ports.map((port) => `firewall-cmd --permanent --add-port=${port}/tcp`),
          'firewall-cmd --reload',
        ],
        verify: [
          ...rules.map((r) => `firewall-cmd --query-rich-rule=${shq(r)}`),
          ...ports.map((port) => `firewall-cmd --query-port=${port}/tcp`),
        ],
      };
    }
    case 'iptables': {
      const rules = [
        ...peers.map((p) => ['-p', 'vrrp', '-s', p, '-j', 'ACCEPT']),
        ...ports.map((port) => ['-p', 'tcp', '--dport', String(port), '-j', 'ACCEPT']),
      ].map((r) => r.map(shq).join(' '));
      return {
        apply: rules
          .map((r) => `iptables -C INPUT ${r} 2>/dev/null || iptables -I INPUT ${r}`)
          .concat([
            'if command -v netfilter-persistent >/dev/null; then netfilter-persistent save; ' +
              'elif [ -f /etc/sysconfig/iptables ]; then iptables-save > /etc/sysconfig/iptables; fi',
          ]),
        verify: rules.map((r) => `iptables -C INPUT ${r}`),
      };
    }
    case 'nftables': {
      // The chain hooked on input with policy drop, as found on the host (e.g. "inet filter input").
      const chain = (pc.facts.firewallChain || 'inet filter input').split(' ').map(shq).join(' ');
      const stmts = [
        ...peers.map((p) => `ip saddr ${p} ip protocol vrrp accept`),
        ...ports.map((port) => `tcp dport ${port} accept`),
      ];
      return {
        apply: stmts.map(
          (s) => `nft list chain ${chain} | grep -F ${shq(s)} >/dev/null || nft insert rule ${chain} ${s}`,
        ),
        verify: stmts.map((s) => `nft list chain ${chain} | grep -F ${shq(s)} >/dev/null`),
      };
    }
    default:
      return { apply: [], verify: [] };
  }
}

export const firewallStep: Step = {
  id: 'firewall',
  title: 'Firewall: allow VRRP from the peers and the site port',
  appliesTo: 'all',
  dependsOn: [],
  plan(pc): StepPlan {
    const plan = emptyPlan();
    const { apply } = firewallCommands(pc);
    plan.commands.push(...apply);
    if (apply.length === 0)
      plan.notes.push(
        pc.runbook.firewall.manage
          ? `no active firewall found (${pc.facts.firewall}); nothing to open`
          : 'firewall.manage is false',
      );
    if (pc.facts.selinux === 'Enforcing')
      plan.notes.push('SELinux is enforcing and stays so; nginx runs from its prefix under systemd');
    return plan;
  },
  check(ctx) {
    const { verify } = firewallCommands(ctx);
    return verify.join(' && ') || 'true';
  },
};
