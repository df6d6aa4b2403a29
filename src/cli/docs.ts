import { basename, relative } from 'node:path';
import type { Command } from 'commander';
import { writeHandover } from '../docs/handover.js';
import { loadRunbook } from '../runbook/io.js';
import { version, type CliContext } from './context.js';

export function registerDocs(program: Command, ctx: CliContext): void {
  program
    .command('docs')
    .description('write the Markdown handover document next to the runbook (from the runbook and its records)')
    .argument('<runbook>', 'runbook file')
    .action((file: string) => {
      const { path, runbook } = loadRunbook(file);
      const written = writeHandover(path, runbook, version());
      const rel = relative(ctx.cwd, written);
      ctx.print(`wrote ${rel.startsWith('..') ? `${basename(written)} (next to ${basename(path)})` : rel}`);
      ctx.result = 0;
    });
}
