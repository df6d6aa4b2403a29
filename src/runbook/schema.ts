import { z } from 'zod';
import { parseNetwork } from '../net.js';
import {
  cacheSettings,
  ldapServer,
  siteLocation,
  statusPage,
  stickySettings,
  upstreamCheck,
} from './module-settings.js';
import { gitRefProblem, gitUrlProblem, isCommit, SOURCE_VERSION } from '../sources/git-syntax.js';
import { tlsSettings } from './tls-settings.js';

// Runbook v1. Key names are a contract: acceptance tests and users' files rely on them.
// Every object is strict so a typo such as `vrp:` is an error, never silently ignored.
// Cross-field rules (roles, priorities, VIP subnet, module compatibility...) live in validate.ts.

const SHELL_SAFE_PATH = /^\/[A-Za-z0-9_.+/-]*$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
const IFACE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/;

export const interfaceName = z.string().superRefine((s, ctx) => {
  if (s.length === 0)
    ctx.addIssue({
      code: 'custom',
      message: 'interface name is empty; use the name shown by `ip link`, e.g. eth0 or ens192',
    });
  else if (s.length > 15)
    ctx.addIssue({
      code: 'custom',
      message: `interface name "${s}" is ${s.length} characters; Linux allows at most 15`,
    });
  else if (!IFACE.test(s))
    ctx.addIssue({
      code: 'custom',
      message:
        `interface name "${s}" has characters that are not allowed; use letters, digits, '.', '_' and '-' ` +
        `only (no '/', spaces or shell metacharacters)`,
    });
});

export const absolutePath = z.string().superRefine((s, ctx) => {
  if (!s.startsWith('/'))
    ctx.addIssue({ code: 'custom', message: `"${s}" is not an absolute path; it must start with /` });
  else if (/\s/.test(s))
    ctx.addIssue({ code: 'custom', message: `"${s}" contains whitespace; use a path without spaces` });
  else if (s.split('/').includes('..'))
    ctx.addIssue({ code: 'custom', message: `"${s}" contains '..'; give the real path` });
  else if (!SHELL_SAFE_PATH.test(s))
    ctx.addIssue({
      code: 'custom',
      message: `"${s}" contains shell metacharacters; use letters, digits and . _ + - / only`,
    });
});

/**
 * Directories ha-setup installs into, builds in or cleans: never a system directory itself (a prefix
 * of /usr would put nginx's conf/ and logs/ over the system's, a build dir of /etc would be emptied).
 */
const SYSTEM_DIRS = new Set([
  '/',
  '/bin',
  '/boot',
  '/dev',
  '/etc',
  '/home',
  '/lib',
  '/lib32',
  '/lib64',
  '/libx32',
  '/media',
  '/mnt',
  '/opt',
  '/proc',
  '/root',
  '/run',
  '/sbin',
  '/srv',
  '/sys',
  '/tmp',
  '/usr',
  '/usr/bin',
  '/usr/include',
  '/usr/lib',
  '/usr/lib64',
  '/usr/libexec',
  '/usr/local',
  '/usr/local/bin',
  '/usr/local/etc',
  '/usr/local/include',
  '/usr/local/lib',
  '/usr/local/sbin',
  '/usr/local/share',
  '/usr/local/src',
  '/usr/sbin',
  '/usr/share',
  '/usr/src',
  '/var',
  '/var/cache',
  '/var/lib',
  '/var/log',
  '/var/run',
  '/var/tmp',
  '/var/spool',
  '/var/mail',
  '/var/www',
  '/etc/keepalived',
  '/etc/systemd',
  '/etc/systemd/system',
]);
const UNDER_SYSTEM = /^\/(proc|sys|dev|boot|etc|run)(\/|$)/;

export const installDir = absolutePath.superRefine((s, ctx) => {
  const dir = s.replace(/\/+$/, '') || '/';
  if (SYSTEM_DIRS.has(dir))
    ctx.addIssue({
      code: 'custom',
      message:
        `"${s}" is a system directory; give a directory of its ` +
        `own, e.g. ${dir === '/' ? '/usr/local/nginx' : `${dir}/nginx`}`,
    });
  else if (UNDER_SYSTEM.test(dir))
    ctx.addIssue({
      code: 'custom',
      message:
        `"${s}" is under ${dir.split('/').slice(0, 2).join('/')}, which holds the system's own files; use ` +
        `/usr/local/<name> or /opt/<name>`,
    });
});

