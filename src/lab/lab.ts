import { spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmdirSync,
  rmSync,
  writeFileSync,
  openSync,
  closeSync,
  renameSync,
  symlinkSync,
} from 'node:fs';
import { platform } from 'node:os';
import { join } from 'node:path';
import { InvalidInputError, RunFailedError, UnsupportedEnvironmentError } from '../errors.js';
import { commandExists, runLocal } from '../local.js';
import { pollUntil } from '../poll.js';
import { shq } from '../shell.js';
import {
  BASE_IMAGE_REVISION,
  LAB_BRIDGE,
  LAB_COMMENT,
  LAB_SUDO_USER,
  labAddressing,
  labPaths,
  type LabNode,
  type LabDistro,
  type LabOptions,
  type LabPaths,
} from './config.js';

export interface LabState {
  options: LabOptions;
  bridge: string;
  bridgeIp: string;
  prefix: number;
  vip: string;
  /** ip_forward before the lab set it, restored by `lab down`. */
  forwardingBefore: string;
  nodes: Array<LabNode & { pid?: number }>;
  createdAt: string;
}

export type Log = (line: string) => void;

// Tools the lab needs on the control machine, and the Debian package that brings each.
const HOST_TOOLS: Array<[string, string]> = [
  ['debootstrap', 'debootstrap'],
  ['systemd-nspawn', 'systemd-container'],
  ['iptables', 'iptables'],
  ['ip', 'iproute2'],
  ['ssh', 'openssh-client'],
  ['ssh-keygen', 'openssh-client'],
];

export function assertLabHost(): void {
  if (platform() !== 'linux')
    throw new UnsupportedEnvironmentError('the lab needs Linux (systemd-nspawn, bridges, iptables)');
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new UnsupportedEnvironmentError('the lab needs root (it creates a bridge, NAT rules and containers)', [
      'run it as root, e.g. sudo ha-setup lab up',
    ]);
  }
}

export async function ensureHostTools(log: Log): Promise<void> {
  const missing: string[] = [];
  for (const [cmd, pkg] of HOST_TOOLS) if (!(await commandExists(cmd)) && !missing.includes(pkg)) missing.push(pkg);
  if (missing.length === 0) return;
  const installCmd = `apt-get update && apt-get install -y ${missing.join(' ')}`;
  if (!(await commandExists('apt-get'))) {
    throw new UnsupportedEnvironmentError(`the lab needs ${missing.join(', ')}`, [
      `install them, e.g. on Debian: ${installCmd}`,
    ]);
  }
  log(`installing host tools: ${missing.join(' ')}`);
  await runLocal('apt-get', ['update'], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  await runLocal('apt-get', ['install', '-y', '--no-install-recommends', ...missing], {
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
}

export function readState(paths: LabPaths): LabState | undefined {
  if (!existsSync(paths.stateFile)) return undefined;
  try {
    return JSON.parse(readFileSync(paths.stateFile, 'utf8')) as LabState;
  } catch {
    return undefined;
  }
}

function writeState(paths: LabPaths, state: LabState): void {
  mkdirSync(paths.stateDir, { recursive: true });
  writeFileSync(`${paths.stateFile}.tmp`, JSON.stringify(state, null, 2));
  renameSync(`${paths.stateFile}.tmp`, paths.stateFile);
}

function pidAlive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('systemd-nspawn');
  } catch {
    return false;
  }
}

export const LAB_ENV_MARK = 'HA_SETUP_LAB_NODE';

/**
 * The init process of every lab container, found by the environment variable nspawn passes it.
 * A killed nspawn leaves its container running (reparented to PID 1); killing the init of a PID
 * namespace ends everything in it.
 */
export function labContainerInits(): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (
        readFileSync(`/proc/${entry}/environ`, 'utf8')
          .split('\0')
          .some((v) => v.startsWith(`${LAB_ENV_MARK}=`))
      )
        pids.push(Number(entry));
    } catch {
      // process went away
    }
  }
  return pids;
}

