import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import * as p from '@clack/prompts';
import type { Command } from 'commander';
import { CancelledError, InvalidInputError, RunbookInvalidError } from '../errors.js';
import { runbookToYaml, secretsPathFor, writeFileAtomic, writeSecretsFile } from '../runbook/io.js';
import { validateRunbook } from '../runbook/validate.js';
import {
  answersFromNodeSpecs,
  generateTicketSecret,
  generateVrrpPassword,
  runbookFromAnswers,
  TICKET_SECRET_ENV,
  VRRP_PASSWORD_ENV,
} from '../wizard/build.js';
import { acmeDirectoryLabel } from '../runbook/tls-settings.js';
import { questions, splitList, type Answers } from '../wizard/questions.js';
import { SshTransport } from '../engine/transport.js';
import { parseIpAddrShow, type InterfaceAddress } from '../net.js';
import { confirmSummary, questionsFor, resolveAnswers, warnProblem } from '../wizard/run.js';
import type { CliContext } from './context.js';

const camel = (flag: string) =>
  flag
    .replace(/^--(no-)?/, '')
    .split(' ')[0]
    .replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

export function registerInit(program: Command, ctx: CliContext): Command {
  const cmd = program.command('init').description('guided wizard: ask for the cluster and write runbooks/<name>.yaml');
  for (const q of questions) cmd.option(q.flag, q.help);
  cmd.option(
    '--node <host:role:priority>',
    'a node, repeatable (instead of --hosts/--master/--priorities)',
    (v: string, prev: string[] = []) => [...prev, v],
  );
  cmd.option('--out <path>', 'where to write the runbook (default runbooks/<name>.yaml; - for stdout)');
  cmd.option('-y, --yes', 'take the defaults for every question not given as a flag');
  cmd.option('--force', 'overwrite an existing runbook file');
  cmd.option(
    '--accept-new-host-keys',
    "--lookup-interface: trust and record the first node's host key if not seen before",
  );
  cmd.action(async (opts: Record<string, unknown>) => {
    ctx.result = await runInit(opts, ctx);
  });
  return cmd;
}

/** Commander option values -> wizard answers (only what was actually given on the command line). */
export function answersFromOptions(
  opts: Record<string, unknown>,
  cmd?: { getOptionValueSource(k: string): string | undefined },
): Answers {
  const given: Answers = {};
  for (const q of questions) {
    const key = camel(q.flag);
    const v = opts[key];
    if (v === undefined) continue;
    // Negated flags (--no-preempt) always have a value; only count them when typed.
    if (cmd && cmd.getOptionValueSource(key) !== 'cli') continue;
    given[q.id] = typeof v === 'boolean' ? v : String(v);
  }
  return given;
}

