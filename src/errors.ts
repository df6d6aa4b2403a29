// Domain errors. Steps and commands throw these; only src/cli/main.ts prints them and
// turns them into an exit code.

export interface Problem {
  /** Field path in the runbook, e.g. `nodes[1].host` or `vrrp.virtualRouterId`. */
  path: string;
  message: string;
}

export class HaSetupError extends Error {
  readonly exitCode: number = 1;
  /** Extra lines printed under the message (hints, tails of logs). */
  details: string[] = [];
  constructor(message: string, details: string[] = []) {
    super(message);
    this.name = new.target.name;
    this.details = details;
  }
}

/** Bad runbook, bad flag, missing answer: exit 2. */
export class InvalidInputError extends HaSetupError {
  override readonly exitCode = 2;
}

/** A runbook that fails schema or semantic validation: every problem, exit 2. */
export class RunbookInvalidError extends InvalidInputError {
  constructor(
    readonly source: string,
    readonly problems: Problem[],
  ) {
    super(
      `${source} is not a valid runbook (${problems.length} problem${problems.length === 1 ? '' : 's'})`,
      problems.map((p) => `${p.path}: ${p.message}`),
    );
  }
}

/** The run itself failed (a host, a command, a check): exit 1. */
export class RunFailedError extends HaSetupError {}

/** The environment cannot do what was asked (not root, not Linux, tool missing): exit 2. */
export class UnsupportedEnvironmentError extends InvalidInputError {}

/** The user pressed Ctrl-C or cancelled a prompt: exit 130. */
export class CancelledError extends HaSetupError {
  override readonly exitCode = 130;
  constructor(message = 'cancelled', details: string[] = []) {
    super(message, details);
  }
}
