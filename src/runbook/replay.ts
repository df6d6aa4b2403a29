import { isDnsName, isIPv4, parseCidr, inSubnet } from '../net.js';
import { InvalidInputError, RunbookInvalidError } from '../errors.js';
import type { Runbook, RunbookInput } from './schema.js';
import { validateRunbook } from './validate.js';

/**
 * The same cluster on new hosts: roles and priorities kept in order, hosts (and the VIP) replaced.
 * Pure: returns the new runbook document, validated.
 */
export function replayRunbook(
  rb: Runbook,
  hosts: string[],
  vip: string | undefined,
  name: string | undefined,
): RunbookInput {
  if (hosts.length !== rb.nodes.length) {
    throw new InvalidInputError(
      `--hosts has ${hosts.length} address(es); the ` +
        `runbook has ${rb.nodes.length} nodes (roles and priorities are kept in order)`,
    );
  }
  const bad = hosts.find((h) => !isIPv4(h) && !isDnsName(h));
  if (bad) throw new InvalidInputError(`--hosts: "${bad}" is not an IPv4 address or DNS name`);
  let newVip = vip ?? rb.vrrp.vip;
  if (!vip) {
    const c = parseCidr(rb.vrrp.vip)!;
    if (hosts.some((h) => isIPv4(h) && !inSubnet(h, c))) {
      throw new InvalidInputError(`the new hosts are not in the subnet of the runbook's VIP ${rb.vrrp.vip}`, [
        'give the new cluster its VIP with --vip <address>/<prefix>',
      ]);
    }
    newVip = rb.vrrp.vip;
  }
  const doc: RunbookInput = structuredClone(rb) as RunbookInput;
  doc.name = name ?? `${rb.name}-${hosts[0].replace(/[^a-z0-9]+/gi, '-').toLowerCase()}`;
  doc.nodes = rb.nodes.map((n, i) => ({ ...n, host: hosts[i] }));
  doc.vrrp = { ...rb.vrrp, vip: newVip };
  const check = validateRunbook(doc);
  if (!check.ok) throw new RunbookInvalidError('the replayed runbook', check.problems);
  return doc;
}
