import { homedir } from 'node:os';
import { join } from 'node:path';
import { InvalidInputError } from '../errors.js';
import { intToIp, networkOf, parseCidr } from '../net.js';

export const LAB_COMMENT = 'ha-setup-lab';
export const LAB_BRIDGE = 'halab0';
export const LAB_DISTROS = ['bookworm', 'trixie'] as const;
export type LabDistro = (typeof LAB_DISTROS)[number];
/** Bump when the base image customisation changes, so stale cached tarballs are not reused. */
export const BASE_IMAGE_REVISION = 4;
/** A non-root user with passwordless sudo exists on every lab node (tests the sudo path). */
export const LAB_SUDO_USER = 'hauser';

export interface LabOptions {
  nodes: number;
  distro: LabDistro;
  subnet: string;
}

export const DEFAULT_LAB: LabOptions = { nodes: 2, distro: 'bookworm', subnet: '10.213.0.0/24' };

export interface LabNode {
  name: string;
  machine: string;
  ip: string;
  dir: string;
}

export interface LabPaths {
  stateDir: string;
  stateFile: string;
  nodesDir: string;
  key: string;
  knownHosts: string;
  cacheDir: string;
  sourcesDir: string;
  /** Compiler cache shared by every node of every lab (undefined: off, HA_SETUP_LAB_CCACHE=0). */
  ccacheDir: string | undefined;
}

export function labPaths(env: NodeJS.ProcessEnv = process.env): LabPaths {
  const stateDir = env.HA_SETUP_LAB_DIR ?? '/var/lib/ha-setup-lab';
  const cacheDir = env.HA_SETUP_CACHE_DIR ?? join(homedir(), '.cache', 'ha-setup');
  return {
    stateDir,
    stateFile: join(stateDir, 'state.json'),
    nodesDir: join(stateDir, 'nodes'),
    key: join(stateDir, 'id_ed25519'),
    knownHosts: join(stateDir, 'known_hosts'),
    cacheDir: join(cacheDir, 'lab'),
    sourcesDir: join(cacheDir, 'sources'),
    ccacheDir: env.HA_SETUP_LAB_CCACHE === '0' ? undefined : join(cacheDir, 'ccache'),
  };
}

export interface LabAddressing {
  bridgeIp: string;
  prefix: number;
  vip: string;
  nodes: LabNode[];
}

/** Bridge .1, nodes .11, .12, .13, VIP .100 of the lab subnet. */
export function labAddressing(opts: LabOptions, paths: LabPaths): LabAddressing {
  const cidr = parseCidr(opts.subnet);
  if (!cidr || cidr.prefix > 24)
    throw new InvalidInputError(`--subnet ${opts.subnet}: give an IPv4 subnet of /24 or larger, e.g. 10.213.0.0/24`);
  if (!Number.isInteger(opts.nodes) || opts.nodes < 2 || opts.nodes > 3)
    throw new InvalidInputError(`--nodes ${opts.nodes}: the lab has 2 or 3 nodes`);
  if (!LAB_DISTROS.includes(opts.distro))
    throw new InvalidInputError(`--distro ${opts.distro}: choose ${LAB_DISTROS.join(' or ')}`);
  const net = networkOf(cidr);
  return {
    bridgeIp: intToIp(net + 1),
    prefix: cidr.prefix,
    vip: intToIp(net + 100),
    nodes: Array.from({ length: opts.nodes }, (_, i) => ({
      name: `node${i + 1}`,
      machine: `halab-node${i + 1}`,
      ip: intToIp(net + 11 + i),
      dir: join(paths.nodesDir, `node${i + 1}`),
    })),
  };
}
