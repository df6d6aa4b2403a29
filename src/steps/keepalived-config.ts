import { runCommand, substituteSecrets } from '../engine/executor.js';
import { CommandFailedError } from '../engine/transport.js';
import { emptyPlan, secretRef, type PlanContext, type Step, type StepPlan } from '../engine/types.js';
import { parseCidr } from '../net.js';
import { render } from '../render.js';
import { shq } from '../shell.js';
import { allOf, filesMatchCheck, layout } from './common.js';

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

const RELOAD = 'systemctl reload keepalived';

/**
 * Reloads a running keepalived. With `staleWitness` (vrrp.witness removed) the witness script goes
 * too, but only once the VRRP process has re-read keepalived.conf: the reload returns before that, and
 * until then the old configuration may still run the script (missing, it fails, and fall 1 would
 * FAULT the holder). That moment is its "Reloading" line in the journal; without one within 10 s
 * (no journal) the script goes anyway, long after any reload finishes.
 */
export function reloadCommand(staleWitness?: string): string {
  if (!staleWitness) return `if systemctl is-active --quiet keepalived; then ${RELOAD}; fi`;
  const w = shq(staleWitness);
  const removed = `rm -f -- ${w}; echo ${shq(`removed ${staleWitness} (vrrp.witness is gone)`)}`;
  // Scripts run under pipefail: grep reads all (no -q, no SIGPIPE), journalctl may fail without a journal.
  // No -t match: with one, journalctl 252 skips the first matching entry after the cursor (seen on the lab).
  const reloadLine = ` Keepalived_vrrp\\[[0-9]+\\]: Reloading$`;
  const reloaded = `journalctl -q --after-cursor "$cursor" -o short | grep -E '${reloadLine}' >/dev/null`;
  return [
    `if systemctl is-active --quiet keepalived; then`,
    `  cursor=$({ journalctl -q -n 1 --show-cursor -o cat 2>/dev/null || true; } | sed -n 's/^-- cursor: //p')`,
    `  ${RELOAD}`,
    `  if [ -e ${w} ]; then`,
    `    for i in $(seq 100); do if [ -n "$cursor" ] && { ${reloaded}; } 2>/dev/null; then break; fi; sleep 0.1; done`,
    `    sleep 1; ${removed}`,
    `  fi`,
    `elif [ -e ${w} ]; then ${removed}; fi`,
  ].join('\n');
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
    plan.commands.push(reloadCommand(pc.runbook.vrrp.witness ? undefined : L.witnessScript));
    return plan;
  },
  check(ctx) {
    const stale = ctx.runbook.vrrp.witness ? undefined : layout(ctx.runbook).witnessScript;
    return stale ? allOf(filesMatchCheck(ctx), `[ ! -e ${shq(stale)} ]`) : filesMatchCheck(ctx);
  },
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
