import type { Command } from 'commander';
import { InvalidInputError, RunbookInvalidError } from '../errors.js';
import { dirname } from 'node:path';
import { loadRunbook } from '../runbook/io.js';
import { tlsFileProblems } from '../runbook/tls-files.js';
import { pinProblems, releaseProblems, RELEASES } from '../runbook/release-rules.js';
import type { CliContext } from './context.js';
import { printable } from './output.js';

/** Everything apply would refuse before touching a host: the runbook, its pins, and with --os the nodes' release. */
function checkAll(file: string, os: string | undefined) {
  const loaded = loadRunbook(file);
  const problems = [
    ...pinProblems(loaded.runbook),
    ...(os ? releaseProblems(loaded.runbook, os) : []),
    // The certificate and key apply would ship: the same checks, before any host is contacted.
    ...tlsFileProblems(loaded.runbook, dirname(loaded.path)),
  ];
  if (problems.length > 0) throw new RunbookInvalidError(file, problems);
  return loaded;
}

export function registerValidate(program: Command, ctx: CliContext): void {
  program
    .command('validate')
    .description(
      'check a runbook (schema, cross-field rules, source pins; ' +
        "with --os the nodes' release) without contacting any host",
    )
    .argument('<runbook>', 'runbook file')
    .option('--os <release>', `also check what the nodes' release allows: ${RELEASES.join(', ')}`)
    .option(
      '--json',
      'machine-readable result on stdout: {"valid": bool, "problems": [{"path", "message"}]} (exit codes unchanged)',
    )
    .action((file: string, opts: { json?: boolean; os?: string }) => {
      if (opts.os !== undefined && !(RELEASES as readonly string[]).includes(opts.os))
        throw new InvalidInputError(`--os ${opts.os}: choose one of ${RELEASES.join(', ')}`);
      if (!opts.json) {
        const { runbook } = checkAll(file, opts.os);
        ctx.print(
          `${printable(file)}: valid (${runbook.nodes.length} nodes, VIP ${runbook.vrrp.vip}, ` +
            `${runbook.build.flavor} ${runbook.build.version}${opts.os ? `, on ${opts.os}` : ''})`,
        );
        ctx.result = 0;
        return;
      }
      try {
        const { runbook } = checkAll(file, opts.os);
        ctx.print(
          JSON.stringify(
            {
              file,
              valid: true,
              problems: [],
              nodes: runbook.nodes.length,
              vip: runbook.vrrp.vip,
              flavor: runbook.build.flavor,
              version: runbook.build.version,
            },
            null,
            2,
          ),
        );
        ctx.result = 0;
      } catch (e) {
        // An unreadable file is a problem too: one shape for every invalid input.
        const problems =
          e instanceof RunbookInvalidError
            ? e.problems
            : e instanceof InvalidInputError
              ? [{ path: '(file)', message: [e.message, ...e.details].join('; ') }]
              : undefined;
        if (!problems) throw e;
        ctx.print(JSON.stringify({ file, valid: false, problems }, null, 2));
        ctx.result = 2;
      }
    });
}
