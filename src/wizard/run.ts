import * as p from '@clack/prompts';
import type { Readable, Writable } from 'node:stream';
import { CancelledError, InvalidInputError } from '../errors.js';
import { questions, splitList, type Answers, type Question } from './questions.js';

export interface WizardOptions {
  /** Take defaults without asking. */
  yes: boolean;
  /** A TTY is attached; when false, nothing is ever prompted. */
  interactive: boolean;
  input?: Readable;
  output?: Writable;
}

const flagName = (q: Question) => q.flag.split(' ')[0];

/**
 * Resolve every question in order: flag value, else default (with --yes or when the user just
 * presses enter), else the prompt. A non-interactive run never prompts: it fails naming the
 * flags that are missing.
 */
export async function resolveAnswers(given: Answers, opts: WizardOptions): Promise<Answers> {
  const a: Answers = { ...given };
  const errors: string[] = [];
  const missing: string[] = [];
  const defaulted: string[] = [];

  for (const q of questions) {
    if (q.when && !q.when(a)) continue;
    const fromFlag = given[q.id];
    if (fromFlag !== undefined) {
      const asText = Array.isArray(fromFlag) ? fromFlag.join(',') : String(fromFlag);
      const problem = q.kind === 'confirm' ? undefined : q.validate?.(asText, a);
      if (problem) errors.push(`${flagName(q)} ${asText}: ${problem}`);
      a[q.id] = q.kind === 'multiselect' && !Array.isArray(fromFlag) ? splitList(asText) : fromFlag;
      continue;
    }
    const def = q.default?.(a);
    if (!opts.interactive) {
      if (def === undefined) missing.push(`${flagName(q)}  (${q.help})`);
      else {
        if (!opts.yes) defaulted.push(flagName(q));
        a[q.id] = def;
      }
      continue;
    }
    if (opts.yes && def !== undefined) {
      a[q.id] = def;
      continue;
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
    throw new InvalidInputError('no terminal to ask in; pass --yes to take the defaults or give these flags', defaulted);
  }
  return a;
}

async function ask(q: Question, a: Answers, def: Answers[string], opts: WizardOptions): Promise<Answers[string]> {
  const io = { input: opts.input, output: opts.output };
  const note = q.note?.(a);
  if (note) p.log.info(note, { output: opts.output });
  let value: unknown;
  if (q.kind === 'text') {
    const d = def === undefined ? undefined : String(def);
    value = await p.text({
      ...io, message: q.message, placeholder: d || undefined, defaultValue: d,
      validate: (v) => {
        const text = v === undefined || v === '' ? d ?? '' : v;
        if (text === '' && d === undefined) return 'an answer is required';
        return q.validate?.(text, a);
      },
    });
  } else if (q.kind === 'select') {
    value = await p.select({ ...io, message: q.message, options: q.choices!(a), initialValue: def as string | undefined });
  } else if (q.kind === 'multiselect') {
    value = await p.multiselect({ ...io, message: q.message, options: q.choices!(a), initialValues: (def as string[] | undefined) ?? [], required: false });
  } else {
    value = await p.confirm({ ...io, message: q.message, initialValue: def as boolean | undefined });
  }
  if (p.isCancel(value)) throw new CancelledError('wizard cancelled; nothing was written');
  return value as Answers[string];
}
