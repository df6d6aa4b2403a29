import type { Runbook } from '../runbook/schema.js';
import { secretRef } from '../engine/types.js';

// The third-party modules' part of the site (site.conf.njk), from the runbook's module settings:
// one view object, so the template only places what is decided here.

const SECONDS: Record<string, number> = {
  ms: 0.001,
  s: 1,
  m: 60,
  h: 3600,
  d: 86400,
  w: 604800,
  M: 2592000,
  y: 31536000,
};

/** An nginx time (30s, 10m, 7d) in whole seconds. Pure. */
export function nginxTimeSeconds(t: string): number {
  const m = /^(\d+)(ms|s|m|h|d|w|M|y)$/.exec(t);
  if (!m) throw new Error(`not an nginx time: ${t}`);
  return Math.max(0, Math.round(Number(m[1]) * SECONDS[m[2]]));
}

/** The cache zone locations cache in (proxy_cache_path keys_zone). */
export const CACHE_ZONE = 'ha_cache';

export function moduleView(rb: Runbook) {
  const mods = new Set(rb.build.modules);
  // nginx-sticky-module-ng where it is built (nginx < 1.23); otherwise the same cookie, set by nginx
  // and hashed consistently, so every node (and every VIP holder) sends a client to the same server.
  const stickyModule = mods.has('sticky');
  const upstreams = rb.site.upstreams.map((u) => ({
    ...u,
    stickyModule: u.sticky !== undefined && stickyModule,
    stickyHash: u.sticky !== undefined && !stickyModule,
    stickyMaxAge: u.sticky?.expires ? nginxTimeSeconds(u.sticky.expires) : undefined,
    checkSend: u.check?.type === 'http' ? `${u.check.method} ${u.check.path} HTTP/1.0\\r\\n\\r\\n` : undefined,
  }));
  const hasCheck = mods.has('upstream-check') && rb.site.upstreams.some((u) => u.check);
  const ldap = rb.site.ldap.map((s) => ({
    ...s,
    // Substituted at apply time; never in the runbook, the plan or the records.
    password: s.bindPasswordEnv ? secretRef(s.bindPasswordEnv) : undefined,
    group: typeof s.require === 'object' ? s.require.group : undefined,
  }));
  const stickyFor = new Map(upstreams.filter((u) => u.stickyHash).map((u) => [u.name, u]));
  const locations = rb.site.locations.map((l) => ({
    ...l,
    sticky: l.upstream ? stickyFor.get(l.upstream) : undefined,
    purge: l.cache !== undefined && mods.has('cache-purge'),
  }));
  return {
    upstreams,
    locations,
    ldap,
    cache: rb.site.cache,
    cacheZone: CACHE_ZONE,
    checkStatus: hasCheck ? (rb.site.checkStatus ?? { path: '/check_status', allow: ['127.0.0.1'] }) : undefined,
    vts: mods.has('vts') ? (rb.site.vts ?? { path: '/vts', allow: ['127.0.0.1'] }) : undefined,
    /** The site file holds an LDAP bind password: root only (nginx's master reads it before dropping privileges). */
    secret: ldap.some((s) => s.password),
  };
}
