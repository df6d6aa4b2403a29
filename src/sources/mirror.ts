import { createHash } from 'node:crypto';
import {
  createReadStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sourceCatalog } from '../catalog.js';
import { InvalidInputError, RunFailedError } from '../errors.js';
import { commandExists, runLocal } from '../local.js';

export interface SourceRef {
  id: string;
  version: string;
}

export type Log = (line: string) => void;

/** The canonical file name of a source tarball in a mirror or cache: `<id>-<version>.tar.gz`. */
export function mirrorFileName(ref: SourceRef): string {
  return `${ref.id}-${ref.version}.tar.gz`;
}

export function pinFor(ref: SourceRef, extraPins: Record<string, string> = {}): string | undefined {
  return extraPins[`${ref.id}-${ref.version}`] ?? sourceCatalog()[ref.id]?.pins[ref.version];
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk);
  return hash.digest('hex');
}

const expand = (template: string, version: string) => template.replaceAll('{version}', version);

export interface FillOptions {
  /** Try the official URL first (default true); false goes straight to the Debian source archive. */
  download?: boolean;
  log?: Log;
}

/**
 * Make sure `dir` holds a verified tarball of each source: kept if its checksum matches, else
 * fetched from the official URL, else from Debian's source archive (`apt-get source`). A file
 * whose checksum differs from its pin is an error and is never used.
 */
export async function fillMirror(
  dir: string,
  refs: SourceRef[],
  opts: FillOptions = {},
): Promise<Record<string, string>> {
  const log = opts.log ?? (() => {});
  mkdirSync(dir, { recursive: true });
  const out: Record<string, string> = {};
  for (const ref of refs) {
    const entry = sourceCatalog()[ref.id];
    if (!entry) throw new InvalidInputError(`unknown source "${ref.id}"`);
    const pin = pinFor(ref);
    if (!pin)
      throw new InvalidInputError(`no sha256 pin for ${ref.id} ${ref.version}`, [
        'add one under sources.overrides in the runbook',
      ]);
    const target = join(dir, mirrorFileName(ref));
    if (existsSync(target) && (await sha256File(target)) === pin) {
      out[ref.id] = target;
      continue;
    }
    rmSync(target, { force: true });
    let got = false;
    const errors: string[] = [];
    if (opts.download !== false && entry.url) {
      try {
        await download(expand(entry.url, ref.version), `${target}.partial`);
        await acceptIfPinned(`${target}.partial`, target, pin, ref);
        log(`${ref.id} ${ref.version}: downloaded and verified`);
        got = true;
      } catch (e) {
        if (e instanceof ChecksumError) throw e;
        errors.push(`official URL: ${(e as Error).message}`);
      }
    }
    if (!got && entry.debian) {
      try {
        await fromDebianSource(entry.debian.package, expand(entry.debian.orig, ref.version), target, pin, ref);
        log(`${ref.id} ${ref.version}: taken from Debian's source archive (${entry.debian.package}) and verified`);
        got = true;
      } catch (e) {
        if (e instanceof ChecksumError) throw e;
        errors.push(`Debian source archive: ${(e as Error).message}`);
      }
    }
    if (!got) throw new RunFailedError(`could not fetch ${ref.id} ${ref.version}`, errors);
    out[ref.id] = target;
  }
  return out;
}

export class ChecksumError extends RunFailedError {}

async function acceptIfPinned(partial: string, target: string, pin: string, ref: SourceRef): Promise<void> {
  const actual = await sha256File(partial);
  if (actual !== pin) {
    rmSync(partial, { force: true });
    throw new ChecksumError(`checksum mismatch for ${ref.id} ${ref.version}: the file was discarded`, [
      `expected sha256 ${pin}`,
      `got      sha256 ${actual}`,
    ]);
  }
  renameSync(partial, target);
}

async function download(url: string, dest: string): Promise<void> {
  const res = await fetch(url, { signal: AbortSignal.timeout(15_000), redirect: 'follow' });
  if (!res.ok || !res.body) throw new Error(`${url}: HTTP ${res.status}`);
  writeFileSync(dest, Buffer.from(await res.arrayBuffer()));
}

