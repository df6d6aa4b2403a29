import type { Problem } from '../errors.js';
import { sourceSpec } from '../sources/spec.js';
import { requiredSources } from './derived.js';
import type { Runbook } from './schema.js';

// Rules that depend on more than the runbook's own fields: the OS release of the nodes and the
// source pins of the catalog. One set, run by `validate`, `plan --offline --os` and apply's
// preflight alike, so `validate` never passes what apply refuses.

export const RELEASES = ['debian12', 'debian13', 'ubuntu22', 'ubuntu24', 'el7', 'el8', 'el9'] as const;

/** What cannot work on nodes of `release`, as problems naming the field that decides it. */
export function releaseProblems(rb: Runbook, release: string): Problem[] {
  const out: Problem[] = [];
  const el = release.startsWith('el');
  const luaOnNginx = rb.build.flavor === 'nginx' && rb.build.modules.includes('lua');
  if (luaOnNginx && release === 'el7') {
    out.push({
      path: 'build.modules',
      message:
        'lua on the nginx flavor needs LuaJIT 2.1 and EPEL 7 ships 2.0 (el7); ' +
        'use the openresty flavor (it bundles LuaJIT 2.1) or a newer EL release',
    });
  }
  if (rb.build.flavor === 'nginx' && el) {
    const i = rb.site.upstreams.findIndex((u) => u.discovery);
    if (i >= 0)
      out.push({
        path: `site.upstreams[${i}].discovery`,
        message:
          `on ${release} the nginx flavor has no lua-cjson for LuaJIT; use the openresty flavor (it ` +
          `bundles cjson) on EL nodes`,
      });
    else if (rb.site.gray)
      out.push({
        path: 'site.gray',
        message:
          `on ${release} the nginx flavor has no lua-cjson for LuaJIT; use the openresty flavor (it ` +
          `bundles cjson) on EL nodes`,
      });
  }
  return out;
}

/**
 * Sources without a sha256 or commit pin: apply refuses them unless --trust-on-first-download,
 * which records the pin in the runbook. `families`: the nodes' OS families (some sources are one
 * family's only); without, every family's.
 */
export function unpinnedSources(
  rb: Runbook,
  families: string[] = ['debian', 'el'],
): Array<{ id: string; version: string; where: string }> {
  const refs = [requiredSources(rb), ...families.map((f) => requiredSources(rb, f))].flat();
  const seen = new Set<string>();
  const out: Array<{ id: string; version: string; where: string }> = [];
  for (const ref of refs) {
    if (seen.has(ref.id)) continue;
    seen.add(ref.id);
    const spec = sourceSpec(rb, ref);
    if (spec.kind === 'git' ? spec.commit === undefined : spec.sha256 === undefined) {
      out.push({
        id: ref.id,
        version: ref.version,
        where: spec.kind === 'git' ? `git ${spec.url}` : (spec.url ?? spec.path ?? 'no URL'),
      });
    }
  }
  return out;
}

export function pinProblems(rb: Runbook): Problem[] {
  return unpinnedSources(rb).map((s) => ({
    path: `sources.overrides.${s.id}`,
    message:
      `${s.id} ${s.version} has no pin (${s.where}); set sha256 (or commit for git) to what you reviewed, ` +
      `or run \`ha-setup apply --trust-on-first-download\` once to record it`,
  }));
}
