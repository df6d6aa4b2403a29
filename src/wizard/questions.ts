import { moduleCatalog, moduleOrigin, moduleProven, moduleUnavailableReason, type Flavor } from '../catalog.js';
import {
  broadcastOf,
  inSubnet,
  interfaceForVip,
  ipToInt,
  isDnsName,
  isIPv4,
  networkOf,
  parseCidr,
  peerAddressProblem,
  type InterfaceAddress,
} from '../net.js';
import { interfaceName, absolutePath, consulAddress, redisAddress } from '../runbook/schema.js';
import { ldapServer, locationPath, stickySettings, upstreamCheck } from '../runbook/module-settings.js';
import { acmeSettings, DNS_NAME_PATTERN, tlsSettings } from '../runbook/tls-settings.js';

// The wizard's questions as data. Each has a flag (every prompt has one), an optional default
// computed from earlier answers, and a validator shared by the prompt and the flag path.

export type Answers = Record<string, string | string[] | boolean | undefined>;

export interface Choice {
  value: string;
  label: string;
  hint?: string;
}

export interface Question {
  id: string;
  /** Commander flag, e.g. `--vip <cidr>`. */
  flag: string;
  kind: 'text' | 'select' | 'multiselect' | 'confirm';
  message: string;
  help: string;
  choices?: (a: Answers) => Choice[];
  /** undefined = required: a non-interactive run without it fails naming the flag. */
  default?: (a: Answers) => string | string[] | boolean | undefined;
  validate?: (value: string, a: Answers) => string | undefined;
  /** A line shown before the question (e.g. which choices are not offered and why). */
  note?: (a: Answers) => string | undefined;
  /** Skipped (and left undefined) when this returns false. */
  when?: (a: Answers) => boolean;
  /** Why its flag makes no sense when `when` is false (an error then, not a silently dropped flag). */
  notApplicable?: string;
  /** Tuning: asked only after "customize" is answered yes; otherwise its default is taken quietly. */
  tuning?: boolean;
}

const zodMessage =
  (schema: { safeParse: (v: unknown) => { success: boolean; error?: { issues: { message: string }[] } } }) =>
  (v: string) => {
    const r = schema.safeParse(v);
    return r.success ? undefined : r.error!.issues[0].message;
  };

const intIn = (lo: number, hi: number, what: string) => (v: string) =>
  /^-?\d+$/.test(v.trim()) && Number(v) >= lo && Number(v) <= hi
    ? undefined
    : `${what} must be a whole number from ${lo} to ${hi}`;

export const splitList = (v: string): string[] =>
  v
    .split(/[\s,]+/)
    .map((s) => s.trim())
    .filter(Boolean);

/** When the HTTPS questions apply (site.tls), and what the flags say otherwise. */
const withHttps = {
  when: (a: Answers) => a.tls !== undefined && a.tls !== 'none',
  notApplicable: 'needs --tls files or --tls acme',
};
const withAcme = { when: (a: Answers) => a.tls === 'acme', notApplicable: 'needs --tls acme' };

const DEFAULT_VERSIONS = { openresty: '1.27.1.2', nginx: '1.26.3' } as const;

/**
 * host:port entries, comma-separated; an address where a proxied request must never go is named here, not at the end.
 */
function serverListProblem(v: string): string | undefined {
  const list = splitList(v);
  if (!list.every((s) => /^[A-Za-z0-9.-]+:\d{1,5}$/.test(s))) return 'give host:port entries separated by commas';
  for (const s of list) {
    const host = s.split(':')[0];
    if (/^[\d.]+$/.test(host) && !isIPv4(host)) return `${host} is not an IPv4 address`;
    const problem = isIPv4(host) ? peerAddressProblem(host, []) : undefined;
    if (problem)
      return `${host} ${problem.replace(/; list its network.*$/, '')} (site.peerNetworks in the runbook allows it)`;
  }
  return undefined;
}

export function defaultVrid(vip: string | undefined): string | undefined {
  const c = vip ? parseCidr(vip) : undefined;
  if (!c) return undefined;
  const last = Number(c.address.split('.')[3]);
  return String(last >= 1 && last <= 255 ? last : 51);
}

/** What the interface lookup found, kept in the answers as "iface cidr" strings. */
export function detectedInterfaces(a: Answers): InterfaceAddress[] {
  return (Array.isArray(a.detectedInterfaces) ? a.detectedInterfaces : []).map((x) => {
    const [iface, cidr] = x.split(' ');
    return { iface, cidr };
  });
}

