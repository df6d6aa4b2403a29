import chalk from 'chalk';
import { HaSetupError, RunbookInvalidError } from '../errors.js';

/** Render a domain error for the terminal: the message, then its details, no stack trace. */
export function formatError(err: HaSetupError): string {
  const lines = [chalk.red(`error: ${err.message}`)];
  if (err instanceof RunbookInvalidError) {
    for (const p of err.problems) lines.push(`  ${chalk.bold(p.path)}: ${p.message}`);
  } else {
    for (const d of err.details) lines.push(`  ${d}`);
  }
  return lines.join('\n');
}
