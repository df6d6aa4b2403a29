import { osProfile } from '../engine/os-profile.js';
import { emptyPlan, type PlanContext, type Step, type StepPlan } from '../engine/types.js';
import { render } from '../render.js';
import { shq } from '../shell.js';
import { allOf, filesMatchCheck, keepalivedEnvFile, layout, packagesFor } from './common.js';
import { jobs } from './configure.js';

export function keepalivedUnit(pc: PlanContext): string {
  const L = layout(pc.runbook);
  return render('keepalived.service.njk', {
    version: pc.runbook.keepalived.install === 'source' ? pc.runbook.keepalived.version : '(distribution package)',
    binary: L.keepalivedBinary,
    confFile: L.keepalivedConf,
    envFile: keepalivedEnvFile(pc.facts),
  });
}

export const keepalivedBuildStep: Step = {
  id: 'keepalived-build',
  title: 'keepalived from source (or the OS package) and its unit',
  appliesTo: 'all',
  // Not 'packages': a module's build packages must not rebuild keepalived (its check still catches a broken install).
  dependsOn: ['keepalived-sources'],
  disruptive: (pc) => pc.runbook.keepalived.install === 'package',
  compiles: (pc) => pc.runbook.keepalived.install === 'source',
  plan(pc): StepPlan {
    const rb = pc.runbook;
    const L = layout(rb);
    const plan = emptyPlan();
    if (rb.keepalived.install === 'source') {
      const dir = L.srcDir('keepalived');
      plan.commands.push(
        `cd ${shq(dir)} && ./configure --prefix=${shq(rb.keepalived.prefix)} --sysconfdir=/etc ` +
          `&& make -j${jobs(pc)} && make install`,
      );
      plan.commands.push(`${shq(L.keepalivedBinary)} --version 2>&1 | sed -n 1p`);
    } else {
      plan.commands.push(osProfile(pc.facts).install(packagesFor('keepalivedPackage', pc.facts)));
      // The package may start keepalived with its example config; ours starts it in the start step.
      plan.commands.push('systemctl stop keepalived 2>/dev/null || true');
    }
    plan.files.push({ path: L.keepalivedUnit, content: keepalivedUnit(pc), mode: 0o644 });
    plan.commands.push('systemctl daemon-reload');
    return plan;
  },
  check(ctx) {
    const rb = ctx.runbook;
    const L = layout(rb);
    const versionOk =
      rb.keepalived.install === 'source'
        ? `${shq(L.keepalivedBinary)} --version 2>&1 | ` +
          `grep -F ${shq(`Keepalived v${rb.keepalived.version} `)} >/dev/null`
        : `[ -x ${shq(L.keepalivedBinary)} ]`;
    return allOf(filesMatchCheck(ctx), versionOk);
  },
};
