import { emptyPlan, type PlanContext, type Step, type StepPlan } from '../engine/types.js';
import { parseCidr } from '../net.js';
import { render } from '../render.js';
import { shq } from '../shell.js';
import { allOf, filesMatchCheck, layout, packagesFor } from './common.js';
import { installPackagesCommands, packagesInstalledCheck } from './packages.js';

export function healthCheckFiles(pc: PlanContext) {
  const rb = pc.runbook;
  const L = layout(rb);
  return [
    {
      path: L.checkScript,
      mode: 0o755,
      owner: 'root',
      content: render('check_nginx.sh.njk', {
        listen: rb.site.listen,
        httpTimeout: 1,
        tryRestart: true,
        restartMarker: '/run/ha-setup-nginx-restart-tried',
      }),
    },
    {
      path: L.notifyScript,
      mode: 0o755,
      owner: 'root',
      content: render('notify.sh.njk', {
        stateFile: L.stateFile,
        facility: rb.logging.facility,
        hook: rb.keepalived.notifyHook ?? '',
        node: pc.node.name,
        vip: parseCidr(rb.vrrp.vip)!.address,
      }),
    },
    ...(rb.vrrp.witness
      ? [
          {
            path: L.witnessScript,
            mode: 0o755,
            owner: 'root',
            content: render('check_witness.sh.njk', { address: rb.vrrp.witness.address, timeout: 1 }),
          },
        ]
      : []),
  ];
}

/** ping for the witness check, installed here (not by the packages step, whose change rebuilds nginx). */
function witnessPackages(pc: PlanContext): string[] {
  return pc.runbook.vrrp.witness ? packagesFor('witness', pc.facts) : [];
}

// keepalived's script security refuses scripts in (or below) directories writable by non-root.
const secureDirs = (L: ReturnType<typeof layout>) => [L.keepalivedDir, L.scriptsDir];

export const healthCheckStep: Step = {
  id: 'health-check',
  title: 'Health-check and notify scripts (root-owned, 0755)',
  appliesTo: 'all',
  dependsOn: [],
  plan(pc): StepPlan {
    const L = layout(pc.runbook);
    const plan = emptyPlan();
    plan.commands.push(`install -d -m 0755 -o root -g root ${secureDirs(L).map(shq).join(' ')}`);
    const pkgs = witnessPackages(pc);
    if (pkgs.length > 0) plan.commands.push(...installPackagesCommands(pc, pkgs));
    plan.files.push(...healthCheckFiles(pc));
    return plan;
  },
  check(ctx) {
    const L = layout(ctx.runbook);
    const dirsOk = secureDirs(L)
      .map((d) => `[ "$(stat -c %U:%a ${shq(d)} 2>/dev/null)" = root:755 ]`)
      .join(' && ');
    return allOf(filesMatchCheck(ctx), dirsOk, packagesInstalledCheck(ctx, witnessPackages(ctx)));
  },
};
