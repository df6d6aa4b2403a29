import { shq, shqAll } from '../shell.js';
import type { Facts, PackageManager } from './facts.js';

// What differs between OS families, in one place per family: package commands, the package
// database, paths and users. Steps ask the profile of a node's facts; they hold no apt/yum branch.

export interface OsProfile {
  family: Facts['family'];
  packageManager: PackageManager;
  /** Shell that leaves in $missing the packages of `pkgs` that are not installed. */
  missingScript(pkgs: string[]): string;
  /**
   * Shell test, true when every one of `pkgs` is installed: one query of the package database, for
   * checks. missingScript keeps its own per-package query: it is in the packages step's commands, so
   * changing it would change that step's fingerprint and re-run (and rebuild after) it on every cluster.
   */
  allInstalledTest(pkgs: string[]): string;
  /** Installs the packages in $missing, refreshing the package lists first (the packages step). */
  installMissing: string;
  /**
   * Installs these packages, quietly; refreshes the lists and retries once when the first try fails (preflight's
   * tools).
   */
  installQuietly(pkgs: string[]): string;
  /** Installs these packages as they are named (keepalived from the distribution, rsyslog). */
  install(pkgs: string[]): string;
  /** Unpacks these packages' files into `dir` without installing them (Debian family only). */
  unpackInto?(pkgs: string[], dir: string): string;
  /** nginx's workers run as this user. */
  webUser: string;
  /** The system's CA bundle (TLS from Lua without a CA file of the runbook's). */
  caBundle: string;
  /** keepalived's options file, read by its unit. */
  keepalivedEnvFile: string;
  /** LuaJIT 2.1 for lua-nginx-module on the nginx flavor. */
  luajit(arch: string): { lib: string; inc: string };
  /** A hint when a package may come from a repository the node lacks. */
  epelHint?: string;
  /** Where lua-resty-core and lrucache are found under `dir` (unpacked packages, or pinned git sources). */
  restyLuaPath(dir: string): string;
}

const debian: OsProfile = {
  family: 'debian',
  packageManager: 'apt',
  missingScript: (pkgs) =>
    `missing=""; for p in ${shqAll(pkgs)}; do ` +
    `dpkg-query -W -f='\${Status}' "$p" 2>/dev/null | grep 'install ok installed' >/dev/null || ` +
    'missing="$missing $p"; done',
  // A process per package costs seconds on a small VM; a name may carry its architecture
  // (binary:Package) or not; a held package is installed too.
  allInstalledTest: (pkgs) =>
    `{ st="|$(dpkg-query -W -f='\${Package} \${Status}|\${binary:Package} \${Status}|' -- ${shqAll(pkgs)} ` +
    `2>/dev/null)"; all=y; for p in ${shqAll(pkgs)}; do ` +
    `case "$st" in *"|$p install ok installed|"* | *"|$p hold ok installed|"*) ;; *) all=n ;; esac; ` +
    `done; [ "$all" = y ]; }`,
  installMissing:
    'export DEBIAN_FRONTEND=noninteractive; apt-get update -q; apt-get install -y -q --no-install-recommends $missing',
  installQuietly: (pkgs) =>
    `export DEBIAN_FRONTEND=noninteractive; ` +
    `apt-get install -y -q --no-install-recommends ${shqAll(pkgs)} >/dev/null 2>&1 || ` +
    `{ apt-get update -q >/dev/null 2>&1 && ` +
    `apt-get install -y -q --no-install-recommends ${shqAll(pkgs)} >/dev/null 2>&1; }`,
  install: (pkgs) => `DEBIAN_FRONTEND=noninteractive apt-get install -y -q ${pkgs.join(' ')}`,
  unpackInto: (pkgs, dir) =>
    [
      `  work=$(mktemp -d); cd "$work"`,
      `  apt-get download ${pkgs.join(' ')}`,
      `  mkdir -p ${shq(dir)}; for deb in ./*.deb; do dpkg-deb -x "$deb" ${shq(dir)}; done`,
      `  cd /; rm -rf "$work"`,
    ].join('\n'),
  webUser: 'www-data',
  caBundle: '/etc/ssl/certs/ca-certificates.crt',
  keepalivedEnvFile: '/etc/default/keepalived',
  luajit: (arch) => ({
    lib: `/usr/lib/${arch === 'aarch64' ? 'aarch64-linux-gnu' : 'x86_64-linux-gnu'}`,
    inc: '/usr/include/luajit-2.1',
  }),
  restyLuaPath: (dir) => `${dir}/usr/share/lua/5.1/?.lua;;`,
};

/** yum (el7) or dnf (el8+): the same commands under the release's own name. */
const el = (pm: 'yum' | 'dnf'): OsProfile => ({
  family: 'el',
  packageManager: pm,
  missingScript: (pkgs) =>
    `missing=""; for p in ${shqAll(pkgs)}; do rpm -q "$p" >/dev/null 2>&1 || missing="$missing $p"; done`,
  // rpm -q exits non-zero when any of the packages is not installed.
  allInstalledTest: (pkgs) => `rpm -q ${shqAll(pkgs)} >/dev/null 2>&1`,
  installMissing: `${pm} install -y $missing`,
  installQuietly: (pkgs) => `${pm} install -y ${shqAll(pkgs)} >/dev/null 2>&1`,
  install: (pkgs) => `${pm} install -y ${pkgs.join(' ')}`,
  webUser: 'nobody',
  caBundle: '/etc/pki/tls/certs/ca-bundle.crt',
  keepalivedEnvFile: '/etc/sysconfig/keepalived',
  // EPEL 8/9 ship LuaJIT 2.1 (what lua-nginx-module needs); EPEL 7's 2.0 is refused by preflight.
  luajit: () => ({ lib: '/usr/lib64', inc: '/usr/include/luajit-2.1' }),
  epelHint: `luajit-devel comes from EPEL: enable it (${pm} install epel-release) if the install fails`,
  restyLuaPath: (dir) => `${dir}/lib/?.lua;;`,
});

export function osProfile(f: Pick<Facts, 'family' | 'packageManager'>): OsProfile {
  if (f.family === 'el') return el(f.packageManager === 'yum' ? 'yum' : 'dnf');
  return debian;
}
