import { runCommand, substituteSecrets } from '../engine/executor.js';
import { osProfile } from '../engine/os-profile.js';
import { CommandFailedError } from '../engine/transport.js';
import { emptyPlan, type PlanContext, type PlannedFile, type Step, type StepPlan } from '../engine/types.js';
import { InvalidInputError } from '../errors.js';
import { render } from '../render.js';
import { remotePathInside } from '../runbook/site-files.js';
import { shq } from '../shell.js';
import { allOf, filesMatchCheck, layout, luaPackageCpath, luaPackagePath } from './common.js';
import { GATEWAY_DIR, gatewayEnabled, gatewayFiles, luaSslTrustedCertificate } from './gateway.js';
import { moduleView } from './module-config.js';
import { certificateFiles, tlsView } from './tls.js';

export function nginxConfigFiles(pc: PlanContext) {
  const rb = pc.runbook;
  const L = layout(rb);
  const nginxConf = render('nginx.conf.njk', {
    user: osProfile(pc.facts).webUser,
    rlimitNofile: 65535,
    workerConnections: 10240,
    pidFile: L.pidFile,
    logDir: L.logDir,
    luaPackagePath: luaPackagePath(pc) ?? '',
    luaPackageCpath: luaPackageCpath(pc) ?? '',
    gateway: gatewayEnabled(rb),
    gray: rb.site.gray !== undefined,
    luaSslTrustedCertificate: luaSslTrustedCertificate(pc) ?? '',
  });
  const modules = moduleView(rb);
  const site = render('site.conf.njk', {
    upstreams: rb.site.upstreams,
    listen: rb.site.listen,
    serverName: rb.site.serverName,
    nodeName: pc.node.name,
    lua: rb.build.modules.includes('lua'),
    serverIncludes: rb.site.include.server.length > 0,
    gateway: gatewayEnabled(rb),
    gray: rb.site.gray,
    m: modules,
    tls: tlsView(pc),
  });
  return [
    { path: L.confFile, content: nginxConf, mode: 0o644 },
    { path: L.siteConf, content: site, mode: modules.secret ? 0o600 : 0o644 },
    ...includeFiles(pc),
    ...gatewayFiles(pc),
    ...certificateFiles(pc),
  ];
}

/** The operator's own files (site.include): http level in conf.d/, server level in ha-site.d/. */
export function includeFiles(pc: PlanContext): PlannedFile[] {
  const rb = pc.runbook;
  const L = layout(rb);
  const content = (rel: string) => {
    const c = pc.siteFiles?.conf[rel];
    if (c === undefined) throw new InvalidInputError(`site.include: ${rel} was not read on the control machine`);
    return c;
  };
  const base = (rel: string) => rel.split('/').pop()!;
  // Lua modules live under the conf directory too: they are staged and tested with it.
  const lua = Object.entries(pc.siteFiles?.lua ?? {}).map(([inside, c]) => ({
    path: remotePathInside(`${L.confDir}/${LUA_DIR}`, inside, 'site.include.lua'),
    content: c,
    mode: 0o644,
  }));
  if (rb.site.include.lua.length > 0 && lua.length === 0)
    throw new InvalidInputError('site.include.lua: the Lua files were not read on the control machine');
  return [
    ...rb.site.include.http.map((rel, i) => ({
      path: remotePathInside(`${L.confDir}/conf.d`, `${HTTP_PREFIX}${base(rel)}`, `site.include.http[${i}]`),
      content: content(rel),
      mode: 0o644,
    })),
    ...rb.site.include.server.map((rel, i) => ({
      path: remotePathInside(`${L.confDir}/${SERVER_DIR}`, base(rel), `site.include.server[${i}]`),
      content: content(rel),
      mode: 0o644,
    })),
    ...lua,
  ];
}

const HTTP_PREFIX = 'site-http-';
const SERVER_DIR = 'ha-site.d';
/** site.tls.certificate's chain and key (layout's tlsDir). */
const TLS_DIR = 'ha-tls';
/** site.include.lua, on lua_package_path (see luaPackagePath). */
export const LUA_DIR = 'ha-lua';

/**
 * Every include file on the host, relative to the conf directory (one per line), for the stale checks.
 * Remote scripts run under `set -euo pipefail`: finding nothing must not fail the listing. Only
 * .conf and .lua files count: the timestamped .bak copies writeFile keeps are left alone.
 */
