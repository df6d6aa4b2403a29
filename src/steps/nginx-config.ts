import { runCommand, substituteSecrets } from '../engine/executor.js';
import { CommandFailedError } from '../engine/transport.js';
import { emptyPlan, type PlanContext, type Step, type StepPlan } from '../engine/types.js';
import { render } from '../render.js';
import { shq } from '../shell.js';
import { filesMatch, layout, luaPackagePath } from './common.js';

export function nginxConfigFiles(pc: PlanContext) {
  const rb = pc.runbook;
  const L = layout(rb);
  const nginxConf = render('nginx.conf.njk', {
    user: pc.facts.family === 'el' ? 'nobody' : 'www-data',
    rlimitNofile: 65535,
    workerConnections: 10240,
    pidFile: L.pidFile,
    logDir: L.logDir,
    luaPackagePath: luaPackagePath(pc) ?? '',
  });
  const site = render('site.conf.njk', {
    upstreams: rb.site.upstreams,
    listen: rb.site.listen,
    serverName: rb.site.serverName,
    nodeName: pc.node.name,
    lua: rb.build.modules.includes('lua'),
  });
  return [
    { path: L.confFile, content: nginxConf, mode: 0o644 },
    { path: L.siteConf, content: site, mode: 0o644 },
  ];
}

export const nginxConfigStep: Step = {
  id: 'nginx-config',
  title: 'Write nginx.conf and the site (tested with nginx -t first)',
  appliesTo: 'all',
  dependsOn: [],
  plan(pc): StepPlan {
    const plan = emptyPlan();
    plan.files.push(...nginxConfigFiles(pc));
    plan.commands.push(`if systemctl is-active --quiet nginx; then systemctl reload nginx; fi`);
    return plan;
  },
  check: filesMatch,
  async run(ctx) {
    const L = layout(ctx.runbook);
    // Test the new configuration in a copy of the conf directory; the live files are replaced only
    // when `nginx -t` accepts it, so a bad config never reaches the running nginx.
    const stage = `${L.nginxHome}/.ha-setup-conf-test`;
    await runCommand(ctx, `rm -rf ${shq(stage)} && cp -a ${shq(L.confDir)} ${shq(stage)} && mkdir -p ${shq(`${stage}/conf.d`)} ${shq(`${L.confDir}/conf.d`)}`);
    for (const f of ctx.plan.files) {
      const staged = f.path.replace(L.confDir, stage);
      await ctx.t.writeFile(staged, substituteSecrets(f.content, ctx.secrets), { mode: f.mode });
    }
    const test = `${shq(L.nginxBinary)} -t -p ${shq(L.nginxHome)} -c ${shq(`${stage}/nginx.conf`)}`;
    const r = await ctx.t.exec(`${test}; rc=$?; rm -rf ${shq(stage)}; exit $rc`, { onLine: ctx.progress });
    if (r.code !== 0) throw new CommandFailedError(test, r.code, `${r.stdout}\n${r.stderr}\n(the live configuration was left untouched)`);
    for (const f of ctx.plan.files) await ctx.t.writeFile(f.path, substituteSecrets(f.content, ctx.secrets), { mode: f.mode });
    for (const cmd of ctx.plan.commands) await runCommand(ctx, cmd);
  },
};