/** Every nspawn process that runs a lab machine, found from /proc, so a lost state file leaves nothing behind. */
function labNspawnPids(): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (cmd[0]?.endsWith('systemd-nspawn') && cmd.some((a) => a.startsWith('--machine=halab-')))
        pids.push(Number(entry));
    } catch {
      // process went away
    }
  }
  return pids;
}

function sshArgs(paths: LabPaths, ip: string, user = 'root', batch = true): string[] {
  return [
    '-i',
    paths.key,
    '-o',
    `UserKnownHostsFile=${paths.knownHosts}`,
    '-o',
    'StrictHostKeyChecking=yes',
    ...(batch ? ['-o', 'BatchMode=yes'] : []),
    '-o',
    'ConnectTimeout=3',
    '-o',
    'LogLevel=ERROR',
    `${user}@${ip}`,
  ];
}

export async function labSsh(
  paths: LabPaths,
  ip: string,
  command: string,
  opts: { user?: string; allowFailure?: boolean; timeoutMs?: number } = {},
) {
  return runLocal('ssh', [...sshArgs(paths, ip, opts.user), command], {
    allowFailure: opts.allowFailure,
    timeoutMs: opts.timeoutMs ?? 120_000,
  });
}

// ---------------------------------------------------------------- base image

async function ensureBaseImage(opts: LabOptions, paths: LabPaths, log: Log): Promise<string> {
  const tarball = join(paths.cacheDir, `base-${opts.distro}-r${BASE_IMAGE_REVISION}.tar`);
  if (existsSync(tarball)) return tarball;
  mkdirSync(paths.cacheDir, { recursive: true });
  const build = join(paths.cacheDir, `build-${opts.distro}`);
  rmSync(build, { recursive: true, force: true });
  log(`building the ${opts.distro} base image with debootstrap (about a minute, cached in ${paths.cacheDir})`);
  const include = [
    'systemd',
    'systemd-sysv',
    'dbus',
    'openssh-server',
    'iproute2',
    'procps',
    'sudo',
    'curl',
    'ca-certificates',
    'tcpdump',
    'psmisc',
    'less',
    'xz-utils',
    'rsyslog',
    'logrotate',
    'iputils-ping',
    'iputils-arping',
    'ccache',
  ];
  await runLocal(
    'debootstrap',
    ['--variant=minbase', `--include=${include.join(',')}`, opts.distro, build, 'http://deb.debian.org/debian'],
    { timeoutMs: 20 * 60_000 },
  );
  // networkd gives the node its static address; the per-lab sudo user exercises the non-root path.
  await runLocal('systemctl', [`--root=${build}`, 'enable', 'systemd-networkd.service']);
  await runLocal('chroot', [build, 'useradd', '--create-home', '--shell', '/bin/bash', LAB_SUDO_USER]);
  writeFileSync(join(build, 'etc', 'sudoers.d', LAB_SUDO_USER), `${LAB_SUDO_USER} ALL=(ALL) NOPASSWD: ALL\n`, {
    mode: 0o440,
  });
  for (const f of readdirSync(join(build, 'etc', 'ssh')))
    if (f.startsWith('ssh_host_')) rmSync(join(build, 'etc', 'ssh', f));
  rmSync(join(build, 'etc', 'machine-id'), { force: true });
  await runLocal('tar', ['-C', build, '-cf', `${tarball}.partial`, '.']);
  renameSync(`${tarball}.partial`, tarball);
  rmSync(build, { recursive: true, force: true });
  return tarball;
}

