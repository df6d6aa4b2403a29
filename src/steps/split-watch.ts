import { emptyPlan, type PlanContext, type Step, type StepPlan } from '../engine/types.js';
import { parseCidr } from '../net.js';
import { render } from '../render.js';
import { shq } from '../shell.js';
import { allOf, filesMatchCheck, layout, packagesFor } from './common.js';
import { installPackagesCommands, packagesInstalledCheck } from './packages.js';

const UNIT = 'ha-setup-split-watch';

export function splitWatchFiles(pc: PlanContext) {
  const rb = pc.runbook;
  const L = layout(rb);
  const vip = parseCidr(rb.vrrp.vip)!.address;
  return [
    {
      path: L.splitWatchScript,
      mode: 0o755,
      owner: 'root',
      content: render('split_watch.sh.njk', {
        vip,
        interface: pc.node.interface,
        flagFile: L.splitFlag,
        node: pc.node.name,
        facility: rb.logging.facility,
        hook: rb.keepalived.notifyHook ?? '',
      }),
    },
    {
      path: L.splitWatchUnit,
      mode: 0o644,
      owner: 'root',
      content: render('ha-setup-split-watch.service.njk', { vip, script: L.splitWatchScript }),
    },
  ];
}

/**
 * Both nodes MASTER (VRRP lost between them, clients reaching both) is invisible to keepalived:
 * this watch sees it from either side and reports it. It only observes, so it never disrupts.
 */
export const splitWatchStep: Step = {
  id: 'split-watch',
  title: 'Split-brain watch (a second holder of the VIP is reported)',
  appliesTo: 'all',
  dependsOn: [],
  plan(pc): StepPlan {
    const plan = emptyPlan();
    plan.commands.push(...installPackagesCommands(pc, packagesFor('splitWatch', pc.facts)));
    plan.files.push(...splitWatchFiles(pc));
    // Restarted, not just started: a changed script only takes effect in a new process.
    plan.commands.push(`systemctl daemon-reload && systemctl enable ${UNIT} && systemctl restart ${UNIT}`);
    return plan;
  },
  check(ctx) {
    return allOf(
      filesMatchCheck(ctx),
      packagesInstalledCheck(ctx, packagesFor('splitWatch', ctx.facts)),
      `systemctl is-enabled --quiet ${shq(UNIT)} && systemctl is-active --quiet ${shq(UNIT)}`,
    );
  },
};