async function fromDebianSource(
  pkg: string,
  origName: string,
  target: string,
  pin: string,
  ref: SourceRef,
): Promise<void> {
  if (!(await commandExists('apt-get'))) throw new Error('apt-get is not available on this machine');
  await ensureDebSrc();
  // Ask for the Debian version whose upstream part is the one we need: with several suites in
  // deb-src (bookworm and trixie), a bare `apt-get source pkg` takes the newest, not ours.
  const upstream = (v: string) => v.replace(/^\d+:/, '').replace(/-[^-]*$/, '');
  const find = async (apt: string[]) => {
    const shown = await runLocal('apt-cache', [...apt, 'showsrc', '--', pkg], { allowFailure: true });
    const versions = [...shown.stdout.matchAll(/^Version: (\S+)$/gm)].map((m) => m[1]);
    return { versions, exact: versions.find((v) => upstream(v) === ref.version) };
  };
  let apt: string[] = [];
  let found = await find(apt);
  if (!found.exact) {
    // Not in this machine's suites (trixie's nginx on a bookworm machine): ask the other suites
    // through apt state of our own, leaving the machine's apt configuration alone.
    apt = await otherSuitesApt();
    const more = await find(apt);
    found = { versions: [...found.versions, ...more.versions], exact: more.exact };
  }
  const exact = found.exact;
  if (!exact)
    throw new Error(
      `Debian's source archive ` +
        `has ${pkg} ${[...new Set(found.versions.map(upstream))].join(', ') || '(none)'}, not ${ref.version}`,
    );
  const work = mkdtempSync(join(tmpdir(), 'ha-setup-src-'));
  try {
    // Only the orig tarball matters; a missing .dsc or diff (a superseded security upload) is not fatal.
    const r = await runLocal('apt-get', [...apt, 'source', '--download-only', '--', `${pkg}=${exact}`], {
      cwd: work,
      allowFailure: true,
      timeoutMs: 10 * 60_000,
    });
    const orig = readdirSync(work).find((f) => f === origName);
    if (!orig)
      throw new Error(
        `apt-get source ${pkg}=${exact} did not ` +
          `provide ${origName}${r.code !== 0 ? `: ${r.stderr.trim().split('\n').pop()}` : ''}`,
      );
    renameSync(join(work, orig), `${target}.partial`);
    await acceptIfPinned(`${target}.partial`, target, pin, ref);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

const DEB_SRC_FILE = '/etc/apt/sources.list.d/ha-setup-deb-src.sources';
/** Debian suites whose originals ha-setup's pins cover (nginx and keepalived of bookworm and trixie). */
const OTHER_SUITES = ['bookworm', 'trixie', 'bullseye'];

/**
 * apt-get/apt-cache options for a private apt state (under ~/.cache/ha-setup/apt-src) with deb-src
 * lines for OTHER_SUITES from the mirror this machine already uses; updated once a day.
 */
async function otherSuitesApt(): Promise<string[]> {
  const dir = join(process.env.XDG_CACHE_HOME ?? join(process.env.HOME ?? tmpdir(), '.cache'), 'ha-setup', 'apt-src');
  mkdirSync(join(dir, 'lists', 'partial'), { recursive: true });
  mkdirSync(join(dir, 'archives', 'partial'), { recursive: true });
  const listing = await runLocal('sh', [
    '-c',
    'cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null || true',
  ]);
  const mirror =
    /(?:^deb\s+(?:\[[^\]]*\]\s+)?|^URIs:\s*)(https?:\/\/\S+\/debian)\/?\s/m.exec(listing.stdout)?.[1] ??
    'http://deb.debian.org/debian';
  const keyring = '/usr/share/keyrings/debian-archive-keyring.gpg';
  const signed = existsSync(keyring) ? ` [signed-by=${keyring}]` : '';
  const list = `${OTHER_SUITES.map((suite) => `deb-src${signed} ${mirror} ${suite} main`).join('\n')}\n`;
  const listFile = join(dir, 'sources.list');
  const stale =
    !existsSync(listFile) ||
    readFileSync(listFile, 'utf8') !== list ||
    !existsSync(join(dir, 'updated')) ||
    Date.now() - Number(readFileSync(join(dir, 'updated'), 'utf8')) > 86_400_000;
  const opts = [
    `-o`,
    `Dir::Etc::SourceList=${listFile}`,
    '-o',
    'Dir::Etc::SourceParts=/dev/null',
    '-o',
    `Dir::State::Lists=${join(dir, 'lists')}`,
    '-o',
    `Dir::Cache=${dir}`,
    '-o',
    `Dir::Cache::Archives=${join(dir, 'archives')}`,
  ];
  if (stale) {
    writeFileSync(listFile, list);
    await runLocal('apt-get', [...opts, 'update'], { timeoutMs: 10 * 60_000 });
    writeFileSync(join(dir, 'updated'), String(Date.now()));
  }
  return opts;
}

/** `apt-get source` needs deb-src entries; add them (mirroring the deb entries) when there are none. */
export async function ensureDebSrc(): Promise<void> {
  const listing = await runLocal('sh', [
    '-c',
    'cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null || true',
  ]);
  if (/^\s*(deb-src\s|Types:.*\bdeb-src\b)/m.test(listing.stdout)) {
    // deb-src is configured; the index may still be missing, which `apt-get source` reports.
    const probe = await runLocal('apt-cache', ['showsrc', 'hello'], { allowFailure: true });
    if (probe.stdout.trim() !== '') return;
  } else {
    const deb822 = '/etc/apt/sources.list.d/debian.sources';
    if (existsSync(deb822)) {
      writeFileSync(DEB_SRC_FILE, readFileSync(deb822, 'utf8').replace(/^Types:\s*deb\s*$/gm, 'Types: deb-src'));
    } else if (existsSync('/etc/apt/sources.list')) {
      const lines = readFileSync('/etc/apt/sources.list', 'utf8')
        .split('\n')
        .filter((l) => /^deb\s/.test(l))
        .map((l) => l.replace(/^deb\s/, 'deb-src '));
      writeFileSync('/etc/apt/sources.list.d/ha-setup-deb-src.list', `${lines.join('\n')}\n`);
    } else {
      throw new Error('no apt sources found to derive deb-src entries from');
    }
  }
  await runLocal('apt-get', ['update'], { timeoutMs: 10 * 60_000 });
}
