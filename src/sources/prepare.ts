import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import type { LocalSource } from '../engine/types.js';
import { InvalidInputError, RunFailedError } from '../errors.js';
import { commandExists, runLocal, tail } from '../local.js';
import type { Runbook } from '../runbook/schema.js';
import { requiredSources } from '../runbook/derived.js';
import { expandTilde } from '../paths.js';
import { isCommit } from './git-syntax.js';
import { mirrorFileName, sha256File } from './mirror.js';
import { gitArchiveName, sourceCacheDir, sourceSpec, type SourceSpec } from './spec.js';

export { gitArchiveName, sourceCacheDir, sourceSpec, type SourceSpec };

/** A pin learned on first download (--trust-on-first-download), to be written into the runbook. */
export interface LearnedPin {
  id: string;
  version: string;
  sha256?: string;
  commit?: string;
}

export interface PrepareOptions {
  log?: (line: string) => void;
  /** OS families of the nodes (from their facts): some sources are needed by one family only. */
  families?: string[];
  /** Accept a source without a pin once, and report what it was so the runbook can be held to it. */
  trustOnFirstDownload?: boolean;
}

export interface PreparedSources {
  sources: Record<string, LocalSource>;
  learned: LearnedPin[];
}

/**
 * Every source the runbook needs, as a verified archive on the control machine: an override path,
 * the mirror, the cache, else downloaded (URL) or fetched from git at a pinned commit into the cache.
 * Nodes never download anything.
 */
export async function prepareSources(
  rb: Runbook,
  runbookDir: string,
  opts: PrepareOptions = {},
): Promise<PreparedSources> {
  const refs = [requiredSources(rb), ...(opts.families ?? []).map((f) => requiredSources(rb, f))]
    .flat()
    .filter((r, i, all) => all.findIndex((x) => x.id === r.id) === i);
  const log = opts.log ?? (() => {});
  const out: Record<string, LocalSource> = {};
  const learned: LearnedPin[] = [];
  const cache = sourceCacheDir(rb);
  mkdirSync(cache, { recursive: true });
  for (const ref of refs) {
    const spec = sourceSpec(rb, ref);
    if (spec.kind === 'git') {
      const src = await prepareGit(spec, cache, opts, log);
      if (!spec.commit) learned.push({ id: ref.id, version: ref.version, commit: src.git!.commit });
      out[ref.id] = src;
      continue;
    }
    const { source, learnedSha } = await prepareTarball(rb, spec, runbookDir, cache, opts, log);
    if (learnedSha) learned.push({ id: ref.id, version: ref.version, sha256: learnedSha });
    out[ref.id] = source;
  }
  return { sources: out, learned };
}

async function prepareTarball(
  rb: Runbook,
  spec: Extract<SourceSpec, { kind: 'tarball' }>,
  runbookDir: string,
  cache: string,
  opts: PrepareOptions,
  log: (l: string) => void,
): Promise<{ source: LocalSource; learnedSha?: string }> {
  const ref = { id: spec.id, version: spec.version };
  const pin = spec.sha256;
  const name = mirrorFileName(ref);
  const candidates: string[] = [];
  const local = (p: string) => (isAbsolute(expandTilde(p)) ? expandTilde(p) : resolve(runbookDir, p));
  if (spec.path) candidates.push(local(spec.path));
  if (rb.sources.mirror) candidates.push(join(local(rb.sources.mirror), name));
  candidates.push(join(cache, name));

  for (const file of candidates) {
    if (!existsSync(file)) continue;
    const sum = await sha256File(file);
    if (pin && sum !== pin)
      throw new RunFailedError(`checksum mismatch for ${file}`, [
        `expected sha256 ${pin}`,
        `got      sha256 ${sum}`,
        'the file is not used; replace or delete it',
      ]);
    if (!pin && !spec.path) continue; // an unpinned file found by name is not trusted
    return { source: { ...ref, path: file, sha256: sum } };
  }
  if (spec.path) throw new InvalidInputError(`sources.overrides.${spec.id}.path: ${candidates[0]} does not exist`);
  if (!spec.url)
    throw new InvalidInputError(`no source for ${spec.id} ${spec.version}`, [
      `set sources.overrides.${spec.id}.url, .path or .git`,
    ]);
  if (!pin && !opts.trustOnFirstDownload) {
    throw new InvalidInputError(`no sha256 pin for ${spec.id} ${spec.version}`, [
      `set sources.overrides.${spec.id}.sha256 to the checksum the project publishes for ${spec.url}`,
      'or run with --trust-on-first-download: it downloads once, prints the sha256 and records it in the runbook',
      'a tarball in sources.mirror or the cache is used only when its checksum is pinned',
    ]);
  }
  // Trusting a first download means trusting the channel: never a plain-HTTP one anyone on the path can change.
  if (!pin && !spec.url.startsWith('https://')) {
    throw new InvalidInputError(
      `${spec.id} ${spec.version}: --trust-on-first-download needs an https:// URL, not ${spec.url}`,
      [`set sources.overrides.${spec.id}.sha256 to the checksum the project publishes, or give an https:// URL`],
    );
  }
  const target = join(cache, name);
  log(`downloading ${spec.url}`);
  const res = await fetch(spec.url, { signal: AbortSignal.timeout(120_000), redirect: 'follow' }).catch((e: Error) => {
    throw new RunFailedError(`cannot download ${spec.url}: ${e.message}`, [
      'without internet access on this machine, set sources.mirror to a directory holding the pinned tarballs',
    ]);
  });
  if (!res.ok) throw new RunFailedError(`cannot download ${spec.url}: HTTP ${res.status}`);
  writeFileSync(`${target}.partial`, Buffer.from(await res.arrayBuffer()));
  const sum = await sha256File(`${target}.partial`);
  if (pin && sum !== pin) {
    rmSync(`${target}.partial`, { force: true });
    throw new RunFailedError(`checksum mismatch for ${spec.url}: the download was discarded`, [
      `expected sha256 ${pin}`,
      `got      sha256 ${sum}`,
    ]);
  }
  renameSync(`${target}.partial`, target);
  if (!pin) log(`trusted on first download: ${spec.id} ${spec.version} sha256 ${sum}`);
  return { source: { ...ref, path: target, sha256: sum }, learnedSha: pin ? undefined : sum };
}