async function prepareNode(
  node: LabNode,
  tarball: string,
  addr: { bridgeIp: string; prefix: number },
  paths: LabPaths,
): Promise<string> {
  rmSync(node.dir, { recursive: true, force: true });
  mkdirSync(node.dir, { recursive: true });
  await runLocal('tar', ['-C', node.dir, '-xf', tarball]);
  const etc = join(node.dir, 'etc');
  writeFileSync(join(etc, 'hostname'), `${node.name}\n`);
  writeFileSync(join(etc, 'hosts'), `127.0.0.1 localhost\n127.0.1.1 ${node.name}\n`);
  writeFileSync(join(etc, 'machine-id'), `${randomHex(32)}\n`);
  // 10- sorts before the distro's 80-container-host0.network, which would otherwise win.
  mkdirSync(join(etc, 'systemd', 'network'), { recursive: true });
  writeFileSync(
    join(etc, 'systemd', 'network', '10-host0.network'),
    `[Match]\nName=host0\n\n[Network]\nAddress=${node.ip}/${addr.prefix}\nGateway=${addr.bridgeIp}\n` +
      'LinkLocalAddressing=no\nIPv6AcceptRA=no\n',
  );
  rmSync(join(etc, 'resolv.conf'), { force: true });
  writeFileSync(join(etc, 'resolv.conf'), hostNameservers());
  await runLocal('ssh-keygen', ['-A', '-f', node.dir]);
  if (paths.ccacheDir) useCompilerCache(node.dir);
  const pub = readFileSync(join(`${paths.key}.pub`), 'utf8');
  for (const [home, owner] of [
    ['root', '0:0'],
    [join('home', LAB_SUDO_USER), LAB_SUDO_USER],
  ] as const) {
    const sshDir = join(node.dir, home, '.ssh');
    mkdirSync(sshDir, { recursive: true, mode: 0o700 });
    writeFileSync(join(sshDir, 'authorized_keys'), pub, { mode: 0o600 });
    if (owner !== '0:0') await runLocal('chroot', [node.dir, 'chown', '-R', `${owner}:${owner}`, `/${home}/.ssh`]);
  }
  const hostKey = readFileSync(join(etc, 'ssh', 'ssh_host_ed25519_key.pub'), 'utf8')
    .trim()
    .split(/\s+/)
    .slice(0, 2)
    .join(' ');
  return `${node.ip} ${hostKey}`;
}

export const LAB_CCACHE_MOUNT = '/var/cache/ha-setup-ccache';

/**
 * Lab nodes compile through ccache (masquerading as cc/gcc in /usr/local/bin, ahead of /usr/bin
 * in PATH), with one cache on the host shared by all nodes and all labs: the same nginx or
 * keepalived build on a new lab is a cache hit. What ha-setup runs on the node is unchanged.
 */
function useCompilerCache(root: string): void {
  writeFileSync(
    join(root, 'etc', 'ccache.conf'),
    `cache_dir = ${LAB_CCACHE_MOUNT}\nmax_size = 4G\n# builds of the same sources in another directory still ` +
      `hit\nhash_dir = false\n`,
  );
  const bin = join(root, 'usr', 'local', 'bin');
  mkdirSync(bin, { recursive: true });
  for (const name of ['cc', 'gcc', 'c++', 'g++']) {
    rmSync(join(bin, name), { force: true });
    symlinkSync('/usr/bin/ccache', join(bin, name));
  }
}

function hostNameservers(): string {
  const lines = existsSync('/etc/resolv.conf') ? readFileSync('/etc/resolv.conf', 'utf8').split('\n') : [];
  // A loopback resolver on the host (systemd-resolved's 127.0.0.53) is not reachable from a node.
  const servers = lines.filter((l) => /^nameserver\s+/.test(l) && !/\s127\.|\s::1/.test(l));
  return `${(servers.length > 0 ? servers : ['nameserver 1.1.1.1']).join('\n')}\n`;
}

function randomHex(n: number): string {
  return Array.from({ length: n }, () => Math.floor(Math.random() * 16).toString(16)).join('');
}

// ---------------------------------------------------------------- network

async function createBridge(bridge: string, ip: string, prefix: number): Promise<void> {
  await runLocal('ip', ['link', 'add', bridge, 'type', 'bridge']);
  await runLocal('ip', ['addr', 'add', `${ip}/${prefix}`, 'dev', bridge]);
  await runLocal('ip', ['link', 'set', bridge, 'up']);
}

const natRules = (subnet: string, bridge: string): Array<[string, string, string[]]> => [
  ['nat', 'POSTROUTING', ['-s', subnet, '!', '-o', bridge, '-j', 'MASQUERADE']],
  ['filter', 'FORWARD', ['-i', bridge, '-j', 'ACCEPT']],
  ['filter', 'FORWARD', ['-o', bridge, '-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED', '-j', 'ACCEPT']],
];

