import { moduleById, nginxCoreVersion, sourceCatalog, type ModuleEntry } from '../catalog.js';
import type { Runbook } from './schema.js';

// What follows from the runbook alone (no host, no engine): which modules and sources a build
// needs. Used by the steps, by plan and validate, and by the source preparation.

export function selectedModules(rb: Runbook): ModuleEntry[] {
  return rb.build.modules.map((id) => moduleById(id)).filter((m): m is ModuleEntry => Boolean(m));
}

/** Modules whose source must be shipped (not bundled with the flavor). */
export function shippedModules(rb: Runbook): ModuleEntry[] {
  return selectedModules(rb).filter((m) => !m.bundledIn.includes(rb.build.flavor));
}

/**
 * Lua libraries lua-nginx-module needs (it refuses to start without resty.core). Debian ships them
 * as packages (unpacked by the packages step); elsewhere they are sources like any module, pinned to
 * the commits matching the pinned lua-nginx-module 0.10.23.
 */
export const LUA_RESTY_SOURCES = ['lua-resty-core', 'lua-resty-lrucache'];

export function needsLuaRestySources(rb: Runbook, family: string | undefined): boolean {
  return rb.build.flavor === 'nginx' && rb.build.modules.includes('lua') && family !== undefined && family !== 'debian';
}

/**
 * Source ids and versions the plan needs: the core, keepalived (from source) and module sources; on
 * a node of `family` also what only that family needs (without a family: what every node needs).
 */
export function requiredSources(rb: Runbook, family?: string): Array<{ id: string; version: string }> {
  const overrides = rb.sources.overrides;
  const version = (id: string, fallback?: string) =>
    overrides[id]?.version ?? fallback ?? sourceCatalog()[id]?.defaultVersion ?? '';
  const out: Array<{ id: string; version: string }> = [{ id: rb.build.flavor, version: rb.build.version }];
  if (rb.keepalived.install === 'source') out.push({ id: 'keepalived', version: rb.keepalived.version });
  for (const m of shippedModules(rb)) for (const s of m.sources) out.push({ id: s, version: version(s) });
  if (needsLuaRestySources(rb, family)) for (const s of LUA_RESTY_SOURCES) out.push({ id: s, version: version(s) });
  return out;
}

export function nginxVersion(rb: Runbook): string {
  return nginxCoreVersion(rb.build.flavor, rb.build.version);
}

/** ha-setup's gateway Lua runs when an upstream comes from Consul or the site has a gray release. */
export function gatewayEnabled(rb: Runbook): boolean {
  return rb.site.upstreams.some((u) => u.discovery) || rb.site.gray !== undefined;
}
