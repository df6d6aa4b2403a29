import { emptyPlan, type Step, type StepPlan } from '../engine/types.js';
import { shq } from '../shell.js';
import { buildId } from './build.js';
import { layout, LUA_RESTY_SOURCES, needsLuaRestySources, probe } from './common.js';
import { configureSpec } from './configure.js';

const installedMarker = (home: string) => `${home}/.ha-setup-installed`;

export const installStep: Step = {
  id: 'install',
  title: 'Install into the prefix (make install)',
  appliesTo: 'all',
  dependsOn: ['build'],
  disruptive: true,
  plan(pc): StepPlan {
    const plan = emptyPlan();
    const L = layout(pc.runbook);
    const { dir } = configureSpec(pc);
    // Never replace the binary of a running nginx in place: stop it first; the nginx-service step
    // starts it again (it depends on this step).
    plan.commands.push(`if systemctl is-active --quiet nginx 2>/dev/null; then echo 'stopping nginx before installing the new binary'; systemctl stop nginx; fi
if pgrep -f ${shq(`[n]ginx: master process ${L.nginxBinary}`)} >/dev/null; then echo ${shq(`nginx from ${L.nginxBinary} is running outside systemd; stop it first`)} >&2; exit 1; fi`);
    if (needsLuaRestySources(pc.runbook, pc.facts.family)) {
      // resty.core and resty.lrucache as plain Lua files on lua_package_path (Debian: packages step).
      const lib = `${L.luaDir}/lib`;
      plan.commands.push(`mkdir -p ${shq(lib)} && ${LUA_RESTY_SOURCES.map((id) => `cp -a ${shq(`${L.srcDir(id)}/lib/.`)} ${shq(lib)}/`).join(' && ')}`);
    }
    plan.commands.push(`cd ${shq(dir)} && make install && ${shq(L.nginxBinary)} -V && echo ${shq(buildId(pc))} > ${shq(installedMarker(L.nginxHome))}`);
    return plan;
  },
  async check(ctx) {
    const L = layout(ctx.runbook);
    return probe(ctx, `[ -x ${shq(L.nginxBinary)} ] && ${shq(L.nginxBinary)} -v >/dev/null 2>&1 && [ "$(cat ${shq(installedMarker(L.nginxHome))} 2>/dev/null)" = ${shq(buildId(ctx))} ]`);
  },
};