const INCLUDED_NOW =
  `{ ls -1d conf.d/${HTTP_PREFIX}*.conf ${SERVER_DIR}/*.conf 2>/dev/null || ` +
  `true; find ${LUA_DIR} ${GATEWAY_DIR} -type f -name '*.lua' 2>/dev/null || ` +
  `true; find ${TLS_DIR} -type f -name '*.pem' 2>/dev/null || true; }`;

/** Exits 1 when the conf directory (the current one) holds an include file not in `keep` (paths relative to it). */
export function staleIncludesProbe(confDir: string, keep: string[]): string {
  return (
    `cd ${shq(confDir)} && ${INCLUDED_NOW} | { while IFS= read -r f; ` +
    `do case ${shq(` ${keep.join(' ')} `)} in *" $f "*) ;; *) exit 1;; esac; done; }`
  );
}

/** Removes include files a previous runbook had and this one does not (inside `confDir`). */
export function staleIncludesScript(confDir: string, files: PlannedFile[], liveConfDir: string): string {
  const keep = files.map((f) => f.path.replace(liveConfDir, confDir));
  return (
    `cd ${shq(confDir)} && mkdir -p ${SERVER_DIR} && ${INCLUDED_NOW} | while IFS= read -r f; ` +
    `do case ${shq(` ${keep.map((k) => k.slice(confDir.length + 1)).join(' ')} `)} in *" $f "*) ;; *) echo "removing ` +
    `$f (no longer in site.include)"; rm -f -- "$f";; esac; done`
  );
}

/**
 * Shell: the binary install left waiting goes (as .failed) and the previous one comes back, by the
 * upgrade script's own restore (one implementation); install re-runs next time.
 */
function revertPendingBinary(L: ReturnType<typeof layout>): string {
  return `${shq(L.upgradeScript)} --restore-binary && rm -f -- ${shq(L.upgradePending)} ${shq(L.installedMarker)}`;
}

/**
 * After the files are in place: reload, or, when install left a new binary waiting for this
 * configuration, the hot upgrade to it (the new master reads the new files). If that upgrade fails
 * the previous configuration goes back beside the previous binary and install runs again next time.
 */
export function applyConfigCommand(pc: PlanContext): string {
  const L = layout(pc.runbook);
  const restore =
    `rm -rf -- ${shq(L.confDir)} && mv -- ${shq(L.confBeforeUpgrade)} ${shq(L.confDir)} && rm -f ` +
    `-- ${shq(L.upgradePending)} ${shq(L.installedMarker)}`;
  // The hot upgrade moves a running master of this prefix; an nginx of another flavor or prefix (a
  // flavor switch) is replaced when nginx-service restarts the rewritten unit, node by node.
  return (
    `if [ -e ${shq(L.upgradePending)} ]; then
  if systemctl is-active --quiet nginx && [ ` +
    `-s ${shq(L.pidFile)} ]; then ${shq(L.upgradeScript)} || { ${restore}; echo 'the previous configuration is back ` +
    `beside the previous binary' >&2; exit 1; }; fi
  rm -f -- ${shq(L.upgradePending)}; rm -rf -- ${shq(L.confOld)}; mv -- ${shq(L.confBeforeUpgrade)} ${shq(L.confOld)}
elif systemctl is-active --quiet nginx; then
  ${reloadAndConfirm(L)}
fi`
  );
}

/**
 * Shell: reload, then wait for the master's workers to be replaced. A reload (HUP) is asynchronous,
 * and \`nginx -t\` does not run init_by_lua: a master that cannot load the new configuration keeps
 * the old one and its old workers, and only its error log says so.
 */
function reloadAndConfirm(L: ReturnType<typeof layout>): string {
  return (
    `master=$(cat -- ${shq(L.pidFile)}); before=" $(pgrep -P "$master" | tr '\n' ' ')"
  systemctl reload nginx
  took=; for i in $(seq 1 100); do for w in $(pgrep -P "$master" || true); do case "$before" in *" $w "*) ;; *) ` +
    `took=1;; esac; done; [ -n "$took" ] && break; sleep 0.1; done
  if [ -z "$took" ]; then echo "nginx did not take the new configuration (master $master kept its workers for 10 ` +
    `s: it still serves the previous one); the end of its error log:" >&2; tail -n 5 ` +
    `-- ${shq(`${L.logDir}/error.log`)} >&2; exit 1; fi`
  );
}