/** The system's own logs under /var/log: a keepalived log file must not be one of them. */
const SYSTEM_LOGS = [
  'syslog',
  'messages',
  'auth.log',
  'secure',
  'kern.log',
  'daemon.log',
  'wtmp',
  'btmp',
  'lastlog',
  'faillog',
  'dpkg.log',
  'journal',
];
const SYSTEM_LOG = new RegExp(`^/var/log/(${SYSTEM_LOGS.map((f) => f.replace('.', '\\.')).join('|')})(/|$)`);

/** keepalived's log is written by rsyslog and rotated: a file of its own under /var/log. */
const logFile = absolutePath.superRefine((s, ctx) => {
  if (!/^\/var\/log\/[A-Za-z0-9_.+-]+(\/[A-Za-z0-9_.+-]+)*$/.test(s) || s.endsWith('/')) {
    ctx.addIssue({
      code: 'custom',
      message:
        `"${s}" must be a file under /var/log, e.g. /var/log/keepalived.log (rsyslog appends to it, ` +
        `logrotate rotates it)`,
    });
  } else if (SYSTEM_LOG.test(s)) {
    ctx.addIssue({
      code: 'custom',
      message: `"${s}" is a system log; give keepalived a file of its own, e.g. /var/log/keepalived.log`,
    });
  }
});

const port = (what: string) =>
  z
    .number({ error: `${what} must be a whole number from 1 to 65535` })
    .int(`${what} must be a whole number from 1 to 65535`)
    .min(1, `${what} must be from 1 to 65535`)
    .max(65535, `${what} must be from 1 to 65535`);

const envName = z
  .string()
  .regex(ENV_NAME, 'must be an environment variable name (letters, digits, _; not starting with a digit)');

/** A local path on the control machine: anything but an option-looking or empty string. */
const localPath = z
  .string()
  .min(1, 'must not be empty')
  .refine((s) => !s.startsWith('-'), 'must not start with "-"');

const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'must be a sha256 checksum: 64 lowercase hex digits');

export const sshSchema = z.strictObject({
  user: z
    .string()
    .regex(/^[a-z_][a-z0-9_.-]{0,31}\$?$/i, 'must be a valid user name (up to 32 characters)')
    .default('root'),
  port: port('ssh port').default(22),
  identityFile: localPath.optional(),
  knownHostsFile: localPath.optional(),
  sudoPasswordEnv: envName.optional(),
});

export const nodeSchema = z.strictObject({
  host: z.string(),
  role: z.enum(['master', 'backup'], { error: 'role must be master or backup' }),
  priority: z
    .number({ error: 'priority must be a whole number from 1 to 254' })
    .int('priority must be a whole number from 1 to 254')
    .min(1, 'priority must be from 1 to 254')
    .max(254, 'priority must be from 1 to 254 (255 is reserved for the address owner)'),
  interface: interfaceName.optional(),
  name: z
    .string()
    .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'must be lowercase letters, digits and dashes')
    .optional(),
  user: z
    .string()
    .regex(/^[a-z_][a-z0-9_.-]{0,31}$/i, 'must be a valid user name (up to 32 characters)')
    .optional(),
  port: port('ssh port').optional(),
});

