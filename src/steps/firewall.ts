import { emptyPlan, type PlanContext, type Step, type StepPlan } from '../engine/types.js';
import { shq } from '../shell.js';
import { probe } from './common.js';

/** Rules that let VRRP (protocol 112) from the peers and the site port in. Never disables anything. */
export function firewallCommands(pc: PlanContext): { apply: string[]; verify: string[] } {
  const rb = pc.runbook;
  if (!rb.firewall.manage) return { apply: [], verify: [] };
  const peers = pc.cluster.filter((n) => n.index !== pc.node.index).map((n) => n.host);
  const port = rb.site.listen;
  switch (pc.facts.firewall) {
    case 'firewalld': {
      const rule = 'rule protocol value="vrrp" accept';
      return {
        apply: [
          `firewall-cmd --permanent --add-rich-rule=${shq(rule)}`,
          `firewall-cmd --permanent --add-port=${port}/tcp`,
          'firewall-cmd --reload',
        ],
        verify: [`firewall-cmd --query-rich-rule=${shq(rule)}`, `firewall-cmd --query-port=${port}/tcp`],
      };
    }
    case 'iptables': {
      const rules = [...peers.map((p) => ['-p', 'vrrp', '-s', p, '-j', 'ACCEPT']), ['-p', 'tcp', '--dport', String(port), '-j', 'ACCEPT']]
        .map((r) => r.map(shq).join(' '));
      return {
        apply: rules.map((r) => `iptables -C INPUT ${r} 2>/dev/null || iptables -I INPUT ${r}`)
          .concat(['if command -v netfilter-persistent >/dev/null; then netfilter-persistent save; elif [ -f /etc/sysconfig/iptables ]; then iptables-save > /etc/sysconfig/iptables; fi']),
        verify: rules.map((r) => `iptables -C INPUT ${r}`),
      };
    }
    case 'nftables': {
      // The chain hooked on input with policy drop, as found on the host (e.g. "inet filter input").
      const chain = (pc.facts.firewallChain || 'inet filter input').split(' ').map(shq).join(' ');
      const stmts = [...peers.map((p) => `ip saddr ${p} ip protocol vrrp accept`), `tcp dport ${port} accept`];
      return {
        apply: stmts.map((s) => `nft list chain ${chain} | grep -F ${shq(s)} >/dev/null || nft insert rule ${chain} ${s}`),
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
    if (apply.length === 0) plan.notes.push(pc.runbook.firewall.manage ? `no active firewall found (${pc.facts.firewall}); nothing to open` : 'firewall.manage is false');
    if (pc.facts.selinux === 'Enforcing') plan.notes.push('SELinux is enforcing and stays so; nginx runs from its prefix under systemd');
    return plan;
  },
  async check(ctx) {
    const { verify } = firewallCommands(ctx);
    return probe(ctx, verify.join(' && ') || 'true');
  },
};
