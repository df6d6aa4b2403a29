import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import type { Command } from 'commander';
import { packageRoot } from '../paths.js';

/** What every command gets from the one entry point (src/cli/main.ts). */
export interface CliContext {
  cwd: string;
  interactive: boolean;
  input?: Readable;
  output?: Writable;
  print: (line: string) => void;
  printError: (line: string) => void;
  /** Exit code set by the command that ran. */
  result: number;
  currentCommand?: Command;
}

/** A yes/no question at the terminal (default no), or undefined without one: the engine asks through it. */
export function terminalConfirm(ctx: CliContext): ((question: string) => Promise<boolean>) | undefined {
  if (!ctx.interactive) return undefined;
  return async (message) => {
    const { confirm } = await import('@clack/prompts');
    return (await confirm({ input: ctx.input, output: ctx.output, message, initialValue: false })) === true;
  };
}

/**
 * Ctrl-C during a run that changes hosts: the first stops at the next safe point (no new step
 * starts, a roll does not start another node and puts the VIP home), the second stops now
 * (`hardStop`: the connections close, the running command ends). Either way exit 130.
 */
export async function withInterrupts<T>(
  ctx: CliContext,
  hardStop: () => void,
  fn: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const soft = new AbortController();
  let presses = 0;
  const onSigint = () => {
    presses++;
    if (presses === 1) {
      ctx.printError(
        'interrupted: stopping at the next safe point (the running step finishes; ' +
          'a roll starts no other node and puts the VIP home). Ctrl-C again to stop at once',
      );
      soft.abort();
    } else {
      ctx.printError('stopping now: the running command is cut; apply runs that step again next time');
      hardStop();
    }
  };
  process.on('SIGINT', onSigint);
  try {
    return await fn(soft.signal);
  } finally {
    process.removeListener('SIGINT', onSigint);
  }
}

export function version(): string {
  return JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')).version as string;
}