export const vrrpSchema = z.strictObject({
  vip: z.string(),
  interface: interfaceName,
  virtualRouterId: z
    .number({ error: 'virtualRouterId must be a whole number from 1 to 255' })
    .int('virtualRouterId must be a whole number from 1 to 255')
    .min(1, 'virtualRouterId must be from 1 to 255')
    .max(255, 'virtualRouterId must be from 1 to 255'),
  version: z.union([z.literal(2), z.literal(3)], { error: 'version must be 2 or 3' }).default(3),
  advertInt: z.number({ error: 'advertInt must be a number of seconds' }).default(1),
  unicast: z.boolean().default(false),
  preempt: z.boolean().default(true),
  auth: z.strictObject({ passwordEnv: envName }).optional(),
  /**
   * An address on the clients' side (e.g. the default gateway) every node must reach: a node that
   * cannot (its uplink is down, it is cut off from the clients) goes to FAULT and does not hold the VIP.
   */
  witness: z
    .strictObject({
      address: z.string(),
      /** Seconds between pings. */
      interval: z.number({ error: 'interval must be a number of seconds' }).int().min(1).max(60).default(1),
      /** Failed pings in a row before the node gives up the VIP. */
      fall: z.number().int().min(1).max(20).default(3),
      /** Answered pings in a row before it may hold the VIP again. */
      rise: z.number().int().min(1).max(20).default(2),
    })
    .optional(),
});

export const MODULE_ID = z.string();

