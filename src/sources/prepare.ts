import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { sourceCatalog } from '../catalog.js';
import type { LocalSource } from '../engine/types.js';
import { InvalidInputError, RunFailedError } from '../errors.js';
import { runLocal } from '../local.js';
import type { Runbook } from '../runbook/schema.js';
import { requiredSources } from '../steps/common.js';
import { expandTilde } from '../engine/ssh-config.js';
import { mirrorFileName, sha256File } from './mirror.js';

export function sourceCacheDir(rb: Runbook): string {
  return rb.sources.cacheDir ? expandTilde(rb.sources.cacheDir) : join(process.env.HA_SETUP_CACHE_DIR ?? join(homedir(), '.cache', 'ha-setup'), 'sources');
}

/**
 * Every source the runbook needs, as a verified tarball on the control machine: an override path,
 * the mirror, the cache, else downloaded (URL) or cloned (git at a pinned ref) into the cache.
 * Nodes never download anything.
 */
export async function prepareSources(rb: Runbook, runbookDir: string, log: (l: string) => void = () => {}): Promise<Record<string, LocalSource>> {
  const out: Record<string, LocalSource> = {};
  const cache = sourceCacheDir(rb);
  mkdirSync(cache, { recursive: true });
  for (const ref of requiredSources(rb)) {
    const entry = sourceCatalog()[ref.id];
    const o = rb.sources.overrides[ref.id] ?? {};
    const pin = o.sha256 ?? entry?.pins[ref.version];
    const name = mirrorFileName(ref);
    const candidates: string[] = [];
    if (o.path) candidates.push(isAbsolute(expandTilde(o.path)) ? expandTilde(o.path) : resolve(runbookDir, o.path));
    if (rb.sources.mirror) candidates.push(join(isAbsolute(expandTilde(rb.sources.mirror)) ? expandTilde(rb.sources.mirror) : resolve(runbookDir, rb.sources.mirror), name));
    candidates.push(join(cache, name));

    let found: LocalSource | undefined;
    for (const file of candidates) {
      if (!existsSync(file)) continue;
      const sum = await sha256File(file);
      if (pin && sum !== pin) throw new RunFailedError(`checksum mismatch for ${file}`, [`expected sha256 ${pin}`, `got      sha256 ${sum}`, 'the file is not used; replace or delete it']);
      if (!pin && !o.path) continue; // an unpinned file found by name is not trusted
      found = { id: ref.id, version: ref.version, path: file, sha256: sum };
      break;
    }
    if (!found) {
      const target = join(cache, name);
      const git = o.git ?? entry?.git;
      if (git) {
        if (!o.ref) throw new InvalidInputError(`sources.overrides.${ref.id}: a git source needs ref (a tag or commit)`);
        await gitArchive(git, o.ref, ref.id, ref.version, target);
      } else {
        const url = o.url ?? entry?.url?.replaceAll('{version}', ref.version);
        if (!url) throw new InvalidInputError(`no source for ${ref.id} ${ref.version}`, [`set sources.overrides.${ref.id}.url, .path or .git`]);
        if (!pin) throw new InvalidInputError(`no sha256 pin for ${ref.id} ${ref.version}`, [`set sources.overrides.${ref.id}.sha256 (from the project's release page), or put the tarball into sources.mirror`]);
        log(`downloading ${url}`);
        const res = await fetch(url, { signal: AbortSignal.timeout(120_000), redirect: 'follow' }).catch((e: Error) => {
          throw new RunFailedError(`cannot download ${url}: ${e.message}`, ['without internet access on this machine, set sources.mirror to a directory holding the tarballs']);
        });
        if (!res.ok) throw new RunFailedError(`cannot download ${url}: HTTP ${res.status}`);
        const { writeFileSync } = await import('node:fs');
        writeFileSync(`${target}.partial`, Buffer.from(await res.arrayBuffer()));
        const sum = await sha256File(`${target}.partial`);
        if (sum !== pin) {
          rmSync(`${target}.partial`, { force: true });
          throw new RunFailedError(`checksum mismatch for ${url}: the download was discarded`, [`expected sha256 ${pin}`, `got      sha256 ${sum}`]);
        }
        renameSync(`${target}.partial`, target);
      }
      found = { id: ref.id, version: ref.version, path: target, sha256: await sha256File(target) };
    }
    out[ref.id] = found;
  }
  return out;
}

async function gitArchive(repo: string, ref: string, id: string, version: string, target: string): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'ha-setup-git-'));
  try {
    await runLocal('git', ['clone', '--quiet', '--no-checkout', repo, work], { timeoutMs: 10 * 60_000 });
    await runLocal('git', ['-C', work, 'archive', '--format=tar.gz', `--prefix=${id}-${version}/`, '-o', `${target}.partial`, ref]);
    renameSync(`${target}.partial`, target);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
