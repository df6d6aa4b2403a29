import * as p from '@clack/prompts';
import type { Readable, Writable } from 'node:stream';
import { CancelledError, InvalidInputError } from '../errors.js';
import type { InterfaceAddress } from '../net.js';
import { questions, splitList, type Answers, type Question } from './questions.js';

export interface WizardOptions {
  /** Take defaults without asking. */
  yes: boolean;
  /** A TTY is attached; when false, nothing is ever prompted. */
  interactive: boolean;
  input?: Readable;
  output?: Writable;
  /** Questions to prompt even when they are tuning questions and "customize" is no (going back to them). */
  ask?: string[];
  /**
   * Answers from an earlier round (going back to a question): taken as they are, never checked as
   * flags are (a kept --interface must not make a kept --lookup-interface "a flag the answers rule out").
   */
  kept?: Answers;
  /** The runbook file a name would overwrite, if one exists (asked right after the name question). */
  existing?: (name: string) => string | undefined;
  /** Reads the first node's IPv4 addresses (`--lookup-interface`); the CLI does it over SSH. */
  lookupInterfaces?: (a: Answers) => Promise<InterfaceAddress[]>;
  /** Without a terminal, warnings go here (the CLI: stderr) instead of the prompt stream. */
  warn?: (line: string) => void;
}

/** Which question decides a runbook field: a problem found by the whole-runbook check goes back there. */
const QUESTION_FOR_PATH: Array<[RegExp, string]> = [
  [/^name/, 'name'],
  [/^nodes\[\d+\]\.priority/, 'priorities'],
  [/^nodes\[\d+\]\.role/, 'master'],
  [/^nodes/, 'hosts'],
  [/^ssh\.user/, 'sshUser'],
  [/^ssh\.port/, 'sshPort'],
  [/^ssh\.identityFile/, 'identityFile'],
  [/^vrrp\.vip/, 'vip'],
  [/^vrrp\.interface/, 'interface'],
  [/^vrrp\.virtualRouterId/, 'vrid'],
  [/^vrrp\.version|^vrrp\.auth/, 'vrrpVersion'],
  [/^vrrp\.advertInt/, 'advertInt'],
  [/^keepalived\.rtPriority/, 'rtPriority'],
  [/^vrrp\.unicast/, 'unicast'],
  [/^vrrp\.preempt/, 'preempt'],
  [/^vrrp\.witness/, 'witness'],
  [/^build\.flavor/, 'flavor'],
  [/^build\.version/, 'buildVersion'],
  [/^build\.modules/, 'modules'],
  [/^build\.prefix/, 'prefix'],
  [/^keepalived\.version/, 'keepalivedVersion'],
  [/^keepalived\.prefix/, 'keepalivedPrefix'],
  [/^keepalived\.check\.interval/, 'checkInterval'],
  [/^keepalived\.check\.fall/, 'checkFall'],
  [/^keepalived\.check\.rise/, 'checkRise'],
  [/^keepalived\.check\.weight/, 'checkWeight'],
  [/^site\.listen/, 'listen'],
  [/^site\.upstream/, 'upstream'],
  [/^verify\.maxDowntimeMs/, 'maxDowntimeMs'],
  [/^verify/, 'failover'],
];

export function questionsFor(paths: string[]): string[] {
  const ids = paths
    .map((path) => QUESTION_FOR_PATH.find(([re]) => re.test(path))?.[1])
    .filter((x): x is string => Boolean(x));
  return [...new Set(ids)];
}

export function warnProblem(message: string, output?: Writable): void {
  p.log.warn(message, { output });
}

const flagName = (q: Question) => q.flag.split(' ')[0];

/**
 * Resolve every question in order: flag value, else default (with --yes or when the user just
 * presses enter), else the prompt. A non-interactive run never prompts: it fails naming the
 * flags that are missing.
 */
