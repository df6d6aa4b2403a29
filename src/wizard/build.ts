import { randomBytes, randomInt } from 'node:crypto';
import type { RunbookInput } from '../runbook/schema.js';
import { splitList, type Answers } from './questions.js';

export const VRRP_PASSWORD_ENV = 'HA_SETUP_VRRP_PASSWORD';
export const TICKET_SECRET_ENV = 'HA_SETUP_TLS_TICKET_SECRET';

/** Pure: the answers (from flags, defaults or prompts) become a runbook document. */
export function runbookFromAnswers(a: Answers): RunbookInput {
  const hosts = splitList(String(a.hosts));
  const priorities = splitList(String(a.priorities)).map(Number);
  const master = a.master === 'none' ? undefined : String(a.master);
  const vrrpVersion = Number(a.vrrpVersion) as 2 | 3;
  const preempt = master === undefined ? false : a.preempt !== false;
  const upstreamServers = splitList(String(a.upstream ?? ''));
  const identityFile = String(a.identityFile ?? '').trim();
  return {
    version: 1,
    name: String(a.name),
    ssh: { user: String(a.sshUser), port: Number(a.sshPort), ...(identityFile ? { identityFile } : {}) },
    nodes: hosts.map((host, i) => ({ host, role: host === master ? 'master' : 'backup', priority: priorities[i] })),
    vrrp: {
      vip: String(a.vip),
      interface: String(a.interface),
      virtualRouterId: Number(a.vrid),
      version: vrrpVersion,
      advertInt: Number(a.advertInt),
      unicast: a.unicast === true,
      preempt,
      ...(String(a.witness ?? '').trim() ? { witness: { address: String(a.witness).trim() } } : {}),
      ...(vrrpVersion === 2 ? { auth: { passwordEnv: VRRP_PASSWORD_ENV } } : {}),
    },
    build: {
      flavor: a.flavor as 'openresty' | 'nginx',
      version: String(a.buildVersion),
      prefix: String(a.prefix),
      jobs: 'auto',
      modules: Array.isArray(a.modules) ? a.modules : splitList(String(a.modules ?? '')),
    },
    keepalived: {
      version: String(a.keepalivedVersion),
      prefix: String(a.keepalivedPrefix),
      rtPriority: Number(a.rtPriority ?? 0),
      check: {
        interval: Number(a.checkInterval),
        fall: Number(a.checkFall),
        rise: Number(a.checkRise),
        weight: Number(a.checkWeight),
      },
    },
    site: {
      listen: Number(a.listen),
      upstreams:
        upstreamServers.length > 0
          ? [
              { name: 'app', servers: upstreamServers, ...discoveryFromAnswers(a), ...upstreamModules(a) },
              ...canaryUpstream(a),
            ]
          : [],
      ...grayFromAnswers(a),
      ...siteModules(a),
      ...tlsFromAnswers(a),
    },
    verify: { failover: a.failover !== false, maxDowntimeMs: Number(a.maxDowntimeMs ?? 1000) },
  };
}

/** upstream-check and sticky on the site's upstream, as the module questions answered. */
function upstreamModules(a: Answers) {
  const checkPath = String(a.checkPath ?? '').trim();
  const cookie = String(a.stickyCookie ?? '').trim();
  return { ...(checkPath ? { check: { path: checkPath } } : {}), ...(cookie ? { sticky: { cookie } } : {}) };
}

