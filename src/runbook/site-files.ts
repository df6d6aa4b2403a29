import { lstatSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { posix } from 'node:path';
import { InvalidInputError } from '../errors.js';
import type { Runbook } from './schema.js';
import { readAcmeCa, readTlsChain } from './tls-files.js';

/**
 * The runbook's site.include files, read on the control machine. Two maps, never mixed: a conf
 * file's key can never be taken for a Lua module's path (and so place a file anywhere).
 */
export interface SiteFiles {
  /** http and server includes, keyed by the path as the runbook writes it. */
  conf: Record<string, string>;
  /** Lua modules, keyed by their path inside ha-lua/ on the nodes ("gw/route.lua"). */
  lua: Record<string, string>;
  /** CA certificates (PEM) the gateway trusts for Consul and Redis over TLS, keyed by the runbook's path. */
  ca: Record<string, string>;
  /** site.tls: the certificate chain (checked against its key; the key itself travels as a secret) and the ACME CA. */
  tls: { chain?: string; acmeCa?: string };
}

export const emptySiteFiles = (): SiteFiles => ({ conf: {}, lua: {}, ca: {}, tls: {} });

/** Every `tls.caFile` of the runbook with the field that names it. */
export function caFiles(rb: Runbook): Array<{ field: string; file: string }> {
  const out: Array<{ field: string; file: string }> = [];
  rb.site.upstreams.forEach((u, i) => {
    const f = u.discovery?.consul.tls?.caFile;
    if (f) out.push({ field: `site.upstreams[${i}].discovery.consul.tls.caFile`, file: f });
  });
  const g = rb.site.gray?.redis.tls?.caFile;
  if (g) out.push({ field: 'site.gray.redis.tls.caFile', file: g });
  return out;
}

/** Limits that keep a mistaken `include.lua: ["."]` from shipping a whole tree. */
export const SITE_LIMITS = { luaFiles: 500, fileBytes: 1024 * 1024, totalBytes: 16 * 1024 * 1024, depth: 16 };

/**
 * A path on the nodes for `rel` inside `dir`, or an error when the normalised path would leave `dir`
 * (every remote destination built from runbook input goes through this).
 */
export function remotePathInside(dir: string, rel: string, field: string): string {
  const base = posix.normalize(dir.replace(/\/+$/, ''));
  const full = posix.normalize(`${base}/${rel}`);
  if (rel === '' || isAbsolute(rel) || !full.startsWith(`${base}/`) || rel.split('/').includes('..')) {
    throw new InvalidInputError(`${field}: "${rel}" would be written outside ${base}`);
  }
  return full;
}

/** The real path of `p`, which must exist inside the runbook's folder (no symlink out of it). */
function insideRunbookDir(root: string, p: string, field: string, shown: string): string {
  let real: string;
  try {
    real = realpathSync(p);
  } catch {
    throw new InvalidInputError(`${field}: ${shown} does not exist (looked for ${p})`);
  }
  if (real !== root && !real.startsWith(root + sep)) {
    throw new InvalidInputError(
      `${field}: ${shown} resolves to ${real}, outside the runbook's folder ${root}; ` +
        `keep include files beside the runbook`,
    );
  }
  return real;
}

/**
 * Reads the include files. Relative paths only, resolved from the runbook's folder and kept inside
 * it (symlinks included); Lua directories are walked to a bounded depth and size.
 */
export function readSiteFiles(rb: Runbook, runbookDir: string): SiteFiles {
  const root = realpathSync(resolve(runbookDir));
  const out = emptySiteFiles();
  let total = 0;
  const read = (path: string, field: string, shown: string): string => {
    const size = statSync(path).size;
    if (size > SITE_LIMITS.fileBytes)
      throw new InvalidInputError(
        `${field}: ${shown} is ${size} bytes; include files are limited to ${SITE_LIMITS.fileBytes}`,
      );
    total += size;
    if (total > SITE_LIMITS.totalBytes)
      throw new InvalidInputError(`${field}: site.include files add up to more than ${SITE_LIMITS.totalBytes} bytes`);
    return readFileSync(path, 'utf8');
  };
  for (const context of ['http', 'server'] as const) {
    const seen = new Map<string, string>();
    rb.site.include[context].forEach((rel, i) => {
      const field = `site.include.${context}[${i}]`;
      if (isAbsolute(rel))
        throw new InvalidInputError(`${field}: ${rel} is absolute; give a path relative to the runbook's folder`);
      const real = insideRunbookDir(root, resolve(root, rel), field, rel);
      if (!statSync(real).isFile()) throw new InvalidInputError(`${field}: ${rel} is not a file`);
      const base = rel.split('/').pop()!;
      if (seen.has(base))
        throw new InvalidInputError(
          `${field}: ${rel} has the same file ` +
            `name as ${seen.get(base)}; names must differ, they share one directory on the nodes`,
        );
      seen.set(base, rel);
      out.conf[rel] = read(real, field, rel);
    });
  }
  for (const { field, file } of caFiles(rb)) {
    if (isAbsolute(file))
      throw new InvalidInputError(`${field}: ${file} is absolute; give a path relative to the runbook's folder`);
    const real = insideRunbookDir(root, resolve(root, file), field, file);
    const pem = read(real, field, file);
    if (!/-----BEGIN CERTIFICATE-----[\s\S]+-----END CERTIFICATE-----/.test(pem))
      throw new InvalidInputError(`${field}: ${file} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
    if (/PRIVATE KEY-----/.test(pem))
      throw new InvalidInputError(`${field}: ${file} holds a private key; give the CA certificate only`);
    out.ca[file] = pem;
  }
  if (rb.site.tls?.certificate) out.tls.chain = readTlsChain(rb, root);
  if (rb.site.tls?.acme?.caFile) out.tls.acmeCa = readAcmeCa(rb, root);
  // Lua directories: every *.lua below them, keyed by the module path inside ha-lua/.
  const luaOwner = new Map<string, string>();
  rb.site.include.lua.forEach((dir, i) => {
    const field = `site.include.lua[${i}]`;
    if (isAbsolute(dir))
      throw new InvalidInputError(`${field}: ${dir} is absolute; give a directory relative to the runbook's folder`);
    const abs = insideRunbookDir(root, resolve(root, dir), field, dir);
    if (!statSync(abs).isDirectory())
      throw new InvalidInputError(`${field}: ${dir} is not a directory (looked for ${abs})`);
    const files = luaFilesUnder(root, abs, field, 0);
    if (files.length === 0) throw new InvalidInputError(`${field}: ${dir} has no .lua files`);
    for (const f of files) {
      const inside = relative(abs, f.shown).split(sep).join('/');
      if (!/^[A-Za-z0-9_][A-Za-z0-9_./-]*$/.test(inside))
        throw new InvalidInputError(
          `${field}: ${inside} in ${dir}: Lua file names must be letters, digits and . _ - /`,
        );
      remotePathInside('ha-lua', inside, field);
      if (luaOwner.has(inside))
        throw new InvalidInputError(
          `${field}: ${inside} is also in ${luaOwner.get(inside)}; one module name, one file`,
        );
      luaOwner.set(inside, dir);
      if (luaOwner.size > SITE_LIMITS.luaFiles)
        throw new InvalidInputError(
          `${field}: more than ${SITE_LIMITS.luaFiles} Lua files under site.include.lua; list the directories of ` +
            `your modules, not a whole tree`,
        );
      out.lua[inside] = read(f.real, field, `${dir}/${inside}`);
    }
  });
  return out;
}

/** .lua files under `dir` (sorted); symlinks are followed only when they stay inside the runbook's folder. */
function luaFilesUnder(
  root: string,
  dir: string,
  field: string,
  depth: number,
): Array<{ shown: string; real: string }> {
  if (depth > SITE_LIMITS.depth)
    throw new InvalidInputError(`${field}: directories nested deeper than ${SITE_LIMITS.depth} levels`);
  return readdirSync(dir, { withFileTypes: true })
    .sort((a, b) => a.name.localeCompare(b.name))
    .flatMap((e) => {
      const p = join(dir, e.name);
      if (e.isSymbolicLink()) {
        const real = insideRunbookDir(root, p, field, p);
        if (lstatSync(real).isDirectory())
          throw new InvalidInputError(`${field}: ${p} is a symbolic link to a directory; list that directory itself`);
        return e.name.endsWith('.lua') ? [{ shown: p, real }] : [];
      }
      if (e.isDirectory()) return luaFilesUnder(root, p, field, depth + 1);
      return e.isFile() && e.name.endsWith('.lua') ? [{ shown: p, real: p }] : [];
    });
}