export const nginxConfigStep: Step = {
  id: 'nginx-config',
  title: 'Write nginx.conf and the site (nginx -t first); reload or hot-upgrade',
  appliesTo: 'all',
  // A new binary is upgraded to here, with its configuration: an install that re-runs re-runs this.
  dependsOn: ['install'],
  plan(pc): StepPlan {
    const plan = emptyPlan();
    plan.files.push(...nginxConfigFiles(pc));
    plan.commands.push(applyConfigCommand(pc));
    return plan;
  },
  check(ctx) {
    const L = layout(ctx.runbook);
    const keep = ctx.plan.files.map((f) => f.path);
    return allOf(
      // A new binary waiting for this configuration (install deferred its hot upgrade): not done.
      `[ ! -e ${shq(L.upgradePending)} ]`,
      filesMatchCheck(ctx),
      // Include files removed from the runbook must be gone from the host too.
      staleIncludesProbe(
        L.confDir,
        keep.map((k) => k.slice(L.confDir.length + 1)),
      ),
    );
  },
  async run(ctx) {
    const L = layout(ctx.runbook);
    // Test the new configuration in a copy of the conf directory; the live files are replaced only
    // when `nginx -t` accepts it, so a bad config never reaches the running nginx. The copy sits in a
    // prefix of its own, so `$prefix` paths (lua_package_path) resolve to the staged Lua files too.
    const stage = `${L.nginxHome}/.ha-setup-conf-test`;
    const stageConf = `${stage}/conf`;
    await runCommand(
      ctx,
      `rm -rf ${shq(stage)} && mkdir -p ${shq(`${stage}/logs`)} && cp -a ${shq(L.confDir)} ${shq(stageConf)} && ` +
        `mkdir -p ${shq(`${stageConf}/conf.d`)} ${shq(`${L.confDir}/conf.d`)}`,
    );
    for (const f of ctx.plan.files) {
      const staged = f.path.replace(L.confDir, stageConf);
      await ctx.t.writeFile(staged, substituteSecrets(f.content, ctx.secrets), { mode: f.mode });
    }
    await runCommand(ctx, staleIncludesScript(stageConf, ctx.plan.files, L.confDir));
    const test = `${shq(L.nginxBinary)} -t -p ${shq(`${stage}/`)} -c ${shq(`${stageConf}/nginx.conf`)}`;
    const r = await ctx.t.exec(`${test}; rc=$?; rm -rf ${shq(stage)}; exit $rc`, { onLine: ctx.progress });
    if (r.code !== 0) {
      // A new binary waiting for this configuration refuses it too: it goes, the running one comes
      // back on disk (kept as .failed, like the upgrade script does), and install runs again next time.
      const back = await ctx.t.exec(
        `if [ -e ${shq(L.upgradePending)} ]; then ${revertPendingBinary(L)}; echo "master ` +
          `$(cat ${shq(L.pidFile)} 2>/dev/null)"; fi`,
        { quiet: true },
      );
      const master = /master (\d+)/.exec(back.stdout)?.[1];
      const why = master
        ? `the new binary refuses the new ${L.confFile}; master ${master} keeps serving with the old binary (back in ` +
          `${L.nginxBinary}, the new one kept as ${L.nginxBinary}.failed)`
        : 'the live configuration was left untouched';
      throw new CommandFailedError(test, r.code, `${r.stdout}\n${r.stderr}\n(${why})`);
    }
    // A deferred hot upgrade can still fail: keep the configuration the running master has, to put back.
    await runCommand(
      ctx,
      `if [ -e ${shq(L.upgradePending)} ]; then rm -rf -- ${shq(L.confBeforeUpgrade)} && cp -a ` +
        `-- ${shq(L.confDir)} ${shq(L.confBeforeUpgrade)}; fi`,
    );
    await runCommand(ctx, staleIncludesScript(L.confDir, ctx.plan.files, L.confDir));
    for (const f of ctx.plan.files)
      await ctx.t.writeFile(f.path, substituteSecrets(f.content, ctx.secrets), { mode: f.mode });
    for (const cmd of ctx.plan.commands) await runCommand(ctx, cmd);
  },
};
