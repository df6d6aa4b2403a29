import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// Works from src/ (tests run the TypeScript) and from dist/ (the built package):
// both sit one level below the package root.
export const packageRoot = dirname(dirname(fileURLToPath(import.meta.url)));
export const templatesDir = join(packageRoot, 'src', 'templates');
export const dataDir = join(packageRoot, 'src', 'data');

/** `~` and `~/x` as the shell would expand them (runbook paths on the control machine). */
export function expandTilde(p: string, home = homedir()): string {
  return p === '~' ? home : p.startsWith('~/') ? join(home, p.slice(2)) : p;
}