async function addNat(subnet: string, bridge: string): Promise<void> {
  for (const [table, chain, rule] of natRules(subnet, bridge)) {
    await runLocal('iptables', ['-w', '-t', table, '-I', chain, ...rule, '-m', 'comment', '--comment', LAB_COMMENT]);
  }
}

/** Deletes every rule carrying the lab comment, including ones from a lab whose state was lost. */
async function removeLabRules(): Promise<number> {
  let removed = 0;
  for (const table of ['nat', 'filter']) {
    const listing = await runLocal('iptables', ['-w', '-t', table, '-S'], { allowFailure: true });
    for (const line of listing.stdout.split('\n')) {
      if (!line.startsWith('-A ') || !line.includes(LAB_COMMENT)) continue;
      const args = splitIptablesRule(line.slice(3));
      await runLocal('iptables', ['-w', '-t', table, '-D', ...args], { allowFailure: true });
      removed++;
    }
  }
  return removed;
}

/** `iptables -S` quotes arguments with spaces; undo that quoting. */
function splitIptablesRule(rule: string): string[] {
  const out: string[] = [];
  const re = /"([^"]*)"|(\S+)/g;
  for (const m of rule.matchAll(re)) out.push(m[1] ?? m[2]);
  return out;
}

export async function labVeths(): Promise<string[]> {
  const r = await runLocal('ip', ['-o', 'link', 'show'], { allowFailure: true });
  return r.stdout
    .split('\n')
    .map((l) => /^\d+:\s+(vb-halab-[^@:\s]+)/.exec(l)?.[1])
    .filter((v): v is string => Boolean(v));
}

async function bridgeExists(bridge: string): Promise<boolean> {
  return (await runLocal('ip', ['link', 'show', bridge], { allowFailure: true })).code === 0;
}

// ---------------------------------------------------------------- boot and wait

/**
 * This process's cgroup directories in the hierarchies that track processes for systemd: the unified
 * one (cgroup v2, pure or hybrid) and the legacy `name=systemd` one where it is mounted.
 */
function ownTrackingCgroups(): string[] {
  if (!existsSync('/proc/self/cgroup')) return [];
  const mounts = readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' '));
  const cgroups = readFileSync('/proc/self/cgroup', 'utf8');
  const dirs: string[] = [];
  const v2 = mounts.find((m) => m[2] === 'cgroup2')?.[1];
  const v2Own = /^0::(\/.*)$/m.exec(cgroups)?.[1];
  if (v2 && v2Own !== undefined) dirs.push(join(v2, v2Own));
  const v1 = mounts.find((m) => m[2] === 'cgroup' && m[3]?.split(',').includes('name=systemd'))?.[1];
  const v1Own = /^\d+:name=systemd:(\/.*)$/m.exec(cgroups)?.[1];
  if (v1 && v1Own !== undefined) dirs.push(join(v1, v1Own));
  return dirs;
}

/**
 * A node's own cgroups (created), one per tracking hierarchy. nspawn puts the container in `payload`
 * below its own cgroup, so two nspawns started from one cgroup would share one tree: a unit's cgroup
 * on node1 (nginx.service) would also hold node2's processes, so it never empties (a crashed unit
 * waits out TimeoutStopSec) and systemd's kill of the rest of a crashed unit misses (orphaned workers).
 */
function nodeCgroups(node: LabNode): string[] {
  return ownTrackingCgroups().flatMap((base) => {
    const dir = join(base, node.machine);
    try {
      mkdirSync(dir, { recursive: true });
      return [dir];
    } catch {
      // A cgroup tree this process may not write to (a read-only one): the node shares it, as before.
      return [];
    }
  });
}

/** The nodes' cgroups (`halab-<node>`) in every tracking hierarchy, as they are now. */
function labCgroups(): string[] {
  return ownTrackingCgroups().flatMap((base) =>
    (existsSync(base) ? readdirSync(base, { withFileTypes: true }) : [])
      .filter((e) => e.isDirectory() && e.name.startsWith('halab-'))
      .map((e) => join(base, e.name)),
  );
}

