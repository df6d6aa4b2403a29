import type { Command } from 'commander';
import { InvalidInputError, RunbookInvalidError } from '../errors.js';
import { loadRunbook } from '../runbook/io.js';
import type { CliContext } from './main.js';
import { printable } from './output.js';

export function registerValidate(program: Command, ctx: CliContext): void {
  program.command('validate')
    .description('check a runbook (schema and cross-field rules) without contacting any host')
    .argument('<runbook>', 'runbook file')
    .option('--json', 'machine-readable result on stdout: {"valid": bool, "problems": [{"path", "message"}]} (exit codes unchanged)')
    .action((file: string, opts: { json?: boolean }) => {
      if (!opts.json) {
        const { runbook } = loadRunbook(file);
        ctx.print(`${printable(file)}: valid (${runbook.nodes.length} nodes, VIP ${runbook.vrrp.vip}, ${runbook.build.flavor} ${runbook.build.version})`);
        ctx.result = 0;
        return;
      }
      try {
        const { runbook } = loadRunbook(file);
        ctx.print(JSON.stringify({ file, valid: true, problems: [], nodes: runbook.nodes.length, vip: runbook.vrrp.vip, flavor: runbook.build.flavor, version: runbook.build.version }, null, 2));
        ctx.result = 0;
      } catch (e) {
        // An unreadable file is a problem too: one shape for every invalid input.
        const problems = e instanceof RunbookInvalidError ? e.problems
          : e instanceof InvalidInputError ? [{ path: '(file)', message: [e.message, ...e.details].join('; ') }] : undefined;
        if (!problems) throw e;
        ctx.print(JSON.stringify({ file, valid: false, problems }, null, 2));
        ctx.result = 2;
      }
    });
}
