import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';
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
  // Lua directories: every *.lua below them, keyed "<dir>/<path inside it>".
  const luaOwner = new Map<string, string>();
  rb.site.include.lua.forEach((dir, i) => {
    const field = `site.include.lua[${i}]`;
    const abs = isAbsolute(dir) ? dir : resolve(runbookDir, dir);
    if (!existsSync(abs) || !statSync(abs).isDirectory()) throw new InvalidInputError(`${field}: ${dir} is not a directory (looked for ${abs})`);
    const files = luaFilesUnder(abs);
    if (files.length === 0) throw new InvalidInputError(`${field}: ${dir} has no .lua files`);
    for (const f of files) {
      const inside = relative(abs, f).split('\\').join('/');
      if (!/^[A-Za-z0-9_][A-Za-z0-9_./-]*$/.test(inside)) throw new InvalidInputError(`${field}: ${inside} in ${dir}: Lua file names must be letters, digits and . _ - /`);
      if (luaOwner.has(inside)) throw new InvalidInputError(`${field}: ${inside} is also in ${luaOwner.get(inside)}; one module name, one file`);
      luaOwner.set(inside, dir);
      out[`${dir.replace(/\/+$/, '')}/${inside}`] = readFileSync(f, 'utf8');
    }
  });
  return out;
}

function luaFilesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return luaFilesUnder(p);
    return e.isFile() && e.name.endsWith('.lua') ? [p] : [];
  }).sort();
}