/** Removes the nodes' cgroups (after their processes are gone): directories only, deepest first. */
function removeNodeCgroups(): number {
  const removeTree = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) removeTree(join(dir, e.name));
    rmdirSync(dir);
  };
  let removed = 0;
  for (const dir of labCgroups()) {
    try {
      removeTree(dir);
      removed++;
    } catch {
      // A cgroup still holding a process cannot go; the next `lab down` tries again.
    }
  }
  return removed;
}

function bootNode(node: LabNode, bridge: string, paths: LabPaths, distro: LabDistro): number {
  if (paths.ccacheDir) mkdirSync(paths.ccacheDir, { recursive: true });
  const logFile = join(paths.stateDir, `${node.name}.console.log`);
  const fd = openSync(logFile, 'a');
  // --register=no and --keep-unit are required on hosts without a usable system bus.
  // A reboot inside the node (`systemctl reboot`) makes nspawn restart the container itself, except
  // where /run is not a tmpfs: there it refuses to clear its propagation directory and exits. This
  // small supervisor clears it and starts the node again, so reboots can be tested everywhere; any
  // other exit (lab down, a crash) ends it.
  const supervisor =
    nodeCgroups(node)
      .map((dir) => `echo $$ > ${shq(join(dir, 'cgroup.procs'))}; `)
      .join('') +
    'log=$1; propagate=$2; shift 2; while :; do "$@"; rc=$?; ' +
    'tail -n 3 "$log" | grep -q "is being rebooted" || exit $rc; ' +
    'rm -rf "$propagate"; echo "ha-setup lab: starting the node again after its reboot"; done';
  const child = spawn(
    'sh',
    [
      '-c',
      supervisor,
      'ha-setup-lab-node',
      logFile,
      `/run/systemd/nspawn/propagate/${node.machine}`,
      'systemd-nspawn',
      '--boot',
      '--register=no',
      '--keep-unit',
      `--network-bridge=${bridge}`,
      `--machine=${node.machine}`,
      `--hostname=${node.name}`,
      `--setenv=${LAB_ENV_MARK}=${node.name}`,
      ...(paths.ccacheDir ? [`--bind=${paths.ccacheDir}:${LAB_CCACHE_MOUNT}`] : []),
      '--directory',
      node.dir,
    ],
    {
      detached: true,
      stdio: ['ignore', fd, fd],
      // systemd 257 (trixie) on the legacy cgroup hierarchy nspawn picks on a hybrid host never hears
      // that a unit's cgroup emptied (a crashed nginx's unit waits out TimeoutStopSec before its
      // ExecStopPost runs). trixie hosts run the unified hierarchy (cgroup v2), so its nodes get it too.
      env: distro === 'trixie' ? { ...process.env, SYSTEMD_NSPAWN_UNIFIED_HIERARCHY: '1' } : process.env,
    },
  );
  child.unref();
  closeSync(fd);
  if (!child.pid) throw new RunFailedError(`could not start systemd-nspawn for ${node.name}`);
  return child.pid;
}

