import { layout, packagesFor, selectedModules } from './common.js';
import { emptyPlan, type PlanContext, type Step, type StepPlan } from '../engine/types.js';
import { osProfile } from '../engine/os-profile.js';
import { shq } from '../shell.js';

/**
 * Every package the node needs to build and run nginx and keepalived, from the data tables (build,
 * keepalived, runtime, modules). HTTPS's own (openssl, the ACME client) are the tls step's: the
 * configure step re-runs when this list changes, and turning HTTPS on must not rebuild nginx.
 */
export function packageList(pc: PlanContext): string[] {
  const rb = pc.runbook;
  const pm = pc.facts.packageManager;
  const list = [
    ...packagesFor('build', pc.facts),
    ...(rb.keepalived.install === 'source'
      ? packagesFor('keepalived', pc.facts)
      : packagesFor('keepalivedPackage', pc.facts)),
    ...packagesFor('runtime', pc.facts),
  ];
  for (const m of selectedModules(rb)) {
    if (m.bundledIn.includes(rb.build.flavor)) continue;
    // lua-resty-* come from the archive as files (see luaRestyCommand), not as installed packages:
    // installing them would pull in the distribution's nginx and start it on our port.
    list.push(...(m.packages[pm] ?? []).filter((p) => !p.startsWith('lua-resty-')));
  }
  return [...new Set(list)];
}

function missingScript(pc: PlanContext, pkgs: string[]): string {
  return osProfile(pc.facts).missingScript(pkgs);
}

/** Shell: installs the missing ones of `pkgs`, then fails naming any the package database still lacks. */
export function installPackagesCommands(pc: PlanContext, pkgs: string[]): string[] {
  const install = osProfile(pc.facts).installMissing;
  return [
    `${missingScript(pc, pkgs)}\nif [ -n "$missing" ]; then echo ` +
      `"installing:$missing"; ${install}; else echo "all packages present"; fi`,
    // yum exits 0 when a name does not exist; ask the package database, so a missing package fails
    // here by name instead of later in configure.
    `${missingScript(pc, pkgs)}\nif [ -n "$missing" ]; then echo "not installed after the install ` +
      `command:$missing (wrong name for this release, or a repository such as EPEL is missing)" >&2; exit 1; fi`,
  ];
}

/** Check: every one of `pkgs` is installed (no packages: nothing to check). */
export function packagesInstalledCheck(pc: PlanContext, pkgs: string[]): string {
  return pkgs.length > 0 ? osProfile(pc.facts).allInstalledTest(pkgs) : 'true';
}

/** lua-resty-core and lua-resty-lrucache as plain files unpacked from the distribution's packages. */
function luaRestyCommand(pc: PlanContext): string | undefined {
  const rb = pc.runbook;
  const unpack = osProfile(pc.facts).unpackInto;
  if (rb.build.flavor !== 'nginx' || !rb.build.modules.includes('lua') || !unpack) return undefined;
  const dir = layout(rb).luaDir;
  return [
    `if [ ! -f ${shq(`${dir}/usr/share/lua/5.1/resty/core.lua`)} ]; then`,
    unpack(['lua-resty-core', 'lua-resty-lrucache'], dir),
    `fi`,
  ].join('\n');
}

export const packagesStep: Step = {
  id: 'packages',
  title: 'Install build and runtime packages',
  appliesTo: 'all',
  dependsOn: [],
  plan(pc): StepPlan {
    const plan = emptyPlan();
    const pkgs = packageList(pc);
    plan.commands.push(...installPackagesCommands(pc, pkgs));
    const lua = luaRestyCommand(pc);
    if (lua) plan.commands.push(lua);
    const hint = osProfile(pc.facts).epelHint;
    if (hint && pc.runbook.build.flavor === 'nginx' && pc.runbook.build.modules.includes('lua')) plan.notes.push(hint);
    plan.notes.push(`packages: ${pkgs.join(' ')}`);
    return plan;
  },
  check(ctx) {
    const pkgs = packageList(ctx);
    const lua = luaRestyCommand(ctx)
      ? `[ -f ${shq(`${layout(ctx.runbook).luaDir}/usr/share/lua/5.1/resty/core.lua`)} ]`
      : 'true';
    return `${packagesInstalledCheck(ctx, pkgs)} && ${lua}`;
  },
};
