import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { UnsupportedEnvironmentError } from '../errors.js';
import type { RunbookInput } from '../runbook/schema.js';
import type { LabPaths } from './config.js';
import type { LabState } from './lab.js';
import type { SourceRef } from '../sources/mirror.js';

/** What the lab installs: pinned versions whose originals are in Debian's source archive. */
export const LAB_SOURCES: SourceRef[] = [
  { id: 'nginx', version: '1.22.1' },
  { id: 'keepalived', version: '2.2.7' },
  { id: 'ngx-fancyindex', version: '0.5.2' },
  { id: 'lua-nginx-module', version: '0.10.23' },
  { id: 'ngx_devel_kit', version: '0.3.2' },
];

const versionOf = (id: string) => LAB_SOURCES.find((s) => s.id === id)!.version;

/**
 * OpenResty for the lab: rebuilt by OpenResty's own release script from the public git repositories
 * (not byte-identical to the official file, whose pin stays in the catalog for users), so it is named
 * by path with its own checksum in the runbook: a pin that names this file, shown by plan.
 */
export const LAB_OPENRESTY = {
  version: '1.27.1.2',
  file: 'openresty-1.27.1.2.tar.gz',
  sha256: 'fc31d0c6d3186e776578c419ef75ef12a9f75c8f5d10d705933649003488feaa',
};

/**
 * Where the rebuilt OpenResty tarball is: HA_SETUP_SHARED_SOURCES, else ../shared/sources beside the
 * checkout (src/lab and dist/lab are both two levels down). Refuses a missing file, saying which.
 */
export function labOpenrestyTarball(): string {
  const dir =
    process.env.HA_SETUP_SHARED_SOURCES ?? resolve(import.meta.dirname, '..', '..', '..', 'shared', 'sources');
  const file = join(dir, LAB_OPENRESTY.file);
  if (!existsSync(file)) throw new UnsupportedEnvironmentError(`${file} is missing (set HA_SETUP_SHARED_SOURCES)`);
  return file;
}

/** A complete runbook for the live lab: `ha-setup apply runbooks/lab.yaml` is the whole main job. */
export function labRunbook(state: LabState, paths: LabPaths, o: { openrestyTarball?: string } = {}): RunbookInput {
  const rb = nginxLabRunbook(state, paths);
  if (!o.openrestyTarball) return rb;
  // The wizard's defaults: OpenResty 1.27.1.2 in /usr/local/openresty (lua is part of it).
  return {
    ...rb,
    build: {
      flavor: 'openresty',
      version: LAB_OPENRESTY.version,
      prefix: '/usr/local/openresty',
      jobs: 'auto',
      modules: [],
    },
    sources: {
      ...rb.sources,
      overrides: {
        openresty: { version: LAB_OPENRESTY.version, path: o.openrestyTarball, sha256: LAB_OPENRESTY.sha256 },
      },
    },
  };
}

function nginxLabRunbook(state: LabState, paths: LabPaths): RunbookInput {
  return {
    version: 1,
    name: 'lab',
    ssh: { user: 'root', port: 22, identityFile: paths.key, knownHostsFile: paths.knownHosts },
    nodes: state.nodes.map((n, i) => ({
      host: n.ip,
      name: n.name,
      role: i === 0 ? 'master' : 'backup',
      priority: 100 - 10 * i,
    })),
    vrrp: {
      vip: `${state.vip}/${state.prefix}`,
      interface: 'host0',
      virtualRouterId: 51,
      version: 3,
      advertInt: 0.1,
      unicast: false,
      preempt: true,
    },
    build: {
      flavor: 'nginx',
      version: versionOf('nginx'),
      prefix: '/usr/local/nginx',
      jobs: 'auto',
      // The pinned lua-nginx-module 0.10.23 matches bookworm's lua-resty-core and LuaJIT2 packages;
      // trixie ships newer ones (and no libluajit2-5.1-dev), so its lab builds without lua.
      modules: state.options.distro === 'bookworm' ? ['fancyindex', 'lua'] : ['fancyindex'],
    },
    keepalived: {
      version: versionOf('keepalived'),
      prefix: '/usr/local/keepalived',
      install: 'source',
      check: { interval: 1, fall: 2, rise: 2, weight: 0 },
    },
    site: { listen: 80, upstreams: [] },
    sources: {
      mirror: paths.sourcesDir,
      overrides: {
        'ngx-fancyindex': { version: versionOf('ngx-fancyindex') },
        ...(state.options.distro === 'bookworm'
          ? {
              'lua-nginx-module': { version: versionOf('lua-nginx-module') },
              ngx_devel_kit: { version: versionOf('ngx_devel_kit') },
            }
          : {}),
      },
    },
    verify: { failover: true, maxDowntimeMs: 1000 },
  };
}
