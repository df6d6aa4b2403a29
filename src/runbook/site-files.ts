import { existsSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { InvalidInputError } from '../errors.js';
import type { Runbook } from './schema.js';

/**
 * The contents of the runbook's site.include files, read on the control machine (relative paths
 * are relative to the runbook's folder). Keys are the paths as the runbook writes them.
 */
export function readSiteFiles(rb: Runbook, runbookDir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const context of ['http', 'server'] as const) {
    const seen = new Map<string, string>();
    rb.site.include[context].forEach((rel, i) => {
      const field = `site.include.${context}[${i}]`;
      const abs = isAbsolute(rel) ? rel : resolve(runbookDir, rel);
      if (!existsSync(abs) || !statSync(abs).isFile()) throw new InvalidInputError(`${field}: ${rel} does not exist (looked for ${abs})`);
      const base = rel.split('/').pop()!;
      if (seen.has(base)) throw new InvalidInputError(`${field}: ${rel} has the same file name as ${seen.get(base)}; names must differ, they share one directory on the nodes`);
      seen.set(base, rel);
      out[rel] = readFileSync(abs, 'utf8');
    });
  }
  return out;
}
