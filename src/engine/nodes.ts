import type { Runbook } from '../runbook/schema.js';
import type { ResolvedNode } from './types.js';

/** Per-node values with the runbook defaults applied. */
export function resolveNodes(rb: Runbook): ResolvedNode[] {
  return rb.nodes.map((n, index) => ({
    index,
    name: n.name ?? n.host.replace(/\./g, '-'),
    host: n.host,
    role: n.role,
    priority: n.priority,
    interface: n.interface ?? rb.vrrp.interface,
    user: n.user ?? rb.ssh.user,
    port: n.port ?? rb.ssh.port,
  }));
}

export function appliesTo(step: { appliesTo: 'all' | 'master' | 'backups' }, node: ResolvedNode): boolean {
  return step.appliesTo === 'all' || (step.appliesTo === 'master' ? node.role === 'master' : node.role === 'backup');
}
