import type { Transport } from './transport.js';

export type OsFamily = 'debian' | 'el';
export type PackageManager = 'apt' | 'dnf' | 'yum';

export interface Facts {
  osId: string;
  osVersion: string;
  osLike: string[];
  family: OsFamily;
  /** el7, el8, el9, debian12, ubuntu22 ... used to pick package names. */
  release: string;
  packageManager: PackageManager;
  arch: string;
  cores: number;
  memoryMb: number;
  /** Free MiB in the build directory's nearest existing parent. */
  freeDiskMb: number;
  interfaces: Record<string, string[]>;
  /** Hardware addresses of the node's links (lower case): tells an ARP answer from a cluster node apart. */
  macs: string[];
  systemd: boolean;
  selinux: string;
  firewall: 'firewalld' | 'nftables' | 'iptables' | 'none';
  /** nftables only: `<family> <table> <chain>` of the input hook with policy drop. */
  firewallChain: string;
  nginxVersionOutput: string;
  keepalivedVersionOutput: string;
  /** `systemctl is-active keepalived` said active. */
  keepalivedActive: boolean;
  /**
   * The VRRP identity in the live keepalived.conf (undefined: none there): what peers must share to hear each other.
   */
  liveVrrp: LiveVrrp | undefined;
  hostname: string;
  epochMs: number;
  journal: string;
}

export interface LiveVrrp {
  vrid: number;
  version: number;
  auth: boolean;
  unicast: boolean;
}

/** One round trip: every fact as a `key=value` line (multi-line values base64-encoded). */
export function factsScript(
  buildDir: string,
  nginxBinary: string,
  keepalivedBinary: string,
  keepalivedConf: string,
): string {
  return `
. /etc/os-release 2>/dev/null || true
echo "os_id=\${ID:-unknown}"
echo "os_version=\${VERSION_ID:-}"
echo "os_like=\${ID_LIKE:-}"
echo "arch=$(uname -m)"
echo "cores=$(nproc 2>/dev/null || echo 1)"
echo "mem_kb=$(awk '/^MemTotal:/{print $2}' /proc/meminfo)"
d=${JSON.stringify(buildDir)}; while [ ! -d "$d" ]; do d=$(dirname "$d"); done
echo "free_kb=$(df -Pk "$d" | awk 'NR==2{print $4}')"
echo "ifaces=$(ip -o -4 addr show 2>/dev/null | awk '{print $2"="$4}' | tr '\\n' ' ')"
echo "links=$(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | tr '\\n' ' ')"
echo "macs=$(ip -o link show 2>/dev/null | grep -o 'link/ether [0-9a-fA-F:]*' | awk '{print $2}' | tr '\\n' ' ')"
if [ -d /run/systemd/system ]; then echo systemd=1; else echo systemd=0; fi
echo "selinux=$(getenforce 2>/dev/null || echo absent)"
fw=none; fwchain=""
# iptables first: on iptables-nft hosts its rules also show up in nft, but belong to iptables.
if command -v firewall-cmd >/dev/null 2>&1 && firewall-cmd --state >/dev/null 2>&1; then fw=firewalld
elif command -v iptables >/dev/null 2>&1 &&
  iptables -S INPUT 2>/dev/null | grep -E '^-P INPUT DROP|^-A INPUT .*-j (DROP|REJECT)' >/dev/null; then fw=iptables
elif command -v nft >/dev/null 2>&1; then
  fwchain=$(nft list ruleset 2>/dev/null |
    awk '/^table /{t=$2" "$3} /^[[:space:]]+chain /{c=$2} /hook input/ && /policy drop/{print t" "c; exit}' || true)
  [ -n "$fwchain" ] && fw=nftables
fi
echo "firewall=$fw"
echo "firewall_chain=$fwchain"
if command -v apt-get >/dev/null 2>&1; then echo pm=apt
elif command -v dnf >/dev/null 2>&1; then echo pm=dnf
elif command -v yum >/dev/null 2>&1; then echo pm=yum
else echo pm=unknown; fi
echo "nginx_v=$( { ${nginxBinary} -V 2>&1 || true; } | base64 -w0)"
echo "keepalived_v=$( { ${keepalivedBinary} --version 2>&1 || true; } | base64 -w0)"
echo "keepalived_active=$(systemctl is-active keepalived 2>/dev/null || true)"
echo "vrrp_live=$(grep -E '^[[:space:]]*(virtual_router_id|version|auth_type|unicast_peer)[[:space:]]' \\
  ${JSON.stringify(keepalivedConf)} 2>/dev/null | awk '{print $1"="$2}' | tr '\\n' ' ')"
echo "hostname=$(hostname)"
echo "epoch_ms=$(date +%s%3N)"
echo "journal=$(cat /var/lib/ha-setup/journal.json 2>/dev/null | base64 -w0 || true)"
`;
}

