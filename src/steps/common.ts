import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileHasSha256 } from '../engine/checks.js';
import type { Facts } from '../engine/facts.js';
import { osProfile } from '../engine/os-profile.js';
import { substituteSecrets } from '../engine/executor.js';
import type { CheckContext, PlanContext, PlannedFile } from '../engine/types.js';
import { dataDir } from '../paths.js';
import { shq } from '../shell.js';
import { layout } from '../runbook/layout.js';
import { gatewayEnabled } from '../runbook/derived.js';

export { layout };
export {
  gatewayEnabled,
  LUA_RESTY_SOURCES,
  needsLuaRestySources,
  nginxVersion,
  requiredSources,
  selectedModules,
  shippedModules,
} from '../runbook/derived.js';

export function keepalivedEnvFile(f: Facts): string {
  return osProfile(f).keepalivedEnvFile;
}

interface PackageTable {
  /** Tools the preflight's network probes need (tcpdump for VRRP adverts, arping for the VIP). */
  preflight: Record<string, string[]>;
  build: Record<string, string[]>;
  keepalived: Record<string, string[]>;
  runtime: Record<string, string[]>;
  keepalivedPackage: Record<string, string[]>;
  tls: Record<string, string[]>;
  acme: Record<string, string[]>;
  /** ping, for the vrrp.witness check. */
  witness: Record<string, string[]>;
  /** arping, for the split-brain watch. */
  splitWatch: Record<string, string[]>;
}
let packageTable: PackageTable | undefined;
export function packages(): PackageTable {
  packageTable ??= JSON.parse(readFileSync(join(dataDir, 'packages.json'), 'utf8')) as PackageTable;
  return packageTable;
}

/** A release-specific list (el9) wins over the package manager's list. */
export function packagesFor(group: keyof PackageTable, f: Facts): string[] {
  const t = packages()[group];
  return t[f.release] ?? t[f.packageManager] ?? [];
}

export function luajitPaths(f: Facts): { lib: string; inc: string } {
  return osProfile(f).luajit(f.arch);
}

export function luaPackagePath(pc: PlanContext): string | undefined {
  const rb = pc.runbook;
  const L = layout(rb);
  // The operator's Lua (site.include.lua) first, so its modules are found before anything else.
  // $prefix (nginx's -p) rather than the absolute conf dir: nginx-config tests the staged copy in a
  // prefix of its own, and its Lua must be the staged one.
  const site =
    (rb.site.include.lua.length > 0 ? '$prefix/conf/ha-lua/?.lua;$prefix/conf/ha-lua/?/init.lua;' : '') +
    (gatewayEnabled(rb) ? '$prefix/conf/ha-gateway/?.lua;' : '');
  if (rb.build.flavor === 'openresty') return site ? `${site};` : undefined;
  if (!rb.build.modules.includes('lua')) return undefined;
  const dir = L.luaDir;
  return `${site}${osProfile(pc.facts).restyLuaPath(dir)}`;
}

/**
 * lua_package_cpath for the gateway on the nginx flavor: Debian's lua-cjson unpacked next to
 * lua-resty-core (OpenResty bundles cjson).
 */
export function luaPackageCpath(pc: PlanContext): string | undefined {
  const rb = pc.runbook;
  if (rb.build.flavor !== 'nginx' || !gatewayEnabled(rb)) return undefined;
  const triplet = pc.facts.arch === 'aarch64' ? 'aarch64-linux-gnu' : 'x86_64-linux-gnu';
  return `${layout(rb).luaDir}/usr/lib/${triplet}/lua/5.1/?.so;;`;
}

/** The TCP ports the site listens on: HTTP, and HTTPS with site.tls. */
export function sitePorts(rb: PlanContext['runbook']): number[] {
  return rb.site.tls ? [rb.site.listen, rb.site.tls.listen] : [rb.site.listen];
}

/** Shell check that every planned file on the host has exactly the planned content. */
export function filesMatchScript(files: PlannedFile[], contentFor: (f: PlannedFile) => string): string {
  const lines = files.map((f) => {
    const sum = createHash('sha256').update(contentFor(f)).digest('hex');
    return `${fileHasSha256(f.path, sum)} || { echo ${shq(`differs: ${f.path}`)}; exit 1; }`;
  });
  return lines.join('\n') || 'true';
}

/** The default check for steps that only write files: every file on the host matches. */
export function filesMatchCheck(ctx: CheckContext): string {
  return filesMatchScript(ctx.plan.files, (f) => substituteSecrets(f.content, ctx.secrets));
}

/** A check that passes when every one of these scripts exits 0 (each in its own subshell: an `exit` ends only it). */
export function allOf(...scripts: string[]): string {
  return scripts.map((s) => `(\n${s.trim() || 'true'}\n) || exit 1`).join('\n');
}
