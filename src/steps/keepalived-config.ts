import { runCommand, substituteSecrets } from '../engine/executor.js';
import { CommandFailedError } from '../engine/transport.js';
import { emptyPlan, secretRef, type PlanContext, type Step, type StepPlan } from '../engine/types.js';
import { parseCidr } from '../net.js';
import { render } from '../render.js';
import { shq } from '../shell.js';
import { filesMatchCheck, layout } from './common.js';

export function keepalivedConf(pc: PlanContext): string {
  const rb = pc.runbook;
  const L = layout(rb);
  const cidr = parseCidr(rb.vrrp.vip)!;
  const peers = rb.vrrp.unicast ? pc.cluster.filter((n) => n.index !== pc.node.index).map((n) => n.host) : [];
  return render('keepalived.conf.njk', {
    routerId: `${rb.name}-${pc.node.name}`,
    checkScript: L.checkScript,
    checkTimeout: Math.max(1, rb.keepalived.check.interval),
    check: rb.keepalived.check,
    trackFile: L.trackFile,
    trackNginx: rb.keepalived.trackNginx,
    promoteFile: L.promoteFile,
    maintenanceFile: L.maintenanceFile,
    instance: `VI_${rb.name.replace(/-/g, '_').toUpperCase()}`,
    interface: pc.node.interface,
    vrid: rb.vrrp.virtualRouterId,
    priority: pc.node.priority,
    advertInt: rb.vrrp.advertInt,
    vrrpVersion: rb.vrrp.version,
    preempt: rb.vrrp.preempt,
    // The password itself is substituted only when the file is written on the host.
    auth: rb.vrrp.auth ? secretRef(rb.vrrp.auth.passwordEnv) : '',
    unicastSrc: pc.node.host,
    unicastPeers: peers,
    vip: `${cidr.address}/${cidr.prefix}`,
    notifyScript: L.notifyScript,
    witness: rb.vrrp.witness,
    witnessScript: L.witnessScript,
    rtPriority: rb.keepalived.rtPriority,
  });
}

export const keepalivedConfigStep: Step = {
  id: 'keepalived-config',
  title: 'keepalived.conf (tested with keepalived -t first)',
  appliesTo: 'all',
  dependsOn: [],
  plan(pc): StepPlan {
    const L = layout(pc.runbook);
    const plan = emptyPlan();
    plan.files.push({ path: L.keepalivedConf, content: keepalivedConf(pc), mode: 0o640 });
    plan.commands.push('if systemctl is-active --quiet keepalived; then systemctl reload keepalived; fi');
    return plan;
  },
  check: filesMatchCheck,
  async run(ctx) {
    const L = layout(ctx.runbook);
    const f = ctx.plan.files[0];
    const staged = `${L.keepalivedDir}/.keepalived.conf.ha-setup-test`;
    await ctx.t.writeFile(staged, substituteSecrets(f.content, ctx.secrets), { mode: 0o600 });
    // Exit code 5 would be script security refusing our scripts: never acceptable.
    const test = `${shq(L.keepalivedBinary)} -t -f ${shq(staged)}`;
    const r = await ctx.t.exec(`${test}; rc=$?; rm -f ${shq(staged)}; exit $rc`, { onLine: ctx.progress });
    if (r.code !== 0) {
      const why =
        r.code === 5 ? ' (script security refused a script: check ownership and modes of /etc/keepalived/scripts)' : '';
      throw new CommandFailedError(
        test,
        r.code,
        `${r.stdout}\n${r.stderr}${why}\n(the live configuration was left untouched)`,
      );
    }
    await ctx.t.writeFile(f.path, substituteSecrets(f.content, ctx.secrets), { mode: f.mode });
    for (const cmd of ctx.plan.commands) await runCommand(ctx, cmd);
  },
};
