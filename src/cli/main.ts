import type { Readable, Writable } from 'node:stream';
import chalk from 'chalk';
import { Command, CommanderError } from 'commander';
import { CancelledError, HaSetupError, InvalidInputError } from '../errors.js';
import { remoteTrace } from '../engine/trace.js';
import { COMMANDS } from './commands.js';
import { version, type CliContext } from './context.js';
import { formatError } from './output.js';

export { version, type CliContext };

export interface MainOptions {
  cwd?: string;
  interactive?: boolean;
  input?: Readable;
  output?: Writable;
  stdout?: (s: string) => void;
  stderr?: (s: string) => void;
}

/** The one exit point: every command's errors end here as a message and an exit code. */
export async function main(argv: string[], opts: MainOptions = {}): Promise<number> {
  // NO_COLOR (https://no-color.org) and --no-color anywhere on the line turn colour off for every
  // line we print; chalk alone ignores NO_COLOR at a terminal. clack and listr2 read both themselves.
  if (argv.includes('--no-color') || (process.env.NO_COLOR ?? '') !== '') {
    chalk.level = 0;
    argv = argv.filter((a) => a !== '--no-color');
  }
  // Global like --no-color: the remote commands as they run, on stderr (the log file has them always).
  remoteTrace.level = argv.includes('--debug') ? 2 : argv.includes('--verbose') ? 1 : 0;
  remoteTrace.sink = (l) => stderr(`${l}\n`);
  argv = argv.filter((a) => a !== '--verbose' && a !== '--debug');
  const stdout = opts.stdout ?? ((s: string) => process.stdout.write(s));
  const stderr = opts.stderr ?? ((s: string) => process.stderr.write(s));
  const ctx: CliContext = {
    cwd: opts.cwd ?? process.cwd(),
    interactive: opts.interactive ?? Boolean(process.stdin.isTTY && process.stdout.isTTY && !process.env.CI),
    input: opts.input,
    output: opts.output,
    print: (l) => stdout(`${l}\n`),
    printError: (l) => stderr(`${l}\n`),
    result: 0,
  };

  const program = new Command('ha-setup')
    .description(
      'Highly available OpenResty/nginx behind a keepalived VIP: wizard, runbook, resumable SSH install, measured ' +
        'failover.\nWithout a command (at a terminal) it starts the wizard, like `ha-setup init`.',
    )
    .version(version(), '-V, --version')
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({ writeOut: stdout, writeErr: stderr })
    .usage('[command] [options]   (no command, at a terminal: the wizard)')
    // The command list reads the same whether a command's module is loaded or only its summary.
    .configureHelp({
      subcommandTerm: (cmd) => `${cmd.name()} ${COMMANDS.find((c) => c.name === cmd.name())?.usage ?? ''}`.trim(),
    })
    .option('--no-color', 'no colour in the output (also: NO_COLOR=1)')
    .option('--verbose', 'print each remote command as it runs (any command, on stderr)')
    .option('--debug', 'like --verbose, plus read-only probes and remote output')
    .argument('[command]')
    .argument('[args...]')
    .action(async (unknown: string | undefined, rest: string[]) => {
      // `ha-setup help <command>` is `ha-setup <command> --help`.
      if (unknown === 'help') {
        const target = rest[0] ? program.commands.find((c) => c.name() === rest[0]) : undefined;
        if (rest[0] && !target)
          throw unknownCommand(
            rest[0],
            program.commands.map((c) => c.name()),
          );
        (target ?? program).outputHelp();
        ctx.result = 0;
        return;
      }
      if (unknown !== undefined)
        throw unknownCommand(
          unknown,
          program.commands.map((c) => c.name()),
        );
      // No subcommand: the wizard when a person is at a terminal.
      if (!ctx.interactive) {
        throw new InvalidInputError('no terminal to run the wizard in', [
          'run `ha-setup init --help` for the flags, or `ha-setup --help` for every command',
        ]);
      }
      const { runInit } = await import('./init.js');
      ctx.result = await runInit({}, ctx);
    });
  program.hook('preAction', (_this, actionCommand) => {
    ctx.currentCommand = actionCommand;
  });

  // Only the command that runs (or whose help is asked for) is loaded; the others stand in the
  // table with their summary. `completion` describes every command: it loads them all.
  const first = argv.find((a) => !a.startsWith('-'));
  const wanted = first === 'help' ? argv[argv.indexOf('help') + 1] : first;
  const loadAll = wanted === 'completion';
  for (const c of COMMANDS) {
    if (loadAll || c.name === wanted) (await c.load())(program, ctx);
    else program.command(c.name).description(c.summary).usage(c.usage).allowUnknownOption().allowExcessArguments();
  }

  // Every subcommand inherits the same error behaviour and output.
  for (const c of program.commands) applyErrorBehaviour(c, stdout, stderr);

  try {
    await program.parseAsync(argv, { from: 'user' });
    return ctx.result;
  } catch (err) {
    return exitCodeFor(err, ctx);
  }
}

function unknownCommand(name: string, known: string[]): InvalidInputError {
  const close = known.filter((k) => editDistance(k, name) <= Math.max(1, Math.floor(k.length / 3)));
  return new InvalidInputError(`unknown command '${name}'`, [
    ...(close.length > 0 ? [`did you mean ${close.map((c) => `'${c}'`).join(' or ')}?`] : []),
    `commands: ${known.join(', ')} (ha-setup --help)`,
  ]);
}

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
  }
  return d[a.length][b.length];
}

function applyErrorBehaviour(cmd: Command, stdout: (s: string) => void, stderr: (s: string) => void): void {
  cmd.exitOverride().showSuggestionAfterError(true).configureOutput({ writeOut: stdout, writeErr: stderr });
  for (const c of cmd.commands) applyErrorBehaviour(c, stdout, stderr);
}

function exitCodeFor(err: unknown, ctx: CliContext): number {
  if (err instanceof CommanderError) {
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help')
      return 0;
    // Commander already printed the problem (with a "Did you mean" hint where it has one).
    ctx.printError('(run `ha-setup --help` for the commands, `ha-setup <command> --help` for their flags)');
    return 2;
  }
  if (err instanceof CancelledError) {
    ctx.printError(err.message);
    for (const d of err.details) ctx.printError(`  ${d}`);
    return 130;
  }
  if (err instanceof HaSetupError) {
    ctx.printError(formatError(err));
    return err.exitCode;
  }
  ctx.printError(`internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  return 1;
}
