import type { Command } from 'commander';
import { loadRunbook } from '../runbook/io.js';
import type { CliContext } from './main.js';

export function registerValidate(program: Command, ctx: CliContext): void {
  program.command('validate')
    .description('check a runbook (schema and cross-field rules) without contacting any host')
    .argument('<runbook>', 'runbook file')
    .action((file: string) => {
      const { runbook } = loadRunbook(file);
      ctx.print(`${file}: valid (${runbook.nodes.length} nodes, VIP ${runbook.vrrp.vip}, ${runbook.build.flavor} ${runbook.build.version})`);
      ctx.result = 0;
    });
}