async function waitForNode(
  node: LabNode & { pid?: number },
  paths: LabPaths,
  log: Log,
  timeoutMs = 120_000,
): Promise<void> {
  const { done, last } = await pollUntil(
    async () => {
      if (!pidAlive(node.pid)) {
        const consoleLog = readFileSync(join(paths.stateDir, `${node.name}.console.log`), 'utf8');
        throw new RunFailedError(
          `${node.name}: systemd-nspawn exited during boot`,
          consoleLog.trim().split('\n').slice(-20),
        );
      }
      const r = await labSsh(paths, node.ip, 'systemctl is-system-running --wait', {
        allowFailure: true,
        timeoutMs: 60_000,
      });
      const state = r.stdout.trim();
      return { done: state === 'running' || state === 'degraded', value: state || r.stderr.trim() };
    },
    { budgetMs: timeoutMs, intervalMs: 500 },
  );
  if (!done)
    throw new RunFailedError(
      `${node.name} (${node.ip}) did not answer SSH with a booted system within ${timeoutMs / 1000}s`,
      [`last answer: ${last}`],
    );
  if (last === 'degraded') {
    const failed = await labSsh(paths, node.ip, 'systemctl --failed --no-legend --plain', { allowFailure: true });
    const units = failed.stdout
      .trim()
      .split('\n')
      .map((l) => l.split(/\s+/)[0]);
    log(`${node.name}: systemd is degraded: ${units.join(', ')}`);
    // It sometimes fails to start in these containers (219/CGROUP). Its one job is removing
    // /run/nologin, without which nobody but root can log in (a sudo user of a suite, say).
    if (units.includes('systemd-user-sessions.service')) {
      await labSsh(paths, node.ip, 'rm -f /run/nologin', { allowFailure: true });
      log(`${node.name}: removed /run/nologin in its place`);
    }
  }
}

// ---------------------------------------------------------------- commands

export interface UpResult {
  state: LabState;
  changed: boolean;
}

