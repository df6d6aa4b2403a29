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

export function version(): string {
  return JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')).version as string;
}