/** The cached, LDAP-protected and listing locations the module questions asked for. */
function siteModules(a: Answers) {
  const locations = [];
  const cache = String(a.cacheLocation ?? '').trim();
  const ldapUrl = String(a.ldapUrl ?? '').trim();
  const files = String(a.filesLocation ?? '').trim();
  if (cache) locations.push({ path: cache, upstream: 'app', cache: { valid: '10m' } });
  if (ldapUrl) locations.push({ path: String(a.ldapLocation ?? '/admin/'), upstream: 'app', authLdap: 'directory' });
  if (files) locations.push({ path: files.split('=')[0], fancyindex: { root: files.split('=')[1] } });
  const bindDn = String(a.ldapBindDn ?? '').trim();
  return {
    ...(locations.length ? { locations } : {}),
    ...(cache ? { cache: {} } : {}),
    ...(ldapUrl
      ? {
          ldap: [
            {
              name: 'directory',
              url: ldapUrl,
              ...(bindDn ? { bindDn, bindPasswordEnv: String(a.ldapPasswordEnv ?? 'HA_SETUP_LDAP_PASSWORD') } : {}),
            },
          ],
        }
      : {}),
  };
}

/** site.tls (and the names it serves) as the HTTPS questions answered. */
function tlsFromAnswers(a: Answers) {
  if (a.tls === undefined || a.tls === 'none') return {};
  const serverName = String(a.serverName ?? '').trim();
  const email = String(a.acmeEmail ?? '').trim();
  return {
    ...(serverName ? { serverName } : {}),
    tls: {
      listen: Number(a.tlsListen ?? 443),
      redirectHttp: a.redirectHttp !== false,
      ...(a.tls === 'files'
        ? { certificate: { chain: String(a.tlsChain), key: String(a.tlsKey) } }
        : { acme: { directory: String(a.acmeDirectory ?? 'letsencrypt-staging'), ...(email ? { email } : {}) } }),
      ...(a.tlsSessionTickets !== false ? { sessionTickets: { secretEnv: TICKET_SECRET_ENV } } : {}),
    },
  };
}

/** 48 random characters for the session ticket secret (base64url alphabet: fine in the .secrets file). */
export function generateTicketSecret(): string {
  return randomBytes(36).toString('base64url');
}

function canaryUpstream(a: Answers) {
  const servers = splitList(String(a.grayCanary ?? ''));
  return servers.length > 0 ? [{ name: 'canary', servers }] : [];
}

function grayFromAnswers(a: Answers) {
  if (splitList(String(a.grayCanary ?? '')).length === 0) return {};
  const passwordEnv = String(a.grayPasswordEnv ?? '').trim();
  return {
    gray: {
      redis: { address: String(a.grayRedis).trim(), ...(passwordEnv ? { passwordEnv } : {}) },
      stable: 'app',
      canary: 'canary',
    },
  };
}

function discoveryFromAnswers(a: Answers) {
  const address = String(a.consul ?? '').trim();
  if (!address) return {};
  const tokenEnv = String(a.consulTokenEnv ?? '').trim();
  const path = String(a.peerCheckPath ?? '').trim();
  return {
    discovery: {
      consul: { address, service: String(a.consulService ?? 'app'), interval: 1, ...(tokenEnv ? { tokenEnv } : {}) },
      ...(path ? { check: { path } } : {}),
    },
  };
}

/**
 * `--node host:role:priority` (repeatable) is the explicit form; it fills hosts, master and
 * priorities at once.
 */
export function answersFromNodeSpecs(specs: string[]): { answers: Answers; errors: string[] } {
  const errors: string[] = [];
  const hosts: string[] = [];
  const prios: string[] = [];
  let master: string | undefined;
  for (const spec of specs) {
    const m = /^([^:]+):(master|backup):(\d+)$/.exec(spec);
    if (!m) {
      errors.push(`--node ${spec}: expected host:role:priority, e.g. 192.168.56.101:master:100`);
      continue;
    }
    hosts.push(m[1]);
    prios.push(m[3]);
    if (m[2] === 'master') master = m[1];
  }
  return { answers: { hosts: hosts.join(','), priorities: prios.join(','), master: master ?? 'none' }, errors };
}

/** 8 characters: keepalived's auth_pass silently truncates anything longer. */
export function generateVrrpPassword(): string {
  const alphabet = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789';
  return Array.from({ length: 8 }, () => alphabet[randomInt(alphabet.length)]).join('');
}
