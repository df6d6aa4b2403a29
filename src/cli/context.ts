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

export function version(): string {
  return JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')).version as string;
}