export async function runInit(opts: Record<string, unknown>, ctx: CliContext): Promise<number> {
  const given = answersFromOptions(opts, ctx.currentCommand);
  const nodeSpecs = (opts.node as string[] | undefined) ?? [];
  if (nodeSpecs.length > 0) {
    const { answers, errors } = answersFromNodeSpecs(nodeSpecs);
    if (errors.length) throw new InvalidInputError('invalid --node', errors);
    Object.assign(given, answers);
  }
  given.detectedIdentity = detectIdentityFile();
  given.detectedUser = sshConfigDefaults().user;
  const toStdout = opts.out === '-';
  // With --out - stdout carries only the runbook: the questions go to stderr.
  const wizard = {
    yes: opts.yes === true,
    interactive: ctx.interactive,
    input: ctx.input,
    output: ctx.output ?? (toStdout ? process.stderr : undefined),
    warn: (l: string) => ctx.printError(l),
  };
  const outFor = (name: string) =>
    resolve(ctx.cwd, (opts.out as string | undefined) ?? join('runbooks', `${name}.yaml`));
  // At a terminal an existing runbook is caught right after the name question, not at the end.
  const existing =
    !toStdout && opts.force !== true && ctx.interactive
      ? (name: string) => (existsSync(outFor(name)) ? outFor(name) : undefined)
      : undefined;
  const lookupInterfaces = (a: Answers) =>
    lookUpFirstNodeInterfaces(a, outFor(String(a.name)), ctx, opts.acceptNewHostKeys === true);
  let answers = await resolveAnswers(given, { ...wizard, existing, lookupInterfaces });
  delete answers.detectedIdentity;
  delete answers.detectedUser;
  const overwrite = answers.overwrite === true;
  let doc = runbookFromAnswers(answers);
  let result = validateRunbook(doc);
  // A problem only the whole runbook shows: at a terminal, back to the question that decides it
  // (the other answers are kept), never an exit that throws them away.
  for (let round = 0; !result.ok && ctx.interactive && round < 5; round++) {
    const redo = withDependents(questionsFor(result.problems.map((x) => x.path)));
    if (redo.length === 0) break;
    for (const x of result.problems) warnProblem(`${x.path}: ${x.message}`, wizard.output);
    const keep = Object.fromEntries(Object.entries(answers).filter(([k]) => !redo.includes(k)));
    answers = await resolveAnswers(
      {},
      {
        ...wizard,
        yes: false,
        ask: redo,
        kept: keep,
        existing: redo.includes('name') ? existing : undefined,
        lookupInterfaces,
      },
    );
    doc = runbookFromAnswers(answers);
    result = validateRunbook(doc);
  }
  if (!result.ok) throw new RunbookInvalidError('the answers', result.problems);

  if (toStdout) {
    ctx.print(runbookToYaml(doc).trimEnd());
    for (const s of generatedSecrets(doc).filter((g) => !process.env[g.name]))
      ctx.printError(
        `${s.what}: not generated (no file ` +
          `written); export ${s.name}=... or put it into runbooks/${doc.name}.secrets (mode 0600) before apply`,
      );
    return 0;
  }
  const out = resolve(ctx.cwd, (opts.out as string | undefined) ?? join('runbooks', `${doc.name}.yaml`));
  if (existsSync(out) && opts.force !== true && !overwrite && answers.overwrite !== true) {
    throw new InvalidInputError(`${out} already exists`, ['pass --force to overwrite it, or --out to write elsewhere']);
  }
  // At a terminal without --yes: what will be written, confirmed before writing.
  if (ctx.interactive && opts.yes !== true) {
    const ok = await confirmSummary(summaryLines(doc), relative(ctx.cwd, out) || out, wizard);
    if (!ok) throw new CancelledError('not written; run the wizard again (flags keep answers: ha-setup init --help)');
  }
  const key = doc.ssh?.identityFile;
  if (key && !existsSync(key.replace(/^~(?=\/)/, homedir()))) {
    ctx.printError(
      `warning: the SSH key ${key} does not exist on this machine; ` +
        `apply connects with it (leave it empty to use the SSH agent)`,
    );
  }
  writeFileAtomic(out, runbookToYaml(doc));
  writeGeneratedSecrets(out, doc, ctx);
  const shown = relative(ctx.cwd, out).startsWith('..') ? out : relative(ctx.cwd, out);
  const cmd = invocation();
  ctx.print(`wrote ${shown}`);
  const cert = doc.site?.tls?.certificate;
  if (cert)
    ctx.print(
      `certificate: put the chain at ${join(dirname(shown), cert.chain)} and the key at ` +
        `${join(dirname(shown), cert.key)} (mode 0600); validate checks them`,
    );
  ctx.print('next:');
  ctx.print(`  ${cmd} validate ${shown}    # no host contact`);
  ctx.print(`  ${cmd} plan ${shown}        # read-only: what will run on each node`);
  ctx.print(`  ${cmd} apply ${shown}       # install, then the measured failover test`);
  return 0;
}

