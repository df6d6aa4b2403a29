import { RunFailedError } from '../errors.js';
import type { Runbook } from '../runbook/schema.js';
import { shq } from '../shell.js';
import { layout } from '../runbook/layout.js';
import { vrrpViews } from '../engine/cluster.js';
import { rollEventLog, rollNodes, rollOrder, RollStoppedError, type RollEnv, type RollEvent } from './roll.js';
import type { NodeHandle } from '../engine/session.js';

/**
 * The commands that swap sbin/nginx with sbin/nginx.old (and their build ids) on one node, and the
 * configuration with the one the previous binary ran with when there is one (a module and its
 * directives come and go together), and move a running nginx to them with the hot upgrade.
 * Swapping, not copying: a second rollback brings the newer build back. Pure.
 */
export function rollbackScript(rb: Runbook): string {
  const L = layout(rb);
  const bin = shq(L.nginxBinary);
  const old = shq(`${L.nginxBinary}.old`);
  const tmp = shq(`${L.nginxBinary}.rollback-tmp`);
  const marker = shq(L.installedMarker);
  const markerOld = shq(`${L.installedMarker}.old`);
  const conf = shq(L.confDir);
  const confOld = shq(L.confOld);
  const confTmp = shq(`${L.confDir}.rollback-tmp`);
  const testDir = `${L.nginxHome}/.ha-setup-rollback-test`;
  const stage = shq(testDir);
  const swapMarkers =
    `{ cat -- ${markerOld} 2>/dev/null || echo ` +
    `unknown; } > ${shq(`${L.installedMarker}.swap`)} && { cat -- ${marker} 2>/dev/null || echo ` +
    `unknown; } > ${markerOld} && mv -f -- ${shq(`${L.installedMarker}.swap`)} ${marker}`;
  const swapConf =
    `if [ -d ${confOld} ]; then mv -- ${conf} ${confTmp} && mv -- ${confOld} ${conf} && mv ` +
    `-- ${confTmp} ${confOld}; fi`;
  return [
    `[ -x ${old} ] || { echo ${shq(
      `no previous binary ${L.nginxBinary}.old on this node: nothing to roll back to`,
    )} >&2; exit 1; }`,
    // The previous binary is tested with the configuration it will run with, in a prefix of its own
    // (so $prefix-relative Lua paths resolve to that configuration's own files).
    // (commands run under set -e: a refusal is caught with ||, not read from $? afterwards)
    `rc=0; if [ -d ${confOld} ]; then rm -rf -- ${stage} && mkdir ` +
      `-p ${shq(`${testDir}/logs`)} && cp -a ` +
      `-- ${confOld} ${shq(`${testDir}/conf`)}; ` +
      `${old} -t -q -p ${shq(`${testDir}/`)} -c ${shq(`${testDir}/conf/nginx.conf`)} || rc=$?; rm -rf -- ${stage}; ` +
      `else ${old} -t -q -c ${shq(L.confFile)} || rc=$?; fi`,
    `[ "$rc" = 0 ] || { echo ${shq(
      'the previous binary refuses the configuration it would run with: not rolled back',
    )} >&2; exit 1; }`,
    `cp -p -- ${old} ${tmp} && cp -p -- ${bin} ${old} && mv -f -- ${tmp} ${bin}`,
    swapMarkers,
    swapConf,
    // The upgrade script puts the running binary back if the swapped-in one fails; configuration and markers follow.
    `if systemctl is-active --quiet ` +
      `nginx; then ${shq(L.upgradeScript)} || { ${swapMarkers}; ${swapConf}; exit 1; }; else echo 'nginx is not ` +
      `running: the previous binary starts with it'; fi`,
    `${bin} -v`,
  ].join('\n');
}

/** Roll every node (or `only`) back to its previous nginx binary, one node at a time, VIP moved away first. */
export async function rollbackNginx(o: RollEnv, log: (l: string) => void, only?: string[]): Promise<RollEvent[]> {
  const { events, event } = rollEventLog(log);
  const targets = o.handles.filter((h) => !only || only.includes(h.node.name) || only.includes(h.node.host));
  if (only && targets.length === 0) throw new RunFailedError(`--limit ${only.join(',')}: no such node in the runbook`);
  const missing = [];
  for (const h of targets) {
    const r = await h.t.exec(`test -x ${shq(`${layout(o.runbook).nginxBinary}.old`)}`, { quiet: true });
    if (r.code !== 0) missing.push(h.node.name);
  }
  // All or nothing: a cluster with mixed builds after a half rollback is worse than either.
  if (missing.length > 0)
    throw new RunFailedError(`no previous nginx binary to roll back to on ${missing.join(', ')}`, [
      'a previous binary is kept by each install that replaces a build (sbin/nginx.old)',
    ]);
  const holder = (await vrrpViews(o.handles, o.runbook)).find((v) => v.holdsVip)?.node;
  const order = rollOrder(
    targets.map((h) => ({ name: h.node.name, priority: h.node.priority })),
    holder,
  );
  log(`rollback: one node at a time: ${order.join(' -> ')} (VIP on ${holder ?? 'no node'})`);
  const script = rollbackScript(o.runbook);
  await rollNodes(
    o,
    order,
    () => 'the rollback',
    async (h: NodeHandle) => {
      const r = await h.t.exec(script, { onLine: (l) => log(`  ${h.node.name}: ${l}`) });
      if (r.code !== 0) {
        event(h.node.name, 'rollback failed; roll stopped');
        throw new RollStoppedError(
          `the rollback stopped at ${h.node.name}: ${(r.stderr || r.stdout).trim().split('\n').pop()}`,
          [
            `nodes not rolled back: ${order.slice(order.indexOf(h.node.name) + 1).join(', ') || 'none'}`,
            `log: ${h.logPath}`,
          ],
        );
      }
      event(h.node.name, 'previous nginx binary serves');
    },
    event,
    log,
  );
  return events;
}
