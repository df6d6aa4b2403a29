import { fileHoldsLine } from '../engine/checks.js';
import { emptyPlan, type PlanContext, type Step, type StepPlan } from '../engine/types.js';
import { shq, shqAll } from '../shell.js';
import { layout, luajitPaths, shippedModules } from './common.js';

const COMMON_ARGS = [
  '--with-http_ssl_module',
  '--with-http_v2_module',
  '--with-http_realip_module',
  '--with-http_stub_status_module',
  '--with-http_gzip_static_module',
  '--with-threads',
  '--with-file-aio',
  '--with-pcre-jit',
  '--with-stream',
  '--with-stream_ssl_module',
  '--with-stream_realip_module',
];

export interface ConfigureSpec {
  dir: string;
  env: Record<string, string>;
  args: string[];
}

/** The full ./configure invocation for the chosen flavor and modules (recorded in the journal). */
export function configureSpec(pc: PlanContext): ConfigureSpec {
  const rb = pc.runbook;
  const L = layout(rb);
  const modules = shippedModules(rb);
  const addModules = modules.flatMap((m) => m.addModules.map((src) => `--add-module=${L.srcDir(src)}`));
  const env: Record<string, string> = {};
  const args = [`--prefix=${rb.build.prefix}`, ...COMMON_ARGS];
  if (rb.build.flavor === 'nginx' && rb.build.modules.includes('lua')) {
    // Build against the system LuaJIT with an rpath, so libluajit-5.1.so.2 is always found at run time.
    const lj = luajitPaths(pc.facts);
    env.LUAJIT_LIB = lj.lib;
    env.LUAJIT_INC = lj.inc;
    args.push(`--with-ld-opt=-Wl,-rpath,${lj.lib}`);
  }
  if (rb.build.flavor === 'openresty') args.push(`-j${jobs(pc)}`);
  // configure keeps only the last --with-cc-opt, so module needs and the operator's own are merged.
  const ccOpts = [...new Set(modules.flatMap((m) => m.ccOpt ?? []))];
  const extra = [...rb.build.configureArgs];
  const userCc = extra.findIndex((a) => a.startsWith('--with-cc-opt='));
  if (userCc >= 0) ccOpts.push(extra.splice(userCc, 1)[0].slice('--with-cc-opt='.length));
  if (ccOpts.length > 0) args.push(`--with-cc-opt=${ccOpts.join(' ')}`);
  args.push(...addModules, ...extra);
  return { dir: L.srcDir(rb.build.flavor), env, args };
}

export function jobs(pc: PlanContext): number {
  return pc.runbook.build.jobs === 'auto' ? Math.max(1, pc.facts.cores) : pc.runbook.build.jobs;
}

export const argsFile = (dir: string) => `${dir}/.ha-setup-configure-args`;

export function configureCommand(spec: ConfigureSpec): string {
  const env = Object.entries(spec.env)
    .map(([k, v]) => `${k}=${shq(v)}`)
    .join(' ');
  return `cd ${shq(spec.dir)} && ${env ? `env ${env} ` : ''}./configure ${shqAll(spec.args)}`;
}

export const configureStep: Step = {
  id: 'configure',
  title: 'Configure the nginx build',
  appliesTo: 'all',
  dependsOn: ['packages', 'sources', 'patch'],
  // OpenResty's configure compiles LuaJIT.
  compiles: (pc) => pc.runbook.build.flavor === 'openresty',
  plan(pc): StepPlan {
    const plan = emptyPlan();
    const spec = configureSpec(pc);
    plan.commands.push(configureCommand(spec));
    plan.commands.push(`printf '%s\\n' ${shq(spec.args.join(' '))} > ${shq(argsFile(spec.dir))}`);
    plan.notes.push(`configure arguments: ${spec.args.join(' ')}`);
    return plan;
  },
  check(ctx) {
    const spec = configureSpec(ctx);
    return `[ -f ${shq(`${spec.dir}/Makefile`)} ] && ${fileHoldsLine(argsFile(spec.dir), spec.args.join(' '))}`;
  },
};