/** Secrets the wizard's runbook needs that ha-setup can make up itself (when not in the environment). */
function generatedSecrets(doc: ReturnType<typeof runbookFromAnswers>) {
  const out: Array<{ name: string; what: string; make: () => string }> = [];
  if (doc.vrrp.auth) out.push({ name: VRRP_PASSWORD_ENV, what: 'VRRP password', make: generateVrrpPassword });
  if (doc.site?.tls?.sessionTickets)
    out.push({ name: TICKET_SECRET_ENV, what: 'TLS session ticket secret', make: generateTicketSecret });
  return out;
}

/** After the runbook is written (never before the summary is confirmed): the generated secrets beside it. */
function writeGeneratedSecrets(out: string, doc: ReturnType<typeof runbookFromAnswers>, ctx: CliContext): void {
  const secrets = secretsPathFor(out, doc.name);
  const made = Object.fromEntries(
    generatedSecrets(doc)
      .filter((g) => !process.env[g.name])
      .map((g) => [g.name, g.make()]),
  );
  if (Object.keys(made).length > 0) writeSecretsFile(secrets, made);
  for (const g of generatedSecrets(doc))
    ctx.print(
      `${g.what}: ${
        process.env[g.name]
          ? `taken from $${g.name} at apply time`
          : `generated into ${secrets} (mode 0600, git-ignored)`
      }`,
    );
}

export function summaryLines(doc: ReturnType<typeof runbookFromAnswers>): string[] {
  const v = doc.vrrp;
  const tls = doc.site?.tls;
  const upstream = (u: {
    name: string;
    servers: string[];
    discovery?: { consul: { address: string; service: string } };
  }) =>
    u.discovery
      ? `${u.name}: Consul ${u.discovery.consul.address} service ${u.discovery.consul.service} ` +
        `(seed ${u.servers.join(', ')})`
      : `${u.name}: ${u.servers.join(', ')}`;
  const gray = doc.site?.gray;
  return [
    ...doc.nodes.map((n) => `node      ${n.host} ${n.role}, priority ${n.priority}`),
    `VIP       ${v.vip} on ${v.interface}, VRID ${v.virtualRouterId}, VRRPv${v.version}` +
      `${v.unicast ? ' unicast' : ''}${v.preempt === false ? ', nopreempt' : ''}`,
    `build     ${doc.build?.flavor} ${doc.build?.version} in ${doc.build?.prefix}` +
      (doc.build?.modules?.length ? ` with ${doc.build.modules.join(', ')}` : ''),
    `keepalived ${doc.keepalived?.version} in ${doc.keepalived?.prefix}`,
    `ssh       user ${doc.ssh?.user}, port ${doc.ssh?.port}` +
      (doc.ssh?.identityFile ? `, key ${doc.ssh.identityFile}` : ', SSH agent'),
    ...(tls
      ? [
          `https     port ${tls.listen}${doc.site?.serverName ? ` for ${doc.site.serverName}` : ''}, ` +
            (tls.certificate
              ? `certificate ${tls.certificate.chain} (key ${tls.certificate.key})`
              : `ACME: ${acmeDirectoryLabel(tls.acme!.directory)}`) +
            (tls.sessionTickets ? ', session tickets shared by the nodes' : ''),
        ]
      : []),
    `site      port ${doc.site?.listen}` +
      (doc.site?.upstreams?.length ? `, upstreams ${doc.site.upstreams.map(upstream).join('; ')}` : '') +
      (gray ? `; gray release ${gray.stable} -> ${gray.canary} by rules in Redis ${gray.redis.address}` : ''),
  ];
}

/** How the user started ha-setup, so the next steps can be pasted as they are. */
export function invocation(env = process.env, argv1 = process.argv[1] ?? ''): string {
  if (env.npm_command === 'exec') return 'npx ha-setup';
  // A checkout (bin/ha-setup.js outside node_modules): `node bin/ha-setup.js`; installed: on PATH.
  if (/bin[\\/]ha-setup(\.js)?$/.test(argv1) && !argv1.includes('node_modules'))
    return `node ${relative(process.cwd(), argv1) || argv1}`;
  return 'ha-setup';
}

