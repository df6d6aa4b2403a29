import chalk from 'chalk';
import { type HaSetupError, RunbookInvalidError } from '../errors.js';

/**
 * Text from a runbook or a host made safe for a terminal: control characters (escape sequences
 * that could move the cursor, retitle the window or hide text) shown as \xNN. Newlines stay.
 */
export function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** Render a domain error for the terminal: the message, then its details, no stack trace. */
export function formatError(err: HaSetupError): string {
  const lines = [chalk.red(`error: ${printable(err.message)}`)];
  if (err instanceof RunbookInvalidError) {
    // One line a problem: a newline inside a runbook value must not start a line that looks like
    // another problem (our own YAML excerpts continue with four spaces).
    for (const p of err.problems)
      lines.push(
        `  ${chalk.bold(printable(p.path).replace(/\n/g, '\\n'))}: ` +
          printable(p.message).replace(/\n(?! {4})/g, '\\n'),
      );
  } else {
    for (const d of err.details) lines.push(`  ${printable(d)}`);
  }
  return lines.join('\n');
}