async function prepareGit(
  spec: Extract<SourceSpec, { kind: 'git' }>,
  cache: string,
  opts: PrepareOptions,
  log: (l: string) => void,
): Promise<LocalSource> {
  const ref = { id: spec.id, version: spec.version };
  const archive = (commit: string) => join(cache, gitArchiveName(ref, commit));
  const origin = (commit: string) => ({ url: spec.url, fetchedFrom: spec.fetchFrom, ref: spec.ref, commit });
  if (spec.commit && existsSync(archive(spec.commit))) {
    // Named for the commit is not enough: git archive records the commit it was made from.
    const inside = await runLocal('git', ['get-tar-commit-id'], {
      input: readFileSync(archive(spec.commit)),
      allowFailure: true,
    });
    if (inside.stdout.trim() === spec.commit) {
      return {
        ...ref,
        path: archive(spec.commit),
        sha256: await sha256File(archive(spec.commit)),
        git: origin(spec.commit),
      };
    }
    log(`${archive(spec.commit)} does not hold commit ${spec.commit}; fetching it again`);
    rmSync(archive(spec.commit), { force: true });
  }
  if (!spec.commit && !opts.trustOnFirstDownload) {
    throw new InvalidInputError(`${spec.id} ${spec.version}: git ref "${spec.ref}" is not held to a commit`, [
      `set sources.overrides.${spec.id}.commit to the commit you reviewed`,
      'or run with --trust-on-first-download: it records the commit the ref resolves to now in the runbook',
    ]);
  }
  if (!(await commandExists('git')))
    throw new InvalidInputError(`${spec.id} comes from git, and git is not installed on this machine`, [
      'install git (apt-get install git / dnf install git)',
    ]);
  log(`fetching ${spec.id} ${spec.ref} from ${spec.fetchFrom}`);
  const commit = await fetchAndArchive(spec, `${spec.id}-${spec.version}/`, (c) => archive(c));
  if (spec.commit && commit !== spec.commit) {
    rmSync(archive(commit), { force: true });
    throw new RunFailedError(
      `${spec.id}: ${spec.ref} at ${spec.fetchFrom} resolves to ${commit}, not the pinned ${spec.commit}`,
      ['a moved tag or another repository: review the change before updating the pin (sources.overrides.<id>.commit)'],
    );
  }
  if (!spec.commit) log(`trusted on first download: ${spec.id} ${spec.ref} is commit ${commit}`);
  return { ...ref, path: archive(commit), sha256: await sha256File(archive(commit)), git: origin(commit) };
}

/**
 * Fetch `ref` (shallow when the server allows it) into a throw-away bare repository, resolve it to
 * a commit and write `git archive` of it. Positionals always follow `--`; no terminal prompts.
 */
async function fetchAndArchive(
  spec: Extract<SourceSpec, { kind: 'git' }>,
  prefix: string,
  target: (commit: string) => string,
): Promise<string> {
  const work = mkdtempSync(join(tmpdir(), 'ha-setup-git-'));
  const env = { ...process.env, GIT_TERMINAL_PROMPT: '0', GIT_ASKPASS: 'true' };
  const git = (args: string[], allowFailure = false) =>
    runLocal('git', ['--git-dir', work, ...args], { env, allowFailure, timeoutMs: 10 * 60_000 });
  try {
    await runLocal('git', ['init', '--quiet', '--bare', '--', work], { env });
    let rev = 'FETCH_HEAD';
    const shallow = await git(['fetch', '--quiet', '--depth', '1', '--', spec.fetchFrom, spec.ref], true);
    if (shallow.code !== 0) {
      // Servers that refuse shallow fetches, or a commit that is not at the tip of a ref: fetch all.
      const full = await git(['fetch', '--quiet', '--tags', '--', spec.fetchFrom, '+refs/heads/*:refs/heads/*'], true);
      if (full.code !== 0) {
        throw new RunFailedError(`cannot fetch ${spec.id} from ${spec.fetchFrom}`, [
          ...tail(full.stderr || shallow.stderr, 5),
          'without internet access here, ' +
            "point sources.gitRewrite (or git's url.<base>.insteadOf) at a reachable git server",
        ]);
      }
      rev = spec.ref;
    }
    const resolved = await git(['rev-parse', '--verify', '--quiet', '--end-of-options', `${rev}^{commit}`], true);
    const commit = resolved.stdout.trim();
    if (resolved.code !== 0 || !isCommit(commit))
      throw new RunFailedError(`${spec.id}: ${spec.ref} is not a tag, branch or commit of ${spec.fetchFrom}`);
    const out = target(commit);
    await git(['archive', '--format=tar', `--prefix=${prefix}`, '-o', `${out}.partial`, '--', commit]);
    renameSync(`${out}.partial`, out);
    return commit;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