function interfaceNote(a: Answers): string {
  const found = detectedInterfaces(a);
  const host = splitList(String(a.hosts ?? ''))[0];
  if (found.length === 0) {
    return (
      'common names: eth0, ens18 / ens192 (VMs), enp0s3 (VirtualBox), eno1 (servers); ' +
      '`ip -br addr` on a node lists them'
    );
  }
  const vip = parseCidr(String(a.vip ?? ''));
  const lines = found.map(
    (x) => `${x.iface} ${x.cidr}${vip && inSubnet(vip.address, parseCidr(x.cidr)!) ? "  <- the VIP's subnet" : ''}`,
  );
  return `interfaces on ${host}:\n${lines.join('\n')}`;
}

export const questions: Question[] = [
  {
    id: 'name',
    flag: '--name <name>',
    kind: 'text',
    message: 'Cluster name',
    help: 'cluster name, lowercase letters, digits and dashes (default web-ha)',
    default: () => 'web-ha',
    validate: (v) => (/^[a-z0-9-]+$/.test(v) ? undefined : 'use lowercase letters, digits and dashes'),
  },
  {
    id: 'hosts',
    flag: '--hosts <list>',
    kind: 'text',
    message: 'Node addresses (comma-separated; IPv4 or DNS names)',
    help: 'node addresses, comma-separated (or use --node)',
    validate: (v) => {
      const hosts = splitList(v);
      if (hosts.length < 2) return 'an HA pair needs at least 2 nodes';
      const bad = hosts.find((h) => !isIPv4(h) && !isDnsName(h));
      if (bad) return `"${bad}" is not an IPv4 address or DNS name`;
      if (new Set(hosts).size !== hosts.length) return 'every node must be a different host';
      return undefined;
    },
  },
  {
    id: 'master',
    flag: '--master <host>',
    kind: 'select',
    message: 'Which node is the master?',
    help: 'host of the master node (default: the first)',
    choices: (a) => [
      ...splitList(String(a.hosts ?? '')).map((h) => ({ value: h, label: h })),
      { value: 'none', label: 'none (all BACKUP, nopreempt)', hint: 'sets preempt: false' },
    ],
    default: (a) => splitList(String(a.hosts ?? ''))[0],
    validate: (v, a) =>
      v === 'none' || splitList(String(a.hosts ?? '')).includes(v)
        ? undefined
        : `"${v}" is not one of the node addresses`,
  },
  {
    id: 'priorities',
    flag: '--priorities <list>',
    kind: 'text',
    message: 'Priorities in node order (master highest)',
    help: 'VRRP priorities in node order (default 100,90,80... with the master first)',
    default: (a) => defaultPriorities(a).join(','),
    validate: (v, a) => {
      const p = splitList(v);
      const n = splitList(String(a.hosts ?? '')).length;
      if (p.length !== n) return `give ${n} priorities, one per node`;
      if (p.some((x) => intIn(1, 254, 'priority')(x))) return 'priorities are whole numbers from 1 to 254';
      if (new Set(p).size !== p.length) return 'priorities must be unique';
      // Checked here, not after the last question: the chosen master must win the election.
      const hosts = splitList(String(a.hosts ?? ''));
      const m = hosts.indexOf(String(a.master ?? ''));
      if (m >= 0 && p.some((x, i) => i !== m && Number(x) >= Number(p[m]))) {
        return `the master ${hosts[m]} (node ${m + 1}) must have the highest priority; it has ${p[m]}`;
      }
      return undefined;
    },
  },
  {
    id: 'sshUser',
    flag: '--ssh-user <user>',
    kind: 'text',
    message: 'SSH user',
    help: 'SSH user for every node (default: User for every host in ~/.ssh/config, else root; non-root uses sudo -n)',
    default: (a) => (typeof a.detectedUser === 'string' && a.detectedUser ? a.detectedUser : 'root'),
    validate: (v) => (/^[a-z_][a-z0-9_.-]*$/i.test(v) ? undefined : 'not a valid user name'),
  },
  {
    id: 'sshPort',
    flag: '--ssh-port <port>',
    kind: 'text',
    message: 'SSH port',
    help: 'SSH port (default 22)',
    default: () => '22',
    validate: intIn(1, 65535, 'ssh port'),
  },
  {
    id: 'identityFile',
    flag: '--identity-file <path>',
    kind: 'text',
    message: 'SSH private key (empty: use the SSH agent)',
    help: 'SSH private key file (default: from ~/.ssh/config or the agent)',
    default: (a) => (typeof a.detectedIdentity === 'string' ? a.detectedIdentity : ''),
  },
  {
    id: 'vip',
    flag: '--vip <cidr>',
    kind: 'text',
    message: 'Virtual IP with prefix length (e.g. 192.168.56.200/24)',
    help: 'virtual IP in CIDR form, e.g. 192.168.56.200/24',
    validate: (v, a) => {
      const c = parseCidr(v);
      if (!c) return 'write the VIP in CIDR form, e.g. 192.168.56.200/24';
      const ip = ipToInt(c.address);
      if (c.prefix < 31 && (ip === networkOf(c) || ip === broadcastOf(c)))
        return `${c.address} is the network or broadcast address of ${v}; pick a host address`;
      const hosts = splitList(String(a.hosts ?? ''));
      if (hosts.includes(c.address)) return 'the VIP must not be a node address';
      const outside = hosts.filter((h) => isIPv4(h) && !inSubnet(h, c));
      if (outside.length > 0)
        return (
          `${outside.join(', ')} ${outside.length === 1 ? 'is' : 'are'} not in ${c.address}/${c.prefix}: the ` +
          `VIP must share the nodes' subnet (check the prefix length)`
        );
      return undefined;
    },
  },
  {
    id: 'lookupInterface',
    flag: '--lookup-interface',
    kind: 'confirm',
    message:
      "Look up the first node's interfaces over SSH to suggest the VIP's (runs `ip -4 -o addr show` there, " +
      'changes nothing)?',
    help: "suggest the VIP interface from the first node's addresses, read over SSH (changes nothing; default no)",
    default: () => false,
    when: (a) => a.interface === undefined,
    notApplicable: '--interface already names the interface',
  },
  {
    id: 'interface',
    flag: '--interface <name>',
    kind: 'text',
    message: 'Network interface carrying the VIP (as shown by `ip link`)',
    help: 'interface that carries the VIP, e.g. eth0',
    default: (a) => interfaceForVip(detectedInterfaces(a), String(a.vip ?? '')),
    note: (a) => interfaceNote(a),
    validate: zodMessage(interfaceName),
  },
  {
    id: 'vrid',
    flag: '--vrid <id>',
    kind: 'text',
    message: 'VRRP virtual router id (unique on the LAN)',
    help: "VRRP virtual_router_id 1..255 (default: the VIP's last octet)",
    default: (a) => defaultVrid(a.vip as string | undefined) ?? '51',
    validate: intIn(1, 255, 'virtual router id'),
  },
  {
    id: 'vrrpVersion',
    flag: '--vrrp-version <2|3>',
    kind: 'select',
    message: 'VRRP version',
    help: 'VRRP version 2 or 3 (default 3)',
    choices: () => [
      { value: '3', label: 'VRRPv3', hint: 'sub-second adverts, no authentication' },
      { value: '2', label: 'VRRPv2', hint: 'whole-second adverts, optional PASS auth' },
    ],
    default: () => '3',
    validate: (v) => (v === '2' || v === '3' ? undefined : 'VRRP version is 2 or 3'),
  },
  {
    id: 'customize',
    flag: '--customize',
    kind: 'confirm',
    message: 'Customize tuning (advert interval, versions, prefixes, health-check timing, failover limit)?',
    help: 'ask the tuning questions too (default: their defaults)',
    default: () => false,
  },
  {
    id: 'advertInt',
    tuning: true,
    flag: '--advert-int <seconds>',
    kind: 'text',
    message: 'Advertisement interval (seconds)',
    help: 'advert interval: v2 whole seconds 1..255, v3 0.01..40.95 (default 1 for v2, 0.05 for v3)',
    // 0.05 s with realtime scheduling: the shortest interval that held 10 minutes of stress on the
    // master with 0 false failovers in bench:faults (host loss ~205 ms; 0.1 s ~370 ms).
    default: (a) => (a.vrrpVersion === '2' ? '1' : '0.05'),
    validate: (v, a) => {
      const n = Number(v);
      if (a.vrrpVersion === '2')
        return Number.isInteger(n) && n >= 1 && n <= 255 ? undefined : 'VRRPv2 adverts are whole seconds from 1 to 255';
      return Number.isFinite(n) && n >= 0.01 && n <= 40.95 && Math.abs(Math.round(n * 100) - n * 100) < 1e-6
        ? undefined
        : 'VRRPv3 adverts are 0.01 to 40.95 seconds';
    },
  },
  {
    id: 'rtPriority',
    tuning: true,
    flag: '--rt-priority <0-99>',
    kind: 'text',
    message: "Realtime priority of keepalived's VRRP process (0 = off)",
    help: 'SCHED_RR priority 1..99 for the VRRP process, 0 off (default 50 for v3, 0 for v2)',
    // Sub-second adverts need the VRRP process on time however busy the host is; whole-second
    // VRRPv2 adverts do not.
    default: (a) => (a.vrrpVersion === '2' ? '0' : '50'),
    validate: intIn(0, 99, 'realtime priority'),
  },
  {
    id: 'unicast',
    flag: '--unicast',
    kind: 'confirm',
    message: 'Use unicast VRRP (clouds that block multicast)?',
    help: 'unicast VRRP to the peers instead of multicast 224.0.0.18',
    default: () => false,
  },
  {
    id: 'preempt',
    flag: '--no-preempt',
    kind: 'confirm',
    message: 'Should a recovered master take the VIP back (preempt)?',
    help: 'do not take the VIP back when a higher-priority node recovers',
    default: (a) => a.master !== 'none',
    when: (a) => a.master !== 'none',
  },
  {
    id: 'witness',
    tuning: true,
    flag: '--witness <address>',
    kind: 'text',
    message: "Witness address on the clients' side, e.g. the default gateway (empty: none)",
    help: 'a node that cannot ping this address gives up the VIP (vrrp.witness)',
    default: () => '',
    validate: (v) =>
      v.trim() === '' || isIPv4(v.trim()) ? undefined : "an IPv4 address on the clients' side, or empty for none",
  },
  {
    id: 'flavor',
    flag: '--flavor <flavor>',
    kind: 'select',
    message: 'What to build',
    help: 'openresty or nginx (default openresty)',
    choices: () => [
      { value: 'openresty', label: 'OpenResty', hint: 'nginx + LuaJIT + lua modules bundled' },
      { value: 'nginx', label: 'nginx', hint: 'plain nginx, modules added from source' },
    ],
    default: () => 'openresty',
    validate: (v) => (v === 'openresty' || v === 'nginx' ? undefined : 'flavor is openresty or nginx'),
  },
  {
    id: 'buildVersion',
    tuning: true,
    flag: '--build-version <version>',
    kind: 'text',
    message: 'Version to build',
    help: 'OpenResty/nginx version (default 1.27.1.2 / 1.26.3)',
    default: (a) => DEFAULT_VERSIONS[(a.flavor as 'openresty' | 'nginx') ?? 'openresty'],
    validate: (v, a) =>
      (a.flavor === 'nginx' ? /^\d+\.\d+\.\d+$/ : /^\d+\.\d+\.\d+\.\d+$/).test(v)
        ? undefined
        : `not a ${a.flavor} version`,
  },
  {
    id: 'modules',
    flag: '--modules <list>',
    kind: 'multiselect',
    message: 'Third-party modules',
    help: `modules, comma-separated: ${moduleCatalog()
      .map((m) => m.id)
      .join(', ')}`,
    // Only what can build for the chosen flavor and version is offered; the rest is named with why.
    choices: (a) =>
      moduleCatalog()
        .filter((m) => !moduleUnavailableReason(m, a.flavor as Flavor, String(a.buildVersion)))
        .map((m) => ({
          value: m.id,
          label: `${m.id}: ${m.title}`,
          // Honest about what was shown on real hosts: proven per flavor and version, else plans only.
          hint: `${moduleOrigin(m, a.flavor as Flavor)}; ${
            moduleProven(m, a.flavor as Flavor, String(a.buildVersion))
              ? 'proven on lab hosts'
              : 'golden plans only for this version'
          }`,
        })),
    note: (a) => {
      const out = moduleCatalog()
        .map((m) => [m.id, moduleUnavailableReason(m, a.flavor as Flavor, String(a.buildVersion))])
        .filter(([, why]) => why);
      return out.length
        ? `not offered for ${a.flavor} ${a.buildVersion}: ${out.map(([id, why]) => `${id} (${why})`).join('; ')}`
        : undefined;
    },
    default: () => [],
    validate: (v) => {
      const ids = moduleCatalog().map((m) => m.id);
      const bad = splitList(v).find((m) => !ids.includes(m));
      return bad ? `unknown module "${bad}"; known: ${ids.join(', ')}` : undefined;
    },
  },
  {
    id: 'prefix',
    tuning: true,
    flag: '--prefix <path>',
    kind: 'text',
    message: 'Install prefix',
    help: 'install prefix (default /usr/local/openresty or /usr/local/nginx)',
    default: (a) => (a.flavor === 'nginx' ? '/usr/local/nginx' : '/usr/local/openresty'),
    validate: zodMessage(absolutePath),
  },
  {
    id: 'keepalivedVersion',
    tuning: true,
    flag: '--keepalived-version <version>',
    kind: 'text',
    message: 'keepalived version (built from source)',
    help: 'keepalived version (default 2.3.4)',
    default: () => '2.3.4',
    validate: (v) => (/^\d+\.\d+\.\d+$/.test(v) ? undefined : 'keepalived versions look like 2.3.4'),
  },
  {
    id: 'keepalivedPrefix',
    tuning: true,
    flag: '--keepalived-prefix <path>',
    kind: 'text',
    message: 'keepalived prefix',
    help: 'keepalived prefix (default /usr/local/keepalived)',
    default: () => '/usr/local/keepalived',
    validate: zodMessage(absolutePath),
  },
  {
    id: 'checkInterval',
    tuning: true,
    flag: '--check-interval <seconds>',
    kind: 'text',
    message: 'Health check interval (seconds)',
    help: 'health check interval in seconds (default 1)',
    default: () => '1',
    validate: intIn(1, 3600, 'interval'),
  },
  {
    id: 'checkFall',
    tuning: true,
    flag: '--check-fall <n>',
    kind: 'text',
    message: 'Failed checks before FAULT',
    help: 'failed checks before the node gives up the VIP (default 2)',
    default: () => '2',
    validate: intIn(1, 100, 'fall'),
  },
  {
    id: 'checkRise',
    tuning: true,
    flag: '--check-rise <n>',
    kind: 'text',
    message: 'Good checks before recovery',
    help: 'good checks before the node is healthy again (default 2)',
    default: () => '2',
    validate: intIn(1, 100, 'rise'),
  },
  {
    id: 'checkWeight',
    tuning: true,
    flag: '--check-weight <n>',
    kind: 'text',
    message: 'Check weight (0: a failed check means FAULT)',
    help: 'vrrp_script weight -253..253 (default 0)',
    default: () => '0',
    validate: intIn(-253, 253, 'weight'),
  },
  {
    id: 'listen',
    flag: '--listen <port>',
    kind: 'text',
    message: 'Site listen port',
    help: 'port the site listens on (default 80)',
    default: () => '80',
    validate: intIn(1, 65535, 'listen port'),
  },
  {
    id: 'upstream',
    flag: '--upstream <servers>',
    kind: 'text',
    message: 'Upstream servers for the site (comma-separated host:port; empty for none)',
    help: 'upstream servers, comma-separated host:port (default none)',
    default: () => '',
    validate: (v) => serverListProblem(v),
  },
  // The picked modules, configured: each question is asked only when its module is picked.
  {
    id: 'checkPath',
    flag: '--check-path <path>',
    kind: 'text',
    message: 'upstream-check: path nginx requests on every upstream server (HEAD; empty: no active check)',
    help: 'active check of the upstream servers by upstream-check: HEAD this path, 2xx/3xx is alive (default /)',
    default: () => '/',
    when: (a) => picked(a, 'upstream-check') && hasUpstream(a),
    notApplicable: 'needs --modules upstream-check and --upstream',
    validate: (v) => (v === '' ? undefined : zodMessage(upstreamCheck.shape.path)(v)),
  },
  {
    id: 'stickyCookie',
    flag: '--sticky-cookie <name>',
    kind: 'text',
    message: 'Sticky sessions: cookie that keeps a client on one server (empty: none)',
    help:
      'keep each client on one upstream server by this cookie (the sticky module where it builds, ' +
      'else a consistent hash; default none, "route" with the sticky module)',
    default: (a) => (picked(a, 'sticky') ? 'route' : ''),
    when: (a) => hasUpstream(a),
    notApplicable: 'needs --upstream',
    validate: (v) => (v === '' ? undefined : zodMessage(stickySettings.shape.cookie)(v)),
  },
  {
    id: 'cacheLocation',
    flag: '--cache-location <path>',
    kind: 'text',
    message: "cache-purge: cache the upstream's answers under this URL path, PURGE from this node (empty: no cache)",
    help:
      'a cached location (10 min) proxied to the upstream; PURGE <url> from 127.0.0.1 removes an entry ' +
      '(default /static/)',
    default: () => '/static/',
    when: (a) => picked(a, 'cache-purge') && hasUpstream(a),
    notApplicable: 'needs --modules cache-purge and --upstream',
    validate: (v) => (v === '' ? undefined : zodMessage(locationPath)(v)),
  },
  {
    id: 'ldapUrl',
    flag: '--ldap-url <url>',
    kind: 'text',
    message:
      'auth-ldap: LDAP URL that protects a location (ldap://host:389/ou=people,dc=example,dc=com?uid?sub; empty: none)',
    help: 'protect a location with this directory (nginx-auth-ldap URL form; default none)',
    default: () => '',
    when: (a) => picked(a, 'auth-ldap') && hasUpstream(a),
    notApplicable: 'needs --modules auth-ldap and --upstream',
    validate: (v) => (v === '' ? undefined : zodMessage(ldapServer.shape.url)(v)),
  },
  {
    id: 'ldapLocation',
    flag: '--ldap-location <path>',
    kind: 'text',
    message: 'auth-ldap: URL path that asks for a directory user',
    help: 'the LDAP-protected location, proxied to the upstream (default /admin/)',
    default: () => '/admin/',
    when: (a) => String(a.ldapUrl ?? '') !== '',
    notApplicable: 'needs --ldap-url',
    validate: (v) => zodMessage(locationPath)(v),
  },
  {
    id: 'ldapBindDn',
    flag: '--ldap-bind-dn <dn>',
    kind: 'text',
    message: 'auth-ldap: DN nginx binds as to look users up (empty: anonymous)',
    help: 'bind DN for the user lookup (default anonymous)',
    default: () => '',
    when: (a) => String(a.ldapUrl ?? '') !== '',
    notApplicable: 'needs --ldap-url',
    validate: (v) => (v === '' ? undefined : zodMessage(ldapServer.shape.bindDn.unwrap())(v)),
  },
  {
    id: 'ldapPasswordEnv',
    tuning: true,
    flag: '--ldap-password-env <NAME>',
    kind: 'text',
    message: 'Environment variable holding the bind password (HA_SETUP_*, or a name in the .secrets file)',
    help: "the bind DN's password, read at apply time (default HA_SETUP_LDAP_PASSWORD)",
    default: () => 'HA_SETUP_LDAP_PASSWORD',
    when: (a) => String(a.ldapBindDn ?? '') !== '',
    notApplicable: 'needs --ldap-bind-dn',
    validate: (v) => (/^[A-Za-z_][A-Za-z0-9_]*$/.test(v) ? undefined : 'must be an environment variable name'),
  },
  {
    id: 'filesLocation',
    flag: '--files-location <path=dir>',
    kind: 'text',
    message: 'fancyindex: directory listing as URL path=directory (e.g. /files/=/srv/files; empty: none)',
    help: 'list a directory of the nodes under a URL path (default /files/=/srv/files)',
    default: () => '/files/=/srv/files',
    when: (a) => picked(a, 'fancyindex'),
    notApplicable: 'needs --modules fancyindex',
    validate: (v) => {
      if (v === '') return undefined;
      const [path, root] = v.split('=');
      return (
        zodMessage(locationPath)(path ?? '') ??
        (root && /^\/[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/.test(root)
          ? undefined
          : 'give URL path=directory, e.g. /files/=/srv/files')
      );
    },
  },
  {
    id: 'consul',
    flag: '--consul <url>',
    kind: 'text',
    message: 'Consul agent for the upstream peers (http://IPv4:port; empty for the static servers above)',
    help: 'take the upstream peers from Consul, e.g. http://10.0.0.5:8500 (default none)',
    default: () => '',
    when: (a) => splitList(String(a.upstream ?? '')).length > 0,
    notApplicable: 'needs --upstream (the servers Consul replaces; they stay the seed list)',
    validate: (v, a) => {
      if (v.trim() === '') return undefined;
      const problem = zodMessage(consulAddress)(v.trim());
      if (problem) return problem;
      return luaMissing(a, 'Consul discovery');
    },
  },
  {
    id: 'consulService',
    flag: '--consul-service <name>',
    kind: 'text',
    message: 'Consul service name of the upstream',
    help: 'Consul service whose passing instances are the peers (default app)',
    default: () => 'app',
    when: (a) => String(a.consul ?? '').trim() !== '',
    notApplicable: 'needs --consul',
    validate: (v) =>
      /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(v)
        ? undefined
        : 'must be a Consul service name (letters, digits, _ . -)',
  },
  {
    id: 'consulTokenEnv',
    tuning: true,
    flag: '--consul-token-env <NAME>',
    kind: 'text',
    message: 'Environment variable holding the Consul ACL token (empty: no ACLs)',
    help: 'Consul ACL token read from this variable at apply time (default none)',
    default: () => '',
    when: (a) => String(a.consul ?? '').trim() !== '',
    notApplicable: 'needs --consul',
    validate: (v) =>
      v === '' || /^[A-Za-z_][A-Za-z0-9_]*$/.test(v) ? undefined : 'must be an environment variable name',
  },
  {
    id: 'peerCheckPath',
    flag: '--peer-check <path>',
    kind: 'text',
    message: "Active health check of the peers: GET this path (empty: Consul's checks only)",
    help: 'path nginx requests on every discovered peer; below HTTP 500 is healthy (default /)',
    default: () => '/',
    when: (a) => String(a.consul ?? '').trim() !== '',
    notApplicable: 'needs --consul',
    validate: (v) =>
      v === '' || /^\/[A-Za-z0-9_.~%/?=&-]*$/.test(v) ? undefined : 'must be a URL path starting with /',
  },
  {
    id: 'grayCanary',
    flag: '--gray-canary <servers>',
    kind: 'text',
    message: 'Gray release: canary servers (comma-separated host:port; empty for none)',
    help: 'servers of a canary upstream "canary" that rules in Redis send chosen clients to (default none)',
    default: () => '',
    when: (a) => splitList(String(a.upstream ?? '')).length > 0,
    notApplicable: 'needs --upstream (the stable servers)',
    validate: (v, a) => {
      if (v.trim() === '') return undefined;
      return serverListProblem(v) ?? luaMissing(a, 'gray release');
    },
  },
  {
    id: 'grayRedis',
    flag: '--gray-redis <host:port>',
    kind: 'text',
    message: 'Redis holding the gray release rules (IPv4:port)',
    help: 'Redis the nodes read the gray release rules from, e.g. 10.0.0.7:6379',
    when: (a) => String(a.grayCanary ?? '').trim() !== '',
    notApplicable: 'needs --gray-canary',
    validate: (v) => zodMessage(redisAddress)(v.trim()),
  },
  {
    id: 'grayPasswordEnv',
    tuning: true,
    flag: '--gray-redis-password-env <NAME>',
    kind: 'text',
    message: 'Environment variable holding the Redis password (empty: none)',
    help: 'Redis password (requirepass) read from this variable at apply time (default none)',
    default: () => '',
    when: (a) => String(a.grayCanary ?? '').trim() !== '',
    notApplicable: 'needs --gray-canary',
    validate: (v) =>
      v === '' || /^[A-Za-z_][A-Za-z0-9_]*$/.test(v) ? undefined : 'must be an environment variable name',
  },
  // HTTPS on the VIP (site.tls).
  {
    id: 'tls',
    flag: '--tls <kind>',
    kind: 'select',
    message: 'HTTPS on the VIP?',
    help:
      'none, files (a certificate you have, beside the runbook) or acme (issued and renewed by an ACME CA ' +
      "such as Let's Encrypt) (default none)",
    choices: () => [
      { value: 'none', label: 'none', hint: 'plain HTTP only' },
      { value: 'files', label: 'certificate files', hint: 'a chain and key you already have, kept beside the runbook' },
      { value: 'acme', label: 'ACME', hint: "Let's Encrypt or another ACME CA; every node renews its own" },
    ],
    default: () => 'none',
    validate: (v, a) =>
      !['none', 'files', 'acme'].includes(v)
        ? 'choose none, files or acme'
        : v === 'acme' && String(a.listen ?? '80') !== '80'
          ? "ACME's http-01 challenge always comes to port 80: answer 80 for the site port (--listen 80)"
          : undefined,
  },
  {
    id: 'serverName',
    flag: '--server-name <names>',
    kind: 'text',
    message: 'Names of the site (space-separated, e.g. www.example.com example.com)',
    help: 'the DNS names clients use (server_name); the certificate must cover them (default: any name)',
    default: (a) => (a.tls === 'acme' ? undefined : ''),
    ...withHttps,
    validate: (v, a) => {
      const names = v.split(' ').filter(Boolean);
      if (names.some((n) => !DNS_NAME_PATTERN.test(n)))
        return 'give DNS names such as www.example.com, separated by spaces';
      if (a.tls === 'acme' && names.length === 0) return 'ACME needs at least one name to ask a certificate for';
      if (a.tls === 'acme' && names.some((n) => n.startsWith('*.')))
        return 'a wildcard needs a DNS challenge; the http-01 challenge ha-setup answers covers exact names only';
      return undefined;
    },
  },
  {
    id: 'tlsChain',
    flag: '--tls-chain <file>',
    kind: 'text',
    message: "Certificate chain file, relative to the runbook's folder (server certificate first, then intermediates)",
    help:
      'PEM chain beside the runbook (default tls/<name>.fullchain.pem); ' +
      'checked against the key before anything ships',
    default: (a) => `tls/${String(a.name ?? 'web-ha')}.fullchain.pem`,
    when: (a) => a.tls === 'files',
    notApplicable: 'needs --tls files',
    validate: (v) => zodMessage(tlsSettings.shape.certificate.unwrap().shape.chain)(v),
  },
  {
    id: 'tlsKey',
    flag: '--tls-key <file>',
    kind: 'text',
    message: "Private key file, relative to the runbook's folder (mode 0600)",
    help: 'PEM private key beside the runbook, mode 0600 (default tls/<name>.key); never in logs, plans or docs',
    default: (a) => `tls/${String(a.name ?? 'web-ha')}.key`,
    when: (a) => a.tls === 'files',
    notApplicable: 'needs --tls files',
    validate: (v) => zodMessage(tlsSettings.shape.certificate.unwrap().shape.key)(v),
  },
  {
    id: 'acmeDirectory',
    flag: '--acme-directory <ca>',
    kind: 'select',
    message: 'ACME CA',
    help:
      'letsencrypt-staging (test certificates, the default while trying), letsencrypt (production), ' +
      'or the https:// URL of an ACME directory',
    choices: () => [
      {
        value: 'letsencrypt-staging',
        label: "Let's Encrypt staging",
        hint: 'test certificates no browser trusts: try here first',
      },
      { value: 'letsencrypt', label: "Let's Encrypt", hint: 'production: browsers trust these' },
    ],
    default: () => 'letsencrypt-staging',
    ...withAcme,
    validate: (v) => zodMessage(acmeSettings.shape.directory)(v),
  },
  {
    id: 'acmeEmail',
    flag: '--acme-email <address>',
    kind: 'text',
    message: "Contact e-mail for the ACME account (the CA's expiry warnings; empty: none)",
    help: 'contact address of the ACME account (default none)',
    default: () => '',
    ...withAcme,
    validate: (v) => (v === '' ? undefined : zodMessage(acmeSettings.shape.email.unwrap())(v)),
  },
  {
    id: 'tlsSessionTickets',
    flag: '--no-tls-session-tickets',
    kind: 'confirm',
    message: 'Share TLS session tickets between the nodes (clients resume their sessions after a failover)?',
    help:
      'do not share session ticket keys between the nodes (by default a shared secret is generated into ' +
      'the .secrets file)',
    default: () => true,
    ...withHttps,
  },
  {
    id: 'tlsListen',
    tuning: true,
    flag: '--tls-listen <port>',
    kind: 'text',
    message: 'HTTPS port',
    help: 'port HTTPS listens on (default 443)',
    default: () => '443',
    ...withHttps,
    validate: (v, a) =>
      intIn(1, 65535, 'HTTPS port')(v) ??
      (v.trim() === String(a.listen ?? '80') ? 'HTTP already listens there' : undefined),
  },
  {
    id: 'redirectHttp',
    tuning: true,
    flag: '--no-redirect-http',
    kind: 'confirm',
    message: 'Redirect plain HTTP to HTTPS?',
    help: 'serve the site over plain HTTP too instead of redirecting it to https',
    default: () => true,
    ...withHttps,
  },
  {
    id: 'failover',
    flag: '--no-failover',
    kind: 'confirm',
    message: 'Run the measured failover test at the end of apply?',
    help: 'skip the failover test at the end of apply',
    default: () => true,
  },
  {
    id: 'maxDowntimeMs',
    tuning: true,
    flag: '--max-downtime-ms <ms>',
    kind: 'text',
    message: 'Maximum accepted failover downtime (ms)',
    help: 'failover test fails above this downtime (default 1000)',
    default: () => '1000',
    validate: intIn(1, 600000, 'maxDowntimeMs'),
    when: (a) => a.failover !== false,
  },
];

/** Why a feature that runs in nginx's Lua cannot be had with the chosen build, if it cannot. */
function picked(a: Answers, module: string): boolean {
  const modules = Array.isArray(a.modules) ? a.modules : splitList(String(a.modules ?? ''));
  return modules.includes(module);
}

function hasUpstream(a: Answers): boolean {
  return splitList(String(a.upstream ?? '')).length > 0;
}

function luaMissing(a: Answers, feature: string): string | undefined {
  const modules = Array.isArray(a.modules) ? a.modules : splitList(String(a.modules ?? ''));
  return a.flavor === 'nginx' && !modules.includes('lua')
    ? `${feature} runs in nginx's Lua: add lua to the modules (or use OpenResty), or leave this empty`
    : undefined;
}

export function defaultPriorities(a: Answers): number[] {
  const hosts = splitList(String(a.hosts ?? ''));
  const master = a.master === 'none' ? undefined : ((a.master as string | undefined) ?? hosts[0]);
  const order = master ? [master, ...hosts.filter((h) => h !== master)] : hosts;
  const byHost = new Map(order.map((h, i) => [h, 100 - 10 * i]));
  return hosts.map((h) => byHost.get(h)!);
}