/** Questions whose answers (or defaults) follow from an earlier one are asked again with it. */
const DEPENDENTS: Record<string, string[]> = {
  hosts: ['master', 'priorities', 'vip'],
  master: ['priorities'],
  flavor: ['buildVersion', 'modules', 'prefix'],
  buildVersion: ['modules'],
  vrrpVersion: ['advertInt', 'rtPriority'],
};
function withDependents(ids: string[]): string[] {
  const out = new Set(ids);
  for (const id of ids) for (const d of DEPENDENTS[id] ?? []) out.add(d);
  return [...out];
}

/** `User` and `IdentityFile` that ~/.ssh/config applies to every host (before any Host line, or under `Host *`). */
/**
 * --lookup-interface: the first node's IPv4 addresses over SSH with the answers given so far (user,
 * port, key; ~/.ssh/config as apply reads it). Host keys are checked as apply checks them; a new
 * one is recorded beside the runbook only when accepted.
 */
async function lookUpFirstNodeInterfaces(
  a: Answers,
  runbookFile: string,
  ctx: CliContext,
  acceptNew: boolean,
): Promise<InterfaceAddress[]> {
  const host = splitList(String(a.hosts ?? ''))[0];
  const own = join(dirname(runbookFile), `${String(a.name)}.known_hosts`);
  const t = await SshTransport.connect({
    host,
    port: Number(a.sshPort ?? 22),
    user: String(a.sshUser ?? 'root'),
    identityFile: typeof a.identityFile === 'string' && a.identityFile ? a.identityFile : undefined,
    knownHostsFiles: [join(homedir(), '.ssh', 'known_hosts'), own],
    acceptNewInto: own,
    readyTimeoutMs: 10_000,
    log: () => undefined,
    onUnknownKey: async (h, fp, type) => {
      if (acceptNew) return true;
      if (!ctx.interactive) return false;
      const ok = await p.confirm({
        input: ctx.input,
        output: ctx.output,
        message: `${h} presents an unknown ${type} host key ${fp}. Trust it and record it in ${own}?`,
        initialValue: false,
      });
      return ok === true;
    },
  });
  try {
    const r = await t.exec('ip -4 -o addr show', { quiet: true });
    if (r.code !== 0) throw new Error(`ip -4 -o addr show failed: ${r.stderr.trim()}`);
    return parseIpAddrShow(r.stdout);
  } finally {
    await t.close();
  }
}

export function sshConfigDefaults(home = homedir()): { user?: string; identityFile?: string } {
  const cfg = join(home, '.ssh', 'config');
  const out: { user?: string; identityFile?: string } = {};
  if (!existsSync(cfg)) return out;
  let applies = true;
  for (const line of readFileSync(cfg, 'utf8').split('\n')) {
    const m = /^\s*(\w+)(?:\s*=\s*|\s+)(.+?)\s*$/.exec(line);
    if (!m || line.trim().startsWith('#')) continue;
    const key = m[1].toLowerCase();
    // ssh takes the first value it meets for each option.
    if (key === 'host') applies = m[2].split(/\s+/).includes('*');
    else if (key === 'match') applies = false;
    else if (applies && key === 'user') out.user ??= m[2];
    else if (applies && key === 'identityfile') out.identityFile ??= m[2];
  }
  return out;
}

/** Default key: IdentityFile for every host in ~/.ssh/config, else the agent, else a standard key file. */
export function detectIdentityFile(home = homedir()): string {
  const fromConfig = sshConfigDefaults(home).identityFile;
  if (fromConfig) return fromConfig;
  if (process.env.SSH_AUTH_SOCK) return '';
  for (const f of ['id_ed25519', 'id_ecdsa', 'id_rsa']) if (existsSync(join(home, '.ssh', f))) return `~/.ssh/${f}`;
  return '';
}
