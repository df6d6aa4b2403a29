import { corePatchFor } from '../catalog.js';
import { emptyPlan, type PlanContext, type Step, type StepPlan } from '../engine/types.js';
import { shq } from '../shell.js';
import { layout, nginxVersion, shippedModules } from './common.js';

interface CorePatchTask {
  module: string;
  patchFile: string;
  target: string;
}

/** nginx core patches the chosen modules need (nginx_upstream_check_module's check_<ver>.patch). */
export function corePatches(pc: PlanContext): CorePatchTask[] {
  const rb = pc.runbook;
  const L = layout(rb);
  const ver = nginxVersion(rb);
  // OpenResty's configure copies bundle/ to build/, so the patch goes into bundle/nginx-<ver>/.
  const target = rb.build.flavor === 'openresty' ? `${L.srcDir('openresty')}/bundle/nginx-${ver}` : L.srcDir('nginx');
  const out: CorePatchTask[] = [];
  for (const m of shippedModules(rb)) {
    const p = m.patches ? corePatchFor(m, ver) : undefined;
    if (p) out.push({ module: m.id, patchFile: `${L.srcDir(m.sources[0])}/${p.file}`, target });
  }
  return out;
}

const appliedTest = (t: CorePatchTask) =>
  `patch -p1 -R --dry-run -s -f -d ${shq(t.target)} < ${shq(t.patchFile)} >/dev/null 2>&1`;

export const patchStep: Step = {
  id: 'patch',
  title: 'Apply module core patches',
  appliesTo: 'all',
  dependsOn: ['sources'],
  plan(pc): StepPlan {
    const plan = emptyPlan();
    for (const t of corePatches(pc)) {
      plan.commands.push(
        `if ${appliedTest(t)}; then echo 'already applied'; else patch ` +
          `-p1 -f -d ${shq(t.target)} < ${shq(t.patchFile)}; fi`,
      );
      plan.notes.push(`${t.module}: ${t.patchFile} -> ${t.target}`);
    }
    return plan;
  },
  check(ctx) {
    const tasks = corePatches(ctx);
    return tasks.map(appliedTest).join(' && ') || 'true';
  },
};