export async function labUp(opts: LabOptions, log: Log, paths = labPaths()): Promise<UpResult> {
  assertLabHost();
  const addr = labAddressing(opts, paths);
  const existing = readState(paths);
  if (existing && (await labIsHealthy(existing, paths))) {
    const same =
      existing.options.nodes === opts.nodes &&
      existing.options.distro === opts.distro &&
      existing.options.subnet === opts.subnet;
    if (!same) {
      throw new InvalidInputError(
        `a lab is already up with ${existing.options.nodes} ${existing.options.distro} nodes ` +
          `on ${existing.options.subnet}`,
        ['run `ha-setup lab down` first to change its shape'],
      );
    }
    return { state: existing, changed: false };
  }
  await ensureHostTools(log);
  // Anything left by a lab whose processes were killed: clean it before building anew.
  const leftovers = await labDown(() => {}, paths, { quiet: true });
  if (leftovers > 0) log(`cleaned ${leftovers} leftover(s) of an earlier lab`);

  mkdirSync(paths.stateDir, { recursive: true, mode: 0o700 });
  if (!existsSync(paths.key)) {
    await runLocal('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'ha-setup-lab', '-f', paths.key]);
  }
  const tarball = await ensureBaseImage(opts, paths, log);
  log(`preparing ${addr.nodes.length} nodes`);
  const knownHosts = await Promise.all(addr.nodes.map((n) => prepareNode(n, tarball, addr, paths)));
  writeFileSync(paths.knownHosts, `${knownHosts.join('\n')}\n`, { mode: 0o600 });

  const forwardingBefore = readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim();
  const state: LabState = {
    options: opts,
    bridge: LAB_BRIDGE,
    bridgeIp: addr.bridgeIp,
    prefix: addr.prefix,
    vip: addr.vip,
    forwardingBefore,
    nodes: addr.nodes.map((n) => ({ ...n })),
    createdAt: new Date().toISOString(),
  };
  // Written before any change so `lab down` can always undo what follows.
  writeState(paths, state);
  await createBridge(LAB_BRIDGE, addr.bridgeIp, addr.prefix);
  writeFileSync('/proc/sys/net/ipv4/ip_forward', '1\n');
  await addNat(opts.subnet, LAB_BRIDGE);

  for (const node of state.nodes) node.pid = bootNode(node, LAB_BRIDGE, paths, opts.distro);
  writeState(paths, state);
  log(`booting ${state.nodes.map((n) => `${n.name} (${n.ip})`).join(', ')}`);
  await Promise.all(state.nodes.map((n) => waitForNode(n, paths, log)));
  return { state, changed: true };
}

export async function labIsHealthy(state: LabState, paths: LabPaths): Promise<boolean> {
  if (!state.nodes.every((n) => pidAlive(n.pid))) return false;
  if (!(await bridgeExists(state.bridge))) return false;
  const answers = await Promise.all(
    state.nodes.map((n) => labSsh(paths, n.ip, 'true', { allowFailure: true, timeoutMs: 15_000 })),
  );
  return answers.every((r) => r.code === 0);
}

/**
 * Stop nodes, remove the bridge, NAT rules, forwarding change, mounts and node directories.
 * Works from the state file and, for a lab whose state was lost, from what it finds on the host.
 * Returns how many things it removed.
 */
export async function labDown(log: Log, paths = labPaths(), opts: { quiet?: boolean } = {}): Promise<number> {
  assertLabHost();
  const state = readState(paths);
  let removed = 0;

  const pids = new Set<number>([
    ...(state?.nodes.map((n) => n.pid).filter((p): p is number => pidAlive(p)) ?? []),
    ...labNspawnPids(),
  ]);
  if (pids.size > 0) {
    if (!opts.quiet) log(`stopping ${pids.size} node(s)`);
    for (const pid of pids) safeKill(pid, 'SIGTERM');
    const gone = async () => ({ done: ![...pids].some((p) => pidAlive(p)), value: undefined });
    await pollUntil(gone, { budgetMs: 20_000, intervalMs: 200 });
    for (const pid of pids) if (pidAlive(pid)) safeKill(pid, 'SIGKILL');
    await pollUntil(gone, { budgetMs: 10_000, intervalMs: 100 });
    removed += pids.size;
  }
  const orphans = labContainerInits();
  if (orphans.length > 0) {
    if (!opts.quiet) log(`killing ${orphans.length} orphaned container(s)`);
    for (const pid of orphans) safeKill(pid, 'SIGKILL');
    await pollUntil(async () => ({ done: labContainerInits().length === 0, value: undefined }), {
      budgetMs: 10_000,
      intervalMs: 100,
    });
    removed += orphans.length;
  }
  // Host ends of the nodes' veth pairs and nspawn's runtime directories outlive a killed nspawn.
  for (const veth of await labVeths()) {
    await runLocal('ip', ['link', 'del', veth], { allowFailure: true });
    removed++;
  }
  for (const dir of ['/run/systemd/nspawn/propagate', '/run/systemd/nspawn/unix-export']) {
    for (const f of existsSync(dir) ? readdirSync(dir) : []) {
      if (f.startsWith('halab-')) {
        rmSync(join(dir, f), { recursive: true, force: true });
        removed++;
      }
    }
  }

  removed += removeNodeCgroups();

  // Mounts below the lab directory (nspawn cleans its own; a killed one may not have).
  const mounts = readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[1])
    .filter((m) => m?.startsWith(paths.stateDir));
  for (const m of mounts.sort((a, b) => b.length - a.length)) {
    await runLocal('umount', ['-l', m], { allowFailure: true });
    removed++;
  }

  removed += await removeLabRules();
  const bridge = state?.bridge ?? LAB_BRIDGE;
  if (await bridgeExists(bridge)) {
    await runLocal('ip', ['link', 'del', bridge]);
    removed++;
  }
  if (state && state.forwardingBefore !== undefined) {
    writeFileSync('/proc/sys/net/ipv4/ip_forward', `${state.forwardingBefore}\n`);
  }
  if (existsSync(paths.nodesDir)) {
    rmSync(paths.nodesDir, { recursive: true, force: true });
    removed++;
  }
  for (const f of existsSync(paths.stateDir) ? readdirSync(paths.stateDir) : []) {
    if (f.endsWith('.console.log')) rmSync(join(paths.stateDir, f), { force: true });
  }
  if (state) {
    rmSync(paths.stateFile, { force: true });
    removed++;
  }
  // `lab down` returns only when nothing of the lab is left: nspawn's helpers can outlive the process
  // we waited for by a moment, and a rule or link can survive a first attempt (a busy xtables lock).
  // What is still there is removed again until none is, or named in the error.
  const cleared = await pollUntil(
    async () => {
      const left = await labLeftovers(paths);
      for (const l of left) {
        if (l.pid !== undefined) safeKill(l.pid, 'SIGKILL');
        else if (l.kind === 'rule') await removeLabRules();
        else if (l.kind === 'link') await runLocal('ip', ['link', 'del', l.name!], { allowFailure: true });
        else if (l.kind === 'mount') await runLocal('umount', ['-l', l.name!], { allowFailure: true });
        else if (l.kind === 'cgroup') removeNodeCgroups();
      }
      return { done: left.length === 0, value: left };
    },
    { budgetMs: 30_000, intervalMs: 100 },
  );
  if (!cleared.done) {
    const left = await labLeftovers(paths);
    if (left.length > 0)
      throw new RunFailedError(
        'lab down could not remove everything of the lab',
        left.map((l) => l.what),
      );
  }
  if (!opts.quiet) log(removed > 0 ? 'lab removed' : 'no lab was up');
  return removed;
}

