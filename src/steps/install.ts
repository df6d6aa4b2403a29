import { fileHoldsLine } from '../engine/checks.js';
import { emptyPlan, type PlanContext, type PlannedFile, type Step, type StepPlan } from '../engine/types.js';
import { render } from '../render.js';
import { shq } from '../shell.js';
import { buildId } from './build.js';
import { layout, LUA_RESTY_SOURCES, needsLuaRestySources } from './common.js';
import { configureSpec } from './configure.js';

/** The upgrade script, rendered from its template; install ships it, rollback runs it. */
export function upgradeScriptFile(pc: PlanContext): PlannedFile {
  const L = layout(pc.runbook);
  return {
    path: L.upgradeScript,
    mode: 0o755,
    owner: 'root',
    content: render('nginx-upgrade.sh.njk', {
      binary: L.nginxBinary,
      confFile: L.confFile,
      pidFile: L.pidFile,
      healthUrl: `http://127.0.0.1:${pc.runbook.site.listen}/ha-health`,
    }),
  };
}

export const installStep: Step = {
  id: 'install',
  title: 'Install into the prefix (make install); nginx-config hot-upgrades to it',
  appliesTo: 'all',
  dependsOn: ['build'],
  // A hot upgrade loses no connection, but a new binary is the riskiest change there is: it rolls
  // node by node so a bad build stops at the first node.
  disruptive: true,
  plan(pc): StepPlan {
    const plan = emptyPlan();
    const L = layout(pc.runbook);
    const { dir } = configureSpec(pc);
    const id = buildId(pc);
    const bin = L.nginxBinary;
    const keep = `${bin}.old.ha-keep`;
    plan.files.push(upgradeScriptFile(pc));
    plan.commands.push(
      `if pgrep -f ${shq(`[n]ginx: master process ${bin}`)} >/dev/null && ! systemctl is-active --quiet nginx ` +
        `2>/dev/null; then echo ${shq(`nginx from ${bin} is running outside systemd; stop it first`)} >&2; exit 1; fi`,
    );
    if (needsLuaRestySources(pc.runbook, pc.facts.family)) {
      // resty.core and resty.lrucache as plain Lua files on lua_package_path (Debian: packages step).
      const lib = `${L.luaDir}/lib`;
      plan.commands.push(
        [
          `mkdir -p ${shq(lib)}`,
          ...LUA_RESTY_SOURCES.map((src) => `cp -a ${shq(`${L.srcDir(src)}/lib/.`)} ${shq(lib)}/`),
        ].join(' && '),
      );
    }
    // Keep the binary being replaced as sbin/nginx.old (and its build id) for the hot upgrade's
    // rollback and for \`ha-setup rollback\`. make install would also move it there, but on a re-run
    // after an interrupted install it would move the new build over the only copy of the old one.
    plan.commands.push(
      `new=; for f in ${shq(`${dir}/objs/nginx`)} ${shq(dir)}/build/nginx-*/objs/nginx; do [ -f ` +
        `"$f" ] && new=$f; done
rm -f -- ${shq(keep)}
if [ -x ${shq(bin)} ] && ! cmp -s -- ${shq(bin)} "$new"; then cp -p -- ${shq(bin)} ${shq(keep)} && { cat ` +
        `-- ${shq(L.installedMarker)} 2>/dev/null || echo unknown; } > ${shq(`${L.installedMarker}.old`)}
elif [ -f ${shq(`${bin}.old`)} ]; then cp -p -- ${shq(`${bin}.old`)} ${shq(keep)}; fi
cd ${shq(dir)} && make install || { echo 'make install failed' >&2; exit 1; }
if [ -f ${shq(keep)} ]; then mv -f -- ${shq(keep)} ${shq(`${bin}.old`)}; fi`,
    );
    plan.commands.push(`${shq(bin)} -V`);
    // A running nginx moves to the new binary without dropping a connection (hot upgrade), but only
    // with the configuration written for it: a module and its directives come and go together
    // (lua needs lua_package_path to start at all; a removed module's directives stop the old
    // config from loading). So nginx-config, which writes and tests that configuration with the new
    // binary, performs the upgrade; this marker tells it to. A stopped nginx is started by nginx-service.
    plan.commands.push(
      `if systemctl is-active --quiet nginx; then : > ${shq(L.upgradePending)}; echo 'the running nginx moves to the ` +
        `new binary once nginx-config has written the configuration for it'; else echo 'nginx is not running: ` +
        `nothing to upgrade in place'; fi`,
    );
    plan.commands.push(`echo ${shq(id)} > ${shq(L.installedMarker)}`);
    return plan;
  },
  check(ctx) {
    const L = layout(ctx.runbook);
    return (
      `[ -x ${shq(L.nginxBinary)} ] && ${shq(L.nginxBinary)} -v >/dev/null 2>&1 ` +
      `&& ${fileHoldsLine(L.installedMarker, buildId(ctx))}`
    );
  },
};