export function parseFacts(output: string): Facts {
  const kv: Record<string, string> = {};
  for (const line of output.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) kv[line.slice(0, i)] = line.slice(i + 1);
  }
  const b64 = (s: string | undefined) => (s ? Buffer.from(s, 'base64').toString('utf8') : '');
  const osId = kv.os_id ?? 'unknown';
  const osLike = (kv.os_like ?? '').split(/\s+/).filter(Boolean);
  const family: OsFamily = [osId, ...osLike].some((x) => ['rhel', 'centos', 'fedora', 'rocky', 'almalinux'].includes(x))
    ? 'el'
    : 'debian';
  const major = (kv.os_version ?? '').split('.')[0];
  const interfaces: Record<string, string[]> = {};
  for (const link of (kv.links ?? '').split(/\s+/).filter(Boolean)) interfaces[link] = [];
  for (const pair of (kv.ifaces ?? '').split(/\s+/).filter(Boolean)) {
    const [name, addr] = pair.split('=');
    interfaces[name] ??= [];
    interfaces[name].push(addr);
  }
  const nginxV = b64(kv.nginx_v);
  const kaV = b64(kv.keepalived_v);
  return {
    osId,
    osVersion: kv.os_version ?? '',
    osLike,
    family,
    release: family === 'el' ? `el${major}` : `${osId}${major}`,
    packageManager: (kv.pm === 'unknown' ? 'apt' : kv.pm) as PackageManager,
    arch: kv.arch ?? '',
    cores: Number(kv.cores ?? 1) || 1,
    memoryMb: Math.round(Number(kv.mem_kb ?? 0) / 1024),
    freeDiskMb: Math.round(Number(kv.free_kb ?? 0) / 1024),
    interfaces,
    macs: (kv.macs ?? '')
      .split(/\s+/)
      .filter(Boolean)
      .map((m) => m.toLowerCase()),
    systemd: kv.systemd === '1',
    selinux: kv.selinux ?? 'absent',
    firewall: (kv.firewall ?? 'none') as Facts['firewall'],
    firewallChain: kv.firewall_chain ?? '',
    nginxVersionOutput: /nginx version/.test(nginxV) ? nginxV.trim() : '',
    keepalivedVersionOutput: /Keepalived v/i.test(kaV) ? kaV.trim() : '',
    keepalivedActive: kv.keepalived_active === 'active',
    liveVrrp: parseLiveVrrp(kv.vrrp_live ?? ''),
    hostname: kv.hostname ?? '',
    epochMs: Number(kv.epoch_ms ?? 0),
    journal: b64(kv.journal),
  };
}

/** `virtual_router_id=51 version=3 auth_type=PASS unicast_peer={` as the facts script prints it. Pure. */
export function parseLiveVrrp(line: string): LiveVrrp | undefined {
  const pairs = line
    .split(/\s+/)
    .filter(Boolean)
    .map((p) => p.split('='));
  const get = (k: string) => pairs.find(([key]) => key === k)?.[1];
  const vrid = Number(get('virtual_router_id'));
  if (!Number.isInteger(vrid) || vrid <= 0) return undefined;
  return {
    vrid,
    // keepalived's default when the instance does not say
    version: Number(get('version') ?? 2) || 2,
    auth: get('auth_type') !== undefined,
    unicast: get('unicast_peer') !== undefined,
  };
}

export async function gatherFacts(
  t: Transport,
  buildDir: string,
  nginxBinary: string,
  keepalivedBinary: string,
  keepalivedConf: string,
): Promise<Facts> {
  const r = await t.exec(factsScript(buildDir, nginxBinary, keepalivedBinary, keepalivedConf), { quiet: true });
  if (r.code !== 0) throw new Error(`facts script failed on ${t.label}: ${r.stderr}`);
  return parseFacts(r.stdout);
}

/** Facts assumed for `plan --offline` and golden tests: nothing is contacted. */
export function assumedFacts(release: string): Facts {
  const el = release.startsWith('el');
  const ubuntu = release.startsWith('ubuntu');
  return {
    osId: el ? (release === 'el7' ? 'centos' : 'rocky') : ubuntu ? 'ubuntu' : 'debian',
    osVersion: release.replace(/^\D+/, ''),
    osLike: el ? ['rhel', 'fedora'] : ubuntu ? ['debian'] : [],
    family: el ? 'el' : 'debian',
    release,
    packageManager: el ? (release === 'el7' ? 'yum' : 'dnf') : 'apt',
    arch: 'x86_64',
    cores: 4,
    memoryMb: 4096,
    freeDiskMb: 20_000,
    interfaces: {},
    macs: [],
    keepalivedActive: false,
    liveVrrp: undefined,
    systemd: true,
    selinux: el ? 'Enforcing' : 'absent',
    firewall: el ? 'firewalld' : 'none',
    firewallChain: '',
    nginxVersionOutput: '',
    keepalivedVersionOutput: '',
    hostname: '',
    epochMs: 0,
    journal: '',
  };
}
