import { osProfile } from '../engine/os-profile.js';
import { emptyPlan, type PlanContext, type Step, type StepPlan } from '../engine/types.js';
import { shq } from '../shell.js';
import { layout, luaPackageCpath } from './common.js';

/**
 * lua-cjson for the gateway on the nginx flavor: files unpacked from Debian's package next to
 * lua-resty-core (an installed package would pull in the distribution's nginx). A step of its own,
 * not part of `packages`: turning the gateway on must not rebuild nginx (configure depends on packages).
 */
function cjsonSo(pc: PlanContext): string | undefined {
  const cpath = luaPackageCpath(pc);
  return cpath && osProfile(pc.facts).unpackInto ? cpath.replace('?.so;;', 'cjson.so') : undefined;
}

export const gatewayLibsStep: Step = {
  id: 'gateway-libs',
  title: 'Lua libraries the gateway needs (lua-cjson, nginx flavor)',
  appliesTo: 'all',
  dependsOn: [],
  plan(pc): StepPlan {
    const plan = emptyPlan();
    const so = cjsonSo(pc);
    if (!so) {
      plan.notes.push(
        pc.runbook.build.flavor === 'openresty'
          ? 'OpenResty bundles cjson'
          : 'no Consul discovery in this runbook: nothing to do',
      );
      return plan;
    }
    const dir = layout(pc.runbook).luaDir;
    plan.commands.push(
      [
        `if [ ! -e ${shq(so)} ]; then`,
        osProfile(pc.facts).unpackInto!(['lua-cjson'], dir),
        `fi`,
        `[ -e ${shq(so)} ]`,
      ].join('\n'),
    );
    return plan;
  },
  check(ctx) {
    const so = cjsonSo(ctx);
    return so ? `[ -e ${shq(so)} ]` : 'true';
  },
};