/** Everything of the lab still on this machine: processes, firewall rules, links, mounts, cgroups, files. */
export async function labLeftovers(
  paths = labPaths(),
): Promise<
  Array<{ kind: 'process' | 'rule' | 'link' | 'mount' | 'file' | 'cgroup'; what: string; pid?: number; name?: string }>
> {
  const out: Awaited<ReturnType<typeof labLeftovers>> = [];
  for (const pid of labNspawnPids()) out.push({ kind: 'process', what: `systemd-nspawn process ${pid}`, pid });
  for (const pid of labContainerInits()) out.push({ kind: 'process', what: `container process ${pid}`, pid });
  for (const table of ['nat', 'filter']) {
    const rules = (await runLocal('iptables', ['-w', '-t', table, '-S'], { allowFailure: true })).stdout
      .split('\n')
      .filter((l) => l.includes(LAB_COMMENT));
    out.push(...rules.map((r) => ({ kind: 'rule' as const, what: `iptables ${table}: ${r}` })));
  }
  if (await bridgeExists(LAB_BRIDGE)) out.push({ kind: 'link', what: `bridge ${LAB_BRIDGE}`, name: LAB_BRIDGE });
  for (const v of await labVeths()) out.push({ kind: 'link', what: `veth ${v}`, name: v });
  const mounts = readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[1])
    .filter((m) => m?.startsWith(paths.stateDir));
  out.push(...mounts.map((m) => ({ kind: 'mount' as const, what: `mount ${m}`, name: m })));
  for (const dir of labCgroups()) out.push({ kind: 'cgroup', what: `cgroup ${dir}` });
  if (existsSync(paths.nodesDir)) out.push({ kind: 'file', what: `directory ${paths.nodesDir}` });
  if (existsSync(paths.stateFile)) out.push({ kind: 'file', what: `state ${paths.stateFile}` });
  return out;
}

function safeKill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

export interface NodeStatus {
  name: string;
  ip: string;
  running: boolean;
  ssh: boolean;
  systemd: string;
}

export async function labStatus(paths = labPaths()): Promise<{ state?: LabState; nodes: NodeStatus[] }> {
  const state = readState(paths);
  if (!state) return { nodes: [] };
  const nodes = await Promise.all(
    state.nodes.map(async (n) => {
      const running = pidAlive(n.pid);
      const r = running
        ? await labSsh(paths, n.ip, 'systemctl is-system-running', { allowFailure: true, timeoutMs: 10_000 })
        : undefined;
      return {
        name: n.name,
        ip: n.ip,
        running,
        ssh: r !== undefined && r.stdout.trim() !== '',
        systemd: r?.stdout.trim() || (running ? 'unreachable' : 'stopped'),
      };
    }),
  );
  return { state, nodes };
}

export function findLabNode(state: LabState, which: string): LabNode | undefined {
  return state.nodes.find(
    (n) => n.name === which || n.ip === which || n.machine === which || String(state.nodes.indexOf(n) + 1) === which,
  );
}

/** Interactive shell (or one command) on a lab node, host keys checked against the lab's known_hosts. */
export function labSshInteractive(paths: LabPaths, node: LabNode, command: string[]): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn('ssh', [...sshArgs(paths, node.ip, 'root', false), ...command], { stdio: 'inherit' });
    child.on('close', (code) => resolve(code ?? 1));
  });
}
