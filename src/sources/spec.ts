import { homedir } from 'node:os';
import { join } from 'node:path';
import { sourceCatalog } from '../catalog.js';
import { expandTilde } from '../paths.js';
import { InvalidInputError } from '../errors.js';
import type { Runbook } from '../runbook/schema.js';
import { isCommit, rewriteGitUrl } from './git-syntax.js';
import type { SourceRef } from './mirror.js';

// Where each source comes from, decided from the catalog and the runbook alone (pure): used by
// plan and validate without fetching, and by the preparation that fetches.

export function sourceCacheDir(rb: Runbook): string {
  return rb.sources.cacheDir
    ? expandTilde(rb.sources.cacheDir)
    : join(process.env.HA_SETUP_CACHE_DIR ?? join(homedir(), '.cache', 'ha-setup'), 'sources');
}

/** Where one source comes from, decided from the catalog and the runbook's override alone (pure). */
export type SourceSpec =
  | { kind: 'git'; id: string; version: string; url: string; fetchFrom: string; ref: string; commit?: string }
  | { kind: 'tarball'; id: string; version: string; url?: string; path?: string; sha256?: string };

export function sourceSpec(rb: Runbook, ref: SourceRef): SourceSpec {
  const entry = sourceCatalog()[ref.id];
  const o = rb.sources.overrides[ref.id] ?? {};
  const gitUrl = o.git ?? (o.url === undefined && o.path === undefined ? entry?.git : undefined);
  if (gitUrl) {
    const known = o.git ? undefined : entry?.refs?.[ref.version];
    const gitRef = o.ref ?? known?.ref;
    if (!gitRef) {
      throw new InvalidInputError(`no git ref known for ${ref.id} ${ref.version}`, [
        `versions in the catalog: ${Object.keys(entry?.refs ?? {}).join(', ') || '(none)'}`,
        `set sources.overrides.${ref.id}.ref (a tag, branch or full commit id) and .commit`,
      ]);
    }
    // A ref that is itself a commit id pins itself; a tag or branch needs the commit it must resolve to.
    const commit = o.commit ?? (isCommit(gitRef) ? gitRef : o.ref === undefined ? known?.commit : undefined);
    return {
      kind: 'git',
      id: ref.id,
      version: ref.version,
      url: gitUrl,
      fetchFrom: rewriteGitUrl(gitUrl, rb.sources.gitRewrite),
      ref: gitRef,
      commit,
    };
  }
  const url = o.url ?? entry?.url?.replaceAll('{version}', ref.version);
  return {
    kind: 'tarball',
    id: ref.id,
    version: ref.version,
    url,
    path: o.path,
    sha256: o.sha256 ?? entry?.pins[ref.version],
  };
}

/** The cache file of a git source at a commit (plain tar: `git archive` output is stable per commit). */
export function gitArchiveName(ref: SourceRef, commit: string): string {
  return `${ref.id}-${ref.version}-${commit.slice(0, 12)}.tar`;
}