export const buildSchema = z.strictObject({
  flavor: z.enum(['openresty', 'nginx'], { error: 'flavor must be openresty or nginx' }).default('openresty'),
  version: z
    .string()
    .regex(/^\d+\.\d+\.\d+(\.\d+)?$/, 'must be a dotted version such as 1.27.1.2 (openresty) or 1.22.1 (nginx)'),
  prefix: installDir,
  jobs: z
    .union([z.literal('auto'), z.number().int().min(1).max(256)], {
      error: 'jobs must be "auto" or a whole number from 1 to 256',
    })
    .default('auto'),
  modules: z.array(MODULE_ID).default([]),
  buildDir: installDir.default('/usr/local/src/ha-setup'),
  /** Extra ./configure options: each one option, `--name` or `--name=value`. */
  configureArgs: z
    .array(
      z
        .string()
        .regex(
          /^--[a-z][a-z0-9_-]*(=.*)?$/s,
          'must be one configure option such as --with-http_sub_module or --with-cc-opt=-O2',
        )
        // nginx's configure and OpenResty's Perl configure put options into generated shell and make
        // files: no command substitution, no newlines, whatever the quoting on the way there.
        .refine((s) => !/[`\n\r\x00]|\$[({]/.test(s), 'must not contain backticks, $( , ${ or newlines'),
    )
    .default([]),
});

export const keepalivedSchema = z.strictObject({
  version: z.string().regex(/^\d+\.\d+\.\d+$/, 'must be a dotted version such as 2.2.7'),
  prefix: installDir.default('/usr/local/keepalived'),
  install: z.enum(['source', 'package'], { error: 'install must be source or package' }).default('source'),
  /**
   * The nginx unit flips a track file on stop/crash so the VIP moves at once (false: health check only, as in the
   * reference articles).
   */
  trackNginx: z.boolean().default(true),
  /**
   * An executable on every node, called on each VRRP transition and on a split brain:
   * `<hook> MASTER|BACKUP|FAULT|STOP|SPLIT-BRAIN|SPLIT-BRAIN-OVER <node> <vip> <detail>`
   * (in the background, 30 s at most; a failure is logged, never blocks keepalived).
   */
  notifyHook: absolutePath.optional(),
  /**
   * Realtime scheduling (SCHED_RR) for keepalived's VRRP process, 1..99; 0 leaves it a normal
   * process. A busy host then still sends and reads sub-second adverts on time (no false failover).
   */
  rtPriority: z
    .number({ error: 'rtPriority must be a whole number from 0 (off) to 99' })
    .int('rtPriority must be a whole number from 0 (off) to 99')
    .min(0, 'rtPriority must be from 0 (off) to 99')
    .max(99, 'rtPriority must be from 0 (off) to 99')
    .default(0),
  check: z
    .strictObject({
      interval: z
        .number({ error: 'interval must be a whole number of seconds >= 1' })
        .int('interval must be a whole number of seconds >= 1')
        .min(1, 'interval must be at least 1 second')
        .default(1),
      fall: z
        .number({ error: 'fall must be a whole number >= 1' })
        .int('fall must be a whole number >= 1')
        .min(1, 'fall must be at least 1')
        .default(2),
      rise: z
        .number({ error: 'rise must be a whole number >= 1' })
        .int('rise must be a whole number >= 1')
        .min(1, 'rise must be at least 1')
        .default(2),
      weight: z
        .number({ error: 'weight must be a whole number from -253 to 253' })
        .int('weight must be a whole number from -253 to 253')
        .min(-253, 'weight must be from -253 to 253')
        .max(253, 'weight must be from -253 to 253')
        .default(0),
    })
    .default({ interval: 1, fall: 2, rise: 2, weight: 0 }),
});

const UNIX_SOCKET = String.raw`unix:\/[A-Za-z0-9_./-]+`;
const IPV6_PORT = String.raw`\[[0-9A-Fa-f:]+\](:\d{1,5})?`;
const NAME_PORT = String.raw`[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*(:\d{1,5})?`;
const SERVER_PARAMS = '( +[a-z_]+(=[A-Za-z0-9_.:]+)?)*';
const UPSTREAM_SERVER = new RegExp(`^(${UNIX_SOCKET}|${IPV6_PORT}|${NAME_PORT})${SERVER_PARAMS}$`);

/**
 * One nginx `server` line: an address (IPv4 or name with an optional port, [IPv6]:port, unix:/path), then parameters.
 */
const upstreamServer = z
  .string()
  .max(256, 'must be at most 256 characters')
  .regex(
    UPSTREAM_SERVER,
    'must be one nginx server line: an address and parameters, e.g. "10.0.0.21:8080 weight=4 max_fails=2"',
  );

/** Include files and directories stay beside the runbook: relative, and never above its folder. */
function besideRunbookProblem(s: string): string | undefined {
  if (s.startsWith('/')) return `"${s}" is absolute; give a path relative to the runbook's folder`;
  if (s.split('/').includes('..'))
    return `"${s}" goes up with '..'; keep include files in the runbook's folder or below it`;
  return undefined;
}

/** A file on the control machine, relative to the runbook; its name becomes part of a path on the nodes. */
const localConfFile = z.string().superRefine((s, ctx) => {
  const base = s.split('/').pop() ?? '';
  const beside = besideRunbookProblem(s);
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*\.conf$/.test(base))
    ctx.addIssue({ code: 'custom', message: `"${s}" must name a .conf file (letters, digits, . _ - in its name)` });
  else if (s.startsWith('-')) ctx.addIssue({ code: 'custom', message: `"${s}" starts with "-"` });
  else if (beside) ctx.addIssue({ code: 'custom', message: beside });
});

/** A directory of Lua modules on the control machine, relative to the runbook. */
const localLuaDir = z.string().superRefine((s, ctx) => {
  const beside = besideRunbookProblem(s);
  if (s.startsWith('-')) ctx.addIssue({ code: 'custom', message: `"${s}" starts with "-"` });
  else if (!/^[A-Za-z0-9_./-]+$/.test(s))
    ctx.addIssue({ code: 'custom', message: `"${s}" must be a directory path of letters, digits and . _ - /` });
  else if (beside) ctx.addIssue({ code: 'custom', message: beside });
});

/**
 * A service nginx reaches from Lua (cosockets resolve no names): `<prefix><IPv4>[:port]`.
 * `shape` is the message for anything else.
 */
const ipv4Endpoint = (prefix: string, shape: string) =>
  z.string().superRefine((s, ctx) => {
    const m = new RegExp(`^${prefix}(\\d{1,3})\\.(\\d{1,3})\\.(\\d{1,3})\\.(\\d{1,3})(?::(\\d{1,5}))?$`).exec(s);
    if (!m) ctx.addIssue({ code: 'custom', message: shape });
    else if (m.slice(1, 5).some((o) => Number(o) > 255))
      ctx.addIssue({ code: 'custom', message: 'has an address octet above 255' });
    // 010 is 8 to some parsers and 10 to others: the nodes and this machine must mean one host.
    else if (m.slice(1, 5).some((o) => o.length > 1 && o.startsWith('0')))
      ctx.addIssue({ code: 'custom', message: 'has an address octet with a leading zero' });
    // A secret goes there: never "this network", link-local (cloud metadata), multicast or broadcast.
    // Loopback is fine: a Redis or a Consul agent on every node.
    else if (/^(0|169\.254|22[4-9]|2[3-5]\d)\./.test(m.slice(1, 5).join('.')))
      ctx.addIssue({
        code: 'custom',
        message: 'is not a unicast host address (0.0.0.0/8, link-local, multicast or broadcast)',
      });
    else if (m[5] !== undefined && (Number(m[5]) < 1 || Number(m[5]) > 65535))
      ctx.addIssue({ code: 'custom', message: 'has a port outside 1..65535' });
  });

/** Consul's HTTP API: the nodes poll it from nginx (cosockets), so an IPv4 address, not a name. */
export const consulAddress = ipv4Endpoint(
  'https?://',
  'must be http://<IPv4>[:port] or https://<IPv4>[:port] of a Consul agent, ' +
    'e.g. https://10.0.0.5:8501 (nginx resolves no names here)',
);

/**
 * TLS to a service the gateway talks to (Consul over https, Redis): the certificate is verified
 * against `caFile` (a PEM file beside the runbook, shipped to the nodes; without one, the nodes'
 * system CAs) for `serverName` (without one, the address: the certificate needs an IP SAN).
 */
export const tlsClient = z.strictObject({
  caFile: z
    .string()
    .superRefine((s, ctx) => {
      const beside = besideRunbookProblem(s);
      if (beside) ctx.addIssue({ code: 'custom', message: beside });
      else if (!/^[A-Za-z0-9_][A-Za-z0-9_./-]*$/.test(s))
        ctx.addIssue({ code: 'custom', message: `"${s}" must be a file path of letters, digits and . _ - /` });
    })
    .optional(),
  serverName: z
    .string()
    .regex(
      /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/,
      'must be a DNS name the certificate is for, e.g. consul.example.internal',
    )
    .optional(),
});

const consulDiscovery = z.strictObject({
  address: consulAddress,
  service: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/, 'must be a Consul service name (letters, digits, _ . -)'),
  /** Seconds between polls of /v1/health/service/<service>?passing. */
  interval: z
    .number({ error: 'interval must be a number of seconds from 0.2 to 60' })
    .min(0.2, 'interval must be at least 0.2 seconds')
    .max(60, 'interval must be at most 60 seconds')
    .default(1),
  /** The ACL token, read from this environment variable (or the runbook's .secrets file) at apply time. */
  tokenEnv: envName.optional(),
  /** With an https:// address: how the certificate is verified. */
  tls: tlsClient.optional(),
});

/** Active health check of discovered peers, from nginx: what Consul has not noticed yet. */
const activeCheck = z.strictObject({
  /** GET this path on every peer; an answer below 500 is healthy. */
  path: z
    .string()
    .regex(/^\/[A-Za-z0-9_.~%/?=&-]*$/, 'must be a URL path starting with / (letters, digits and _ . ~ % / ? = & -)')
    .default('/'),
  interval: z
    .number({ error: 'interval must be a number of seconds from 0.2 to 60' })
    .min(0.2, 'interval must be at least 0.2 seconds')
    .max(60, 'interval must be at most 60 seconds')
    .default(1),
  fall: z
    .number()
    .int('fall must be a whole number from 1 to 10')
    .min(1, 'fall must be from 1 to 10')
    .max(10, 'fall must be from 1 to 10')
    .default(2),
  rise: z
    .number()
    .int('rise must be a whole number from 1 to 10')
    .min(1, 'rise must be from 1 to 10')
    .max(10, 'rise must be from 1 to 10')
    .default(2),
});

/** Redis as the nodes reach it (from nginx, cosockets): an IPv4 address, port 6379 unless given. */
export const redisAddress = ipv4Endpoint(
  '',
  'must be <IPv4>[:port] of a Redis server, e.g. 10.0.0.7:6379 (nginx resolves no names here)',
);

const upstreamName = z.string().regex(/^[A-Za-z0-9_]+$/, 'must be letters, digits and _ only');

/** Gray release: rules in Redis send chosen clients to the canary upstream (see `ha-setup gray`). */
export const grayRelease = z.strictObject({
  redis: z.strictObject({
    address: redisAddress,
    db: z
      .number({ error: 'db must be a whole number from 0 to 15' })
      .int('db must be a whole number from 0 to 15')
      .min(0, 'db must be from 0 to 15')
      .max(15, 'db must be from 0 to 15')
      .default(0),
    /** The Redis password (requirepass), read from this environment variable or the .secrets file. */
    passwordEnv: envName.optional(),
    /** Redis over TLS (its tls-port): the password and the rules never cross the network in clear. */
    tls: tlsClient.optional(),
  }),
  /** Redis keys: <key>:ips, <key>:values (sets) and <key>:percent. */
  key: z
    .string()
    .regex(/^[A-Za-z0-9_.:-]{1,64}$/, 'must be up to 64 letters, digits and _ . : -')
    .default('ha-setup:gray'),
  stable: upstreamName,
  canary: upstreamName,
  /** A request header whose value, when it is in <key>:values, sends the request to canary. */
  header: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9-]{0,63}$/, 'must be an HTTP header name (letters, digits and -)')
    .default('X-Gray'),
  /** A cookie matched like the header; with one, the percentage hashes the cookie instead of the client IP. */
  cookie: z
    .string()
    .regex(/^[A-Za-z0-9_]{1,64}$/, 'must be a cookie name of letters, digits and _')
    .optional(),
  /** Seconds between reads of the rules from Redis. */
  refresh: z
    .number({ error: 'refresh must be a number of seconds from 0.2 to 60' })
    .min(0.2, 'refresh must be at least 0.2 seconds')
    .max(60, 'refresh must be at most 60 seconds')
    .default(1),
});

export const siteSchema = z.strictObject({
  listen: port('listen port').default(80),
  serverName: z
    .string()
    .regex(/^[A-Za-z0-9_.*~-]+( [A-Za-z0-9_.*~-]+)*$/, 'must be nginx server names separated by spaces')
    .default('_'),
  /** Your own nginx configuration, files next to the runbook, tested with nginx -t with the rest. */
  include: z
    .strictObject({
      http: z.array(localConfFile).default([]),
      server: z.array(localConfFile).default([]),
      /** Directories of your Lua modules (`require "x.y"` finds x/y.lua); needs lua (nginx) or OpenResty. */
      lua: z.array(localLuaDir).default([]),
    })
    .default({ http: [], server: [], lua: [] }),
  upstreams: z
    .array(
      z.strictObject({
        name: upstreamName,
        /** The servers; with discovery, the seed list used until Consul first answers. */
        servers: z.array(upstreamServer).min(1, 'an upstream needs at least one server'),
        /** Peers from Consul, changed without a reload (balancer_by_lua); needs lua (nginx) or OpenResty. */
        discovery: z.strictObject({ consul: consulDiscovery, check: activeCheck.optional() }).optional(),
        /** An active check of every server by nginx itself (needs the upstream-check module). */
        check: upstreamCheck.optional(),
        /** Keep a client on one server by a cookie (the sticky module where it builds, else a consistent hash). */
        sticky: stickySettings.optional(),
      }),
    )
    .default([]),
  /** Locations of the site beyond `/`: proxied, LDAP-protected, cached, directory listings. */
  locations: z.array(siteLocation).default([]),
  /** LDAP directories locations can be protected by (needs auth-ldap). */
  ldap: z.array(ldapServer).default([]),
  /** A cache zone for locations with `cache` (purging needs cache-purge). */
  cache: cacheSettings.optional(),
  /** upstream-check's status page (with the module and a check; on localhost unless allowed). */
  checkStatus: statusPage('/check_status').optional(),
  /** The vts module's status page (on localhost unless allowed). */
  vts: statusPage('/vts').optional(),
  /** Gray release from Redis between two of the upstreams; needs lua (nginx) or OpenResty. */
  gray: grayRelease.optional(),
  /** HTTPS on the VIP: the certificate (files or ACME), session tickets shared by the nodes. */
  tls: tlsSettings.optional(),
  /**
   * Networks upstream peers may be in (static servers and peers from Consul). Empty: any ordinary
   * unicast address; loopback, link-local, multicast and broadcast are refused unless listed here.
   */
  peerNetworks: z
    .array(
      z
        .string()
        .refine((s) => parseNetwork(s) !== undefined, 'must be an IPv4 network such as 10.0.0.0/8 or 127.0.0.0/8'),
    )
    .default([]),
});

const gitUrl = z.string().superRefine((s, ctx) => {
  const p = gitUrlProblem(s);
  if (p) ctx.addIssue({ code: 'custom', message: p });
});

const gitRef = z.string().superRefine((s, ctx) => {
  const p = gitRefProblem(s);
  if (p) ctx.addIssue({ code: 'custom', message: p });
});

const downloadUrl = z.string().regex(/^https?:\/\/[^\s]+$/, 'must be an http:// or https:// URL without spaces');

export const sourceOverride = z.strictObject({
  version: z
    .string()
    .regex(SOURCE_VERSION, 'must be a version label: letters, digits and . _ + - (it becomes part of file names)')
    .optional(),
  url: downloadUrl.optional(),
  path: localPath.optional(),
  /** A git repository instead of a tarball; needs `ref`. */
  git: gitUrl.optional(),
  /** Tag, branch or full commit id; a tag or branch should be held to `commit`. */
  ref: gitRef.optional(),
  /** The commit `ref` must resolve to (recorded by --trust-on-first-download). */
  commit: z.string().refine(isCommit, 'must be a full commit id (40 hex digits)').optional(),
  sha256: sha256.optional(),
});

/** Prefix of a git URL -> its replacement (like git's url.<base>.insteadOf), for air-gapped sites. */
const gitRewrite = z.record(gitUrl, gitUrl);

export const sourcesSchema = z.strictObject({
  /** Local directory with tarballs named as upstream names them; checked before any download. */
  mirror: localPath.optional(),
  cacheDir: localPath.optional(),
  /** Rewrites git URLs before cloning, e.g. { "https://github.com/": "https://git.example.internal/github/" }. */
  gitRewrite: gitRewrite.default({}),
  /** Per source id (nginx, openresty, keepalived, lua-nginx-module, ...): where to get it and its pin. */
  overrides: z.record(z.string(), sourceOverride).default({}),
});

export const loggingSchema = z.strictObject({
  keepalivedLog: logFile.default('/var/log/keepalived.log'),
  facility: z.enum(['local0', 'local1', 'local2', 'local3', 'local4', 'local5', 'local6', 'local7']).default('local0'),
});

export const firewallSchema = z.strictObject({
  manage: z.boolean().default(true),
});

export const verifySchema = z.strictObject({
  failover: z.boolean().default(true),
  maxDowntimeMs: z
    .number({ error: 'maxDowntimeMs must be a positive whole number of milliseconds' })
    .int('maxDowntimeMs must be a positive whole number of milliseconds')
    .positive('maxDowntimeMs must be a positive whole number of milliseconds')
    .default(1000),
});

export const runbookSchema = z.strictObject({
  version: z.literal(1, { error: 'version must be 1 (the only runbook version this ha-setup reads)' }),
  name: z
    .string()
    .regex(
      /^[a-z0-9][a-z0-9-]{0,62}$/,
      'name must be up to 63 lowercase letters, digits and dashes ([a-z0-9-]+), starting with a letter or digit',
    ),
  ssh: sshSchema.default({ user: 'root', port: 22 }),
  nodes: z.array(nodeSchema),
  vrrp: vrrpSchema,
  build: buildSchema,
  keepalived: keepalivedSchema,
  site: siteSchema.default({
    listen: 80,
    serverName: '_',
    upstreams: [],
    include: { http: [], server: [], lua: [] },
    peerNetworks: [],
    locations: [],
    ldap: [],
  }),
  sources: sourcesSchema.default({ overrides: {}, gitRewrite: {} }),
  logging: loggingSchema.default({ keepalivedLog: '/var/log/keepalived.log', facility: 'local0' }),
  firewall: firewallSchema.default({ manage: true }),
  verify: verifySchema.default({ failover: true, maxDowntimeMs: 1000 }),
});

export type Runbook = z.output<typeof runbookSchema>;
export type RunbookInput = z.input<typeof runbookSchema>;
export type RunbookNode = Runbook['nodes'][number];
