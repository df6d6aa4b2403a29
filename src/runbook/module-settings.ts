import { z } from 'zod';
import { parseNetwork } from '../net.js';

// What the articles' third-party modules do, configured from the runbook instead of hand-written
// nginx.conf fragments: upstream-check's checks and status page, sticky sessions, an LDAP-protected
// location, a cache with a purge location, a directory listing, the vts status page. Which field
// needs which module is checked in validate.ts; the rendering is in templates/site.conf.njk.

const ms = (what: string, min: number, max: number) =>
  z
    .number({ error: `${what} must be a whole number of milliseconds from ${min} to ${max}` })
    .int(`${what} must be a whole number of milliseconds from ${min} to ${max}`)
    .min(min, `${what} must be at least ${min} ms`)
    .max(max, `${what} must be at most ${max} ms`);

const count = (what: string) =>
  z
    .number({ error: `${what} must be a whole number from 1 to 20` })
    .int(`${what} must be a whole number from 1 to 20`)
    .min(1, `${what} must be from 1 to 20`)
    .max(20, `${what} must be from 1 to 20`);

/** An nginx time such as 30s, 10m, 1h, 7d. */
const nginxTime = z.string().regex(/^\d{1,6}(ms|s|m|h|d|w|M|y)$/, 'must be an nginx time such as 30s, 10m, 1h or 7d');
/** An nginx size such as 10m, 1g. */
const nginxSize = z.string().regex(/^\d{1,6}[kKmMgG]?$/, 'must be an nginx size such as 512k, 10m or 1g');

/** Who may reach a status or purge location: IPv4 addresses or networks. */
const allowList = z
  .array(
    z
      .string()
      .refine(
        (s) => parseNetwork(s.includes('/') ? s : `${s}/32`) !== undefined,
        'must be an IPv4 address or network, e.g. 127.0.0.1 or 10.0.0.0/8',
      ),
  )
  .min(1, 'give at least one address (127.0.0.1: this node only)');

/** A URL path of a location of its own (a prefix match). */
export const locationPath = z
  .string()
  .regex(
    /^\/[A-Za-z0-9._~-]+(\/[A-Za-z0-9._~-]+)*\/?$/,
    'must be a URL path such as /files/ (letters, digits and . _ ~ - between slashes)',
  );

/** upstream-check: an active check nginx runs against every server of the upstream. */
export const upstreamCheck = z.strictObject({
  type: z.enum(['http', 'tcp'], { error: 'type must be http or tcp' }).default('http'),
  interval: ms('interval', 100, 60_000).default(3000),
  rise: count('rise').default(2),
  fall: count('fall').default(5),
  timeout: ms('timeout', 100, 60_000).default(1000),
  /** http: the request sent (`HEAD <path> HTTP/1.0`) and the answers that count as alive. */
  method: z.enum(['HEAD', 'GET'], { error: 'method must be HEAD or GET' }).default('HEAD'),
  path: z
    .string()
    .regex(/^\/[A-Za-z0-9._~/?=&%-]*$/, 'must be a URL path such as /health')
    .default('/'),
  expect: z
    .array(
      z.enum(['http_2xx', 'http_3xx', 'http_4xx', 'http_5xx'], {
        error: 'must be http_2xx, http_3xx, http_4xx or http_5xx',
      }),
    )
    .min(1, 'give at least one status class')
    .default(['http_2xx', 'http_3xx']),
});

/** Sticky sessions by a cookie (nginx-sticky-module-ng where it builds, else a consistent hash of the cookie). */
export const stickySettings = z.strictObject({
  cookie: z
    .string()
    .regex(/^[A-Za-z0-9_]{1,64}$/, 'must be a cookie name of letters, digits and _')
    .default('route'),
  /** How long the browser keeps the cookie (unset: a session cookie). */
  expires: nginxTime.optional(),
});

/** One LDAP directory a location can be protected by (nginx-auth-ldap). */
export const ldapServer = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9_]{1,64}$/, 'must be letters, digits and _'),
  /** ldap[s]://host[:port]/base?attribute?scope?filter, as nginx-auth-ldap takes it. */
  url: z
    .string()
    .max(512)
    .regex(
      /^ldaps?:\/\/[A-Za-z0-9.-]+(:\d{1,5})?\/[^"\\\s;{}]*$/,
      'must be an LDAP URL ldap://host[:port]/base?uid?sub?(filter) without quotes, spaces or ;',
    ),
  bindDn: z
    .string()
    .max(512)
    .regex(/^[^"\\;{}\n\r]+$/, 'must be a DN without quotes, backslashes or ;')
    .optional(),
  /** The bind password, read from this variable (HA_SETUP_*) or the .secrets file at apply time. */
  bindPasswordEnv: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, 'must be an environment variable name')
    .optional(),
  /** valid_user: any user the directory knows; or members of this group DN. */
  require: z
    .union([
      z.literal('valid_user'),
      z.strictObject({
        group: z
          .string()
          .max(512)
          .regex(/^[^"\\;{}\n\r]+$/, 'must be a DN without quotes, backslashes or ;'),
      }),
    ])
    .default('valid_user'),
});

/** A cache zone (proxy_cache_path) locations can cache in; purge needs cache-purge. */
export const cacheSettings = z.strictObject({
  path: z
    .string()
    .regex(
      /^\/var\/cache\/[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/,
      'must be a directory under /var/cache, e.g. /var/cache/nginx-ha',
    )
    .default('/var/cache/nginx-ha'),
  maxSize: nginxSize.default('1g'),
  keysZone: nginxSize.default('10m'),
  inactive: nginxTime.default('7d'),
  /** Who may PURGE a cached URL (cache-purge). */
  purgeAllow: allowList.default(['127.0.0.1']),
});

/** A location of the site: proxied to an upstream, protected by LDAP, cached, or a directory listing. */
export const siteLocation = z.strictObject({
  path: locationPath,
  /** Proxy to this upstream (site.upstreams[].name). */
  upstream: z
    .string()
    .regex(/^[A-Za-z0-9_]+$/, 'must be the name of an upstream')
    .optional(),
  /** Protect with this LDAP server (site.ldap[].name). */
  authLdap: z
    .string()
    .regex(/^[A-Za-z0-9_]{1,64}$/, 'must be the name of an LDAP server')
    .optional(),
  /** Cache the upstream's answers in site.cache for this long (with PURGE from site.cache.purgeAllow). */
  cache: z.strictObject({ valid: nginxTime.default('10m') }).optional(),
  /** A directory listing of this root (fancyindex). */
  fancyindex: z
    .strictObject({
      root: z.string().regex(/^\/[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/, 'must be an absolute directory path'),
      exactSize: z.boolean().default(false),
    })
    .optional(),
});

/** A status page on localhost (or an allow-list). */
export const statusPage = (path: string) =>
  z.strictObject({ path: locationPath.default(path), allow: allowList.default(['127.0.0.1']) });