export async function resolveAnswers(given: Answers, opts: WizardOptions): Promise<Answers> {
  const kept = opts.kept ?? {};
  const questionIds = new Set(questions.map((q) => q.id));
  // Kept answers are in place from the start, so a question's `when` sees the whole earlier round
  // (--interface kept means the lookup question stays skipped, wherever it sits in the order).
  const a: Answers = {
    ...Object.fromEntries(Object.entries(kept).filter(([k]) => !questionIds.has(k) || !opts.ask?.includes(k))),
    ...given,
  };
  const toAsk = questions.filter((q) => given[q.id] === undefined && kept[q.id] === undefined).length;
  if (opts.interactive && !opts.yes && toAsk > 0) {
    p.intro(
      `ha-setup: up to ${toAsk} questions, then a summary to confirm; Enter takes the default shown, Ctrl-C ` +
        `cancels and writes nothing`,
      { output: opts.output },
    );
  }
  const errors: string[] = [];
  const missing: string[] = [];
  const defaulted: string[] = [];

  for (const q of questions) {
    if (kept[q.id] !== undefined && given[q.id] === undefined && !opts.ask?.includes(q.id)) {
      if (q.when && !q.when(a)) delete a[q.id];
      continue;
    }
    if (q.when && !q.when(a)) {
      // A flag for a question the other answers rule out would be dropped silently: say so instead.
      if (given[q.id] !== undefined && q.notApplicable) errors.push(`${flagName(q)}: ${q.notApplicable}`);
      continue;
    }
    await resolveOne(q);
    if (q.id === 'lookupInterface' && a.lookupInterface === true && a.detectedInterfaces === undefined)
      await lookUpInterfaces(a, opts);
    // However the name was given (flag, default, prompt): at a terminal, an existing file is asked about now.
    if (q.id === 'name' && opts.existing && opts.interactive && !errors.length) await confirmNewFile(q, a, opts);
  }

  async function resolveOne(q: Question): Promise<void> {
    const fromFlag = given[q.id];
    if (fromFlag !== undefined) {
      const asText = Array.isArray(fromFlag) ? fromFlag.join(',') : String(fromFlag);
      const problem = q.kind === 'confirm' ? undefined : q.validate?.(asText, a);
      if (problem) errors.push(`${flagName(q)} ${asText}: ${problem}`);
      a[q.id] = q.kind === 'multiselect' && !Array.isArray(fromFlag) ? splitList(asText) : fromFlag;
      return;
    }
    const def = q.default?.(a);
    if (q.tuning && a.customize !== true && !opts.ask?.includes(q.id) && def !== undefined) {
      a[q.id] = def;
      return;
    }
    if (!opts.interactive) {
      if (def === undefined) missing.push(`${flagName(q)}  (${q.help})`);
      else {
        if (!opts.yes) defaulted.push(flagName(q));
        a[q.id] = def;
      }
      return;
    }
    if (opts.yes && def !== undefined) {
      a[q.id] = def;
      return;
    }
    a[q.id] = await ask(q, a, def, opts);
  }

  if (errors.length > 0) throw new InvalidInputError('some flags have invalid values', errors);
  if (missing.length > 0) {
    throw new InvalidInputError('no terminal to ask in and these answers are missing; pass them as flags', [
      ...missing,
      ...(defaulted.length > 0 ? ['(pass --yes to take the defaults for the other questions)'] : []),
    ]);
  }
  if (!opts.interactive && !opts.yes && defaulted.length > 0) {
    throw new InvalidInputError(
      'no terminal to ask in; pass --yes to take the defaults or give these flags',
      defaulted,
    );
  }
  return a;
}

/**
 * The answer to --lookup-interface: what the first node has, or a warning why not (the question is then asked as
 * before).
 */
async function lookUpInterfaces(a: Answers, opts: WizardOptions): Promise<void> {
  const host = splitList(String(a.hosts ?? ''))[0];
  if (!opts.lookupInterfaces || !host) return;
  const warn = (m: string) =>
    opts.interactive || !opts.warn ? warnProblem(m, opts.output) : opts.warn(`warning: ${m}`);
  try {
    const found = await opts.lookupInterfaces(a);
    a.detectedInterfaces = found.map((x) => `${x.iface} ${x.cidr}`);
    if (found.length === 0) warn(`${host} reported no IPv4 address outside lo`);
  } catch (e) {
    a.detectedInterfaces = [];
    warn(`could not look up the interfaces on ${host}: ${(e as Error).message.split('\n')[0]}`);
  }
}

/** At a terminal: the runbook's key facts, then write it or not. */
export async function confirmSummary(lines: string[], file: string, opts: WizardOptions): Promise<boolean> {
  p.note(lines.join('\n'), 'summary', { output: opts.output });
  const ok = await p.confirm({ input: opts.input, output: opts.output, message: `Write ${file}?`, initialValue: true });
  if (p.isCancel(ok)) throw new CancelledError('wizard cancelled; nothing was written');
  return ok === true;
}

/** The name points at an existing runbook: overwrite it (said once, here) or pick another name. */
async function confirmNewFile(q: Question, a: Answers, opts: WizardOptions): Promise<void> {
  for (let file = opts.existing!(String(a.name)); file; file = opts.existing!(String(a.name))) {
    const choice = await p.select({
      input: opts.input,
      output: opts.output,
      message: `${file} already exists`,
      options: [
        { value: 'rename', label: 'use another name' },
        { value: 'overwrite', label: 'overwrite it when the wizard is done' },
      ],
      initialValue: 'rename',
    });
    if (p.isCancel(choice)) throw new CancelledError('wizard cancelled; nothing was written');
    if (choice === 'overwrite') {
      a.overwrite = true;
      return;
    }
    a.name = await ask(q, a, undefined, opts);
  }
}

async function ask(q: Question, a: Answers, def: Answers[string], opts: WizardOptions): Promise<Answers[string]> {
  const io = { input: opts.input, output: opts.output };
  const note = q.note?.(a);
  if (note) p.log.info(note, { output: opts.output });
  let value: unknown;
  if (q.kind === 'text') {
    const d = def === undefined ? undefined : String(def);
    value = await p.text({
      ...io,
      message: q.message,
      placeholder: d || undefined,
      defaultValue: d,
      validate: (v) => {
        const text = v === undefined || v === '' ? (d ?? '') : v;
        if (text === '' && d === undefined) return 'an answer is required';
        return q.validate?.(text, a);
      },
    });
  } else if (q.kind === 'select') {
    value = await p.select({
      ...io,
      message: q.message,
      options: q.choices!(a),
      initialValue: def as string | undefined,
    });
  } else if (q.kind === 'multiselect') {
    value = await p.multiselect({
      ...io,
      message: q.message,
      options: q.choices!(a),
      initialValues: (def as string[] | undefined) ?? [],
      required: false,
    });
  } else {
    value = await p.confirm({ ...io, message: q.message, initialValue: def as boolean | undefined });
  }
  if (p.isCancel(value)) throw new CancelledError('wizard cancelled; nothing was written');
  return value as Answers[string];
}
