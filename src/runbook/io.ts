import { mkdirSync, readFileSync, renameSync, writeFileSync, existsSync, chmodSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parseDocument, stringify } from 'yaml';
import { InvalidInputError, RunbookInvalidError } from '../errors.js';
import type { Runbook, RunbookInput } from './schema.js';
import { RUNBOOK_JSON_SCHEMA } from './json-schema.js';
import { validateRunbook } from './validate.js';

export interface LoadedRunbook {
  path: string;
  runbook: Runbook;
}

export function parseRunbookYaml(text: string, source: string): unknown {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    // The first error is the real one; the ones after it are usually its echoes.
    const first = doc.errors[0];
    const [headline, ...excerpt] = first.message.split('\n');
    throw new RunbookInvalidError(source, [
      {
        path: '(yaml)',
        message: [headline.replace(/:$/, ''), ...excerpt.filter((l) => l.trim() !== '')].join('\n    '),
      },
    ]);
  }
  try {
    // A runbook needs no aliases to speak of: a handful at most, never a billion laughs.
    return doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    throw new RunbookInvalidError(source, [{ path: '(yaml)', message: (e as Error).message }]);
  }
}

/** Read, parse and fully validate a runbook file; throws RunbookInvalidError listing every problem. */
export function loadRunbook(path: string): LoadedRunbook {
  const abs = resolve(path);
  if (!existsSync(abs))
    throw new InvalidInputError(`runbook ${path} does not exist`, [
      'create one with `ha-setup init` (or `ha-setup lab up` for the local lab)',
    ]);
  if (!statSync(abs).isFile())
    throw new InvalidInputError(`runbook ${path} is not a file`, [
      'give the runbook file itself, e.g. runbooks/web-ha.yaml',
    ]);
  let text: string;
  try {
    text = readFileSync(abs, 'utf8');
  } catch (e) {
    throw new InvalidInputError(
      `cannot read runbook ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
  }
  const raw = parseRunbookYaml(text, path);
  const result = validateRunbook(raw);
  if (!result.ok) throw new RunbookInvalidError(path, result.problems);
  return { path: abs, runbook: result.runbook };
}

// Editors with the YAML language server complete and check the runbook against the package's schema.
const HEADER = `# yaml-language-server: $schema=${RUNBOOK_JSON_SCHEMA}
# ha-setup runbook (v1). Edit and run \`ha-setup validate <file>\`, then \`ha-setup apply <file>\`.
# Secrets (VRRP password, sudo password) never go here: see the .secrets file next to it or the environment.
`;

export function runbookToYaml(rb: RunbookInput): string {
  return HEADER + stringify(rb, { lineWidth: 0 });
}

/** Atomic write (temp file + rename) so Ctrl-C never leaves a half-written runbook. */
export function writeFileAtomic(path: string, content: string, mode = 0o644): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, content, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, path);
}

export function secretsPathFor(runbookPath: string, name: string): string {
  return join(dirname(resolve(runbookPath)), `${name}.secrets`);
}

/** The secrets file is KEY=value lines, mode 0600, next to the runbook and git-ignored. */
export function readSecretsFile(path: string): Record<string, string> {
  if (!existsSync(path)) return {};
  // Like ssh with a private key: a secrets file others can read is refused, not used.
  const mode = statSync(path).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new InvalidInputError(
      `${path} is readable or writable by others (mode ${mode.toString(8).padStart(4, '0')}); it holds passwords`,
      [`chmod 600 ${path}`],
    );
  }
  const out: Record<string, string> = {};
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (m) out[m[1]] = m[2];
  }
  return out;
}

/**
 * Keeps what ha-setup writes next to runbooks out of version control (secrets, logs, run records),
 * wherever the runbooks folder is. An existing .gitignore is the user's and is left alone.
 */
export function ensureRunbooksGitignore(dir: string): void {
  const file = join(dir, '.gitignore');
  if (existsSync(file)) return;
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    file,
    '# written by ha-setup: secrets, command logs and run records stay out of version ' +
      'control\n*.secrets\nlogs/\nrecords/\n',
  );
}

export function writeSecretsFile(path: string, values: Record<string, string>): void {
  ensureRunbooksGitignore(dirname(resolve(path)));
  const existing = readSecretsFile(path);
  const merged = { ...existing, ...values };
  const body =
    '# ha-setup secrets: keep out of version control (mode 0600)\n' +
    Object.entries(merged)
      .map(([k, v]) => `${k}=${v}`)
      .join('\n') +
    '\n';
  writeFileAtomic(path, body, 0o600);
}

/**
 * Write pins learned on first download into the runbook file itself (comments and layout kept), so
 * every later run and every replay is held to them.
 */
export function recordPinsInRunbook(
  path: string,
  pins: Array<{ id: string; version: string; sha256?: string; commit?: string }>,
): void {
  const doc = parseDocument(readFileSync(path, 'utf8'));
  for (const p of pins) {
    doc.setIn(['sources', 'overrides', p.id, 'version'], p.version);
    if (p.sha256) doc.setIn(['sources', 'overrides', p.id, 'sha256'], p.sha256);
    if (p.commit) doc.setIn(['sources', 'overrides', p.id, 'commit'], p.commit);
  }
  writeFileAtomic(path, doc.toString({ lineWidth: 0 }));
}
