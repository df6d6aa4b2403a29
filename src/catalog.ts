import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { dataDir } from './paths.js';

export type Flavor = 'openresty' | 'nginx';
export type PackageManager = 'apt' | 'yum' | 'dnf';

export interface CorePatch {
  from: string;
  below: string;
  file: string;
}

export interface ModuleEntry {
  id: string;
  title: string;
  description: string;
  flavors: Flavor[];
  bundledIn: Flavor[];
  sources: string[];
  addModules: string[];
  packages: Record<PackageManager, string[]>;
  patches?: CorePatch[];
  maxNginxBelow?: string;
  /** Compiler options the module needs; merged into the one --with-cc-opt configure honours. */
  ccOpt?: string[];
  notes?: string;
  /** "<flavor> <version>" builds in which a lab suite shows the module working by a request. */
  provenOn?: string[];
}

/** Whether the module is shown working on real hosts with this flavor and version (else golden plans only). */
export function moduleProven(mod: ModuleEntry, flavor: Flavor, version: string): boolean {
  return (mod.provenOn ?? []).includes(`${flavor} ${version}`);
}

export interface GitRef {
  /** Tag, branch or commit to fetch. */
  ref: string;
  /** The commit it must resolve to. */
  commit: string;
}

export interface SourceEntry {
  url?: string;
  git?: string;
  /** For git sources: per version, what to fetch and the commit it is held to. */
  refs?: Record<string, GitRef>;
  dir: string;
  defaultVersion?: string;
  debian?: { package: string; orig: string };
  pins: Record<string, string>;
}

let modulesCache: ModuleEntry[] | undefined;
let sourcesCache: Record<string, SourceEntry> | undefined;

export function moduleCatalog(): ModuleEntry[] {
  modulesCache ??= JSON.parse(readFileSync(join(dataDir, 'modules.json'), 'utf8')).modules as ModuleEntry[];
  return modulesCache;
}

export function moduleById(id: string): ModuleEntry | undefined {
  return moduleCatalog().find((m) => m.id === id);
}

export function sourceCatalog(): Record<string, SourceEntry> {
  sourcesCache ??= JSON.parse(readFileSync(join(dataDir, 'sources.json'), 'utf8')).sources as Record<
    string,
    SourceEntry
  >;
  return sourcesCache;
}

/** Compare dotted numeric versions: negative when a < b. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** The nginx core version a flavor/version pair builds: OpenResty 1.27.1.2 bundles nginx 1.27.1. */
export function nginxCoreVersion(flavor: Flavor, version: string): string {
  return flavor === 'openresty' ? version.split('.').slice(0, 3).join('.') : version;
}

export function corePatchFor(mod: ModuleEntry, nginxVersion: string): CorePatch | undefined {
  return mod.patches?.find(
    (p) => compareVersions(nginxVersion, p.from) >= 0 && compareVersions(nginxVersion, p.below) < 0,
  );
}

/** Why a module cannot be built for this flavor and version, or undefined when it can. */
export function moduleUnavailableReason(mod: ModuleEntry, flavor: Flavor, version: string): string | undefined {
  const core = nginxCoreVersion(flavor, version);
  if (!mod.flavors.includes(flavor)) return `not available for the ${flavor} flavor`;
  if (mod.maxNginxBelow && compareVersions(core, mod.maxNginxBelow) >= 0) {
    return `does not compile with nginx ${core} (needs nginx < ${mod.maxNginxBelow}${
      flavor === 'openresty' ? '; every current OpenResty is newer' : ''
    })`;
  }
  if (mod.patches && !corePatchFor(mod, core)) {
    return (
      `needs a core patch and the catalog has none ` +
      `for nginx ${core}; supported nginx versions: ${mod.patches.map((p) => `${p.from}..<${p.below}`).join(', ')}`
    );
  }
  return undefined;
}

/** One line for the wizard: where the module comes from and what it needs. */
export function moduleOrigin(mod: ModuleEntry, flavor: Flavor, pm: PackageManager = 'apt'): string {
  if (mod.bundledIn.includes(flavor)) return 'bundled with OpenResty';
  const parts = mod.sources.map((id) => {
    const s = sourceCatalog()[id];
    const v = s?.defaultVersion;
    if (s?.git) {
      const repo = s.git.replace(/^https:\/\/github\.com\//, '').replace(/\.git$/, '');
      return `git ${repo}${v && s.refs?.[v] ? ` @ ${s.refs[v].commit.slice(0, 7)}` : ''}`;
    }
    return `tarball ${id}${v ? ` ${v}` : ''}`;
  });
  const needs = [
    ...(mod.packages[pm] ?? []).filter((p) => !p.startsWith('lua-resty-')),
    ...(mod.patches ? ['a core patch'] : []),
  ];
  return `${parts.join(' + ')}${needs.length ? `; needs ${needs.join(', ')}` : ''}`;
}
