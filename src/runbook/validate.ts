import type { z } from 'zod';
import { moduleById, moduleCatalog, moduleUnavailableReason, sourceCatalog } from '../catalog.js';
import type { Problem } from '../errors.js';
import { broadcastOf, inSubnet, isDnsName, isIPv4, networkOf, parseCidr, ipToInt, peerAddressProblem } from '../net.js';
import {
  buildSchema,
  keepalivedSchema,
  nodeSchema,
  runbookSchema,
  siteSchema,
  sourcesSchema,
  vrrpSchema,
  type Runbook,
} from './schema.js';
import { tlsSettingProblems } from './tls-settings.js';

export type ValidationResult = { ok: true; runbook: Runbook; problems: [] } | { ok: false; problems: Problem[] };

/** `['nodes', 1, 'host']` -> `nodes[1].host` */
export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out === '' ? '(runbook)' : out;
}

const LITERAL_SECRET_KEY = /^(pass(word)?|auth_?pass|secret|sudo_?password|authPass|sudoPassword)$/i;

/** Full validation: schema first, then the cross-field rules; every problem is returned. */
export function validateRunbook(input: unknown): ValidationResult {
  const problems: Problem[] = [];
  const secretPaths = findLiteralSecrets(input, []);
  for (const p of secretPaths) {
    problems.push({
      path: formatPath(p),
      message:
        'a literal password is not allowed in the runbook; put it in the environment or runbooks/<name>.secrets ' +
        'and reference it with passwordEnv',
    });
  }
  const secretKeys = new Set(secretPaths.map(formatPath));

  const parsed = runbookSchema.safeParse(input);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) problems.push(...describeIssue(issue, secretKeys, input));
  }
  // Cross-field rules run on whatever sections parsed, so one bad field does not hide the others.
  const sections = parsed.success ? parsed.data : partialSections(input);
  problems.push(...semanticProblems(sections));

  const unique = dedupe(problems);
  if (parsed.success && unique.length === 0) return { ok: true, runbook: parsed.data, problems: [] };
  return { ok: false, problems: unique };
}

function dedupe(problems: Problem[]): Problem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const k = `${p.path}\u0000${p.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

function findLiteralSecrets(value: unknown, path: PropertyKey[]): PropertyKey[][] {
  if (Array.isArray(value)) return value.flatMap((v, i) => findLiteralSecrets(v, [...path, i]));
  if (value && typeof value === 'object') {
    return Object.entries(value).flatMap(([k, v]) =>
      LITERAL_SECRET_KEY.test(k) && (typeof v === 'string' || typeof v === 'number')
        ? [[...path, k]]
        : findLiteralSecrets(v, [...path, k]),
    );
  }
  return [];
}

/** The value at `path` in the raw input, and whether the key is there at all. */
function valueAt(input: unknown, path: ReadonlyArray<PropertyKey>): { present: boolean; value?: unknown } {
  let cur: unknown = input;
  for (const part of path) {
    if (cur === null || typeof cur !== 'object' || !(part in (cur as object))) return { present: false };
    cur = (cur as Record<PropertyKey, unknown>)[part];
  }
  return { present: true, value: cur };
}

const shown = (v: unknown) =>
  typeof v === 'string'
    ? JSON.stringify(v)
    : Array.isArray(v)
      ? 'a list'
      : v === null
        ? 'null'
        : typeof v === 'object'
          ? 'a mapping'
          : String(v);

function describeIssue(issue: z.core.$ZodIssue, secretKeys: Set<string>, input: unknown): Problem[] {
  if (issue.code === 'unrecognized_keys') {
    const allowed = allowedKeysAt(issue.path);
    return issue.keys
      .filter((k) => !secretKeys.has(formatPath([...issue.path, k])))
      .map((k) => ({
        path: formatPath([...issue.path, k]),
        message: `unknown key${allowed ? `; allowed here: ${allowed.join(', ')}` : ''}`,
      }));
  }
  if (issue.code === 'invalid_type') {
    const at = valueAt(input, issue.path);
    const what = issue.message.replace(/^Invalid input: /, '');
    if (!at.present || at.value === undefined)
      return [{ path: formatPath(issue.path), message: `is required (${what})` }];
    return [{ path: formatPath(issue.path), message: `${what}, got ${shown(at.value)}` }];
  }
  return [{ path: formatPath(issue.path), message: issue.message }];
}

/** Walks the schema along a path to list the keys an object accepts there. */
function allowedKeysAt(path: ReadonlyArray<PropertyKey>): string[] | undefined {
  // zod's internal definition tree (`_zod.def`), walked without its generic types.
  // biome-ignore lint/suspicious/noExplicitAny: zod exposes no type for walking a schema's definition
  let node: any = runbookSchema;
  const unwrap = () => {
    while (node?._zod?.def && ['default', 'optional', 'nullable', 'pipe'].includes(node._zod.def.type)) {
      node = node._zod.def.innerType ?? node._zod.def.in;
    }
  };
  unwrap();
  for (const part of path) {
    const def = node?._zod?.def;
    if (!def) return undefined;
    if (def.type === 'object') node = def.shape[part as string];
    else if (def.type === 'array') node = def.element;
    else if (def.type === 'record') node = def.valueType;
    else return undefined;
    unwrap();
  }
  return node?._zod?.def?.type === 'object' ? Object.keys(node._zod.def.shape) : undefined;
}

interface Sections {
  nodes?: Runbook['nodes'];
  vrrp?: Runbook['vrrp'];
  build?: Runbook['build'];
  keepalived?: Runbook['keepalived'];
  sources?: Runbook['sources'];
  site?: Runbook['site'];
}

function partialSections(input: unknown): Sections {
  if (!input || typeof input !== 'object') return {};
  const raw = input as Record<string, unknown>;
  const pick = <T>(schema: z.ZodType<T>, v: unknown): T | undefined => {
    const r = schema.safeParse(v);
    return r.success ? r.data : undefined;
  };
  let nodes: Runbook['nodes'] | undefined;
  if (Array.isArray(raw.nodes)) {
    const parsedNodes = raw.nodes.map((n) => pick(nodeSchema, n));
    // Cross-node rules only make sense when every node parsed.
    if (parsedNodes.every((n) => n !== undefined)) nodes = parsedNodes as Runbook['nodes'];
  }
  return {
    nodes,
    vrrp: pick(vrrpSchema, raw.vrrp),
    build: pick(buildSchema, raw.build),
    keepalived: pick(keepalivedSchema, raw.keepalived),
    sources: pick(sourcesSchema, raw.sources ?? {}),
    site: pick(siteSchema, raw.site ?? {}),
  };
}

export function semanticProblems(s: Sections): Problem[] {
  const out: Problem[] = [];
  const add = (path: string, message: string) => out.push({ path, message });
  const { nodes, vrrp, build, keepalived, sources, site } = s;
  const noLua = build !== undefined && build.flavor === 'nginx' && !build.modules.includes('lua');
  if (site && noLua) {
    site.upstreams.forEach((u, i) => {
      if (u.discovery)
        add(
          `site.upstreams[${i}].discovery`,
          'Consul discovery runs in nginx\'s Lua: add "lua" to build.modules (OpenResty has it built in)',
        );
    });
  }
  if (site) {
    const names = new Set<string>();
    site.upstreams.forEach((u, i) => {
      if (names.has(u.name)) add(`site.upstreams[${i}].name`, `"${u.name}" is already the name of another upstream`);
      names.add(u.name);
      u.servers.forEach((line, j) => {
        const ip = /^(\d+\.\d+\.\d+\.\d+)(?::\d+)?(?:\s|$)/.exec(line)?.[1];
        const problem = ip && (isIPv4(ip) ? peerAddressProblem(ip, site.peerNetworks) : 'is not an IPv4 address');
        if (problem) add(`site.upstreams[${i}].servers[${j}]`, `${ip} ${problem}`);
      });
    });
  }
  if (site?.gray) {
    const g = site.gray;
    const names = site.upstreams.map((u) => u.name);
    const known = names.length ? `one of ${names.join(', ')}` : 'none is defined';
    if (!names.includes(g.stable))
      add('site.gray.stable', `"${g.stable}" is not an upstream in site.upstreams (${known})`);
    if (!names.includes(g.canary))
      add('site.gray.canary', `"${g.canary}" is not an upstream in site.upstreams (${known})`);
    if (g.stable === g.canary) add('site.gray.canary', 'must be another upstream than site.gray.stable');
    if (noLua) {
      add('site.gray', 'gray release runs in nginx\'s Lua: add "lua" to build.modules (OpenResty has it built in)');
    }
  }
  if (site) {
    site.upstreams.forEach((u, i) => {
      const c = u.discovery?.consul;
      if (c?.tls && !c.address.startsWith('https://'))
        add(
          `site.upstreams[${i}].discovery.consul.tls`,
          'tls applies to an https:// address; ' +
            "write the address as https://<IPv4>:<port> (Consul's https port, often 8501)",
        );
    });
  }
  if (site) out.push(...moduleSettingProblems(site, build));
  if (site) out.push(...tlsSettingProblems(site));
  if (site && noLua && site.include.lua.length > 0) {
    add(
      'site.include.lua',
      'Lua modules need the lua module on the nginx flavor: add "lua" to build.modules (OpenResty has it built in)',
    );
  }

  if (nodes) {
    if (nodes.length < 2) add('nodes', `an HA pair needs at least 2 nodes; found ${nodes.length}`);
    const seen = new Map<string, number>();
    nodes.forEach((n, i) => {
      if (!isIPv4(n.host) && !isDnsName(n.host))
        add(`nodes[${i}].host`, `"${n.host}" is not an IPv4 address or DNS name`);
      const key = n.host.toLowerCase();
      if (seen.has(key))
        add(
          `nodes[${i}].host`,
          `duplicate host "${n.host}" (also nodes[${seen.get(key)}].host); every node must be a different host`,
        );
      else seen.set(key, i);
    });
    const names = new Map<string, number>();
    nodes.forEach((n, i) => {
      if (!n.name) return;
      if (names.has(n.name))
        add(`nodes[${i}].name`, `duplicate node name "${n.name}" (also nodes[${names.get(n.name)}].name)`);
      else names.set(n.name, i);
    });

    const masters = nodes.map((n, i) => ({ n, i })).filter((x) => x.n.role === 'master');
    const preempt = vrrp?.preempt ?? true;
    if (masters.length > 1) {
      for (const { i } of masters.slice(1))
        add(`nodes[${i}].role`, `more than one master (also nodes[${masters[0].i}]); exactly one node has role master`);
    } else if (masters.length === 0 && preempt) {
      add(
        'nodes',
        'no node has role master; exactly one node must be master (all may be backup only with vrrp.preempt: false)',
      );
    }
    const prios = new Map<number, number>();
    nodes.forEach((n, i) => {
      if (prios.has(n.priority))
        add(
          `nodes[${i}].priority`,
          `priority ${n.priority} is also used by nodes[${prios.get(n.priority)}]; priorities must be unique`,
        );
      else prios.set(n.priority, i);
    });
    if (masters.length === 1) {
      const m = masters[0];
      nodes.forEach((n, i) => {
        if (i !== m.i && n.priority >= m.n.priority)
          add(
            `nodes[${i}].priority`,
            `backup priority ${n.priority} is not below the ` +
              `master's ${m.n.priority} (nodes[${m.i}]); the master must have the highest priority`,
          );
      });
    }
    if (vrrp?.unicast) {
      nodes.forEach((n, i) => {
        if (!isIPv4(n.host))
          add(
            `nodes[${i}].host`,
            `unicast VRRP needs an IPv4 address for every node (unicast_src_ip/unicast_peer); "${n.host}" is a name`,
          );
      });
    }
  }

  if (vrrp) {
    const cidr = parseCidr(vrrp.vip);
    if (!cidr) {
      add(
        'vrrp.vip',
        `"${vrrp.vip}" is not an IPv4 address in CIDR form; write it with its prefix length, e.g. 192.168.56.200/24`,
      );
    } else {
      const ip = ipToInt(cidr.address);
      if (cidr.prefix < 31 && (ip === networkOf(cidr) || ip === broadcastOf(cidr))) {
        add('vrrp.vip', `${cidr.address} is the network or broadcast address of ${vrrp.vip}; pick a host address`);
      }
      nodes?.forEach((n, i) => {
        if (!isIPv4(n.host)) return;
        if (n.host === cidr.address)
          add('vrrp.vip', `the VIP ${cidr.address} is the address of nodes[${i}]; the VIP must be a free address`);
        else if (!inSubnet(n.host, cidr))
          add(
            'vrrp.vip',
            `the VIP ${vrrp.vip} is not in the subnet ` +
              `of nodes[${i}].host ${n.host}; the VIP must share the nodes' subnet`,
          );
      });
    }
    if (vrrp.version === 2) {
      if (!Number.isInteger(vrrp.advertInt) || vrrp.advertInt < 1 || vrrp.advertInt > 255) {
        add(
          'vrrp.advertInt',
          `${vrrp.advertInt} is not allowed with VRRP version 2; use whole seconds from 1 to 255 (or version 3 ` +
            `for sub-second adverts)`,
        );
      }
    } else {
      const centis = Math.round(vrrp.advertInt * 100);
      if (vrrp.advertInt < 0.01 || vrrp.advertInt > 40.95 || Math.abs(centis - vrrp.advertInt * 100) > 1e-6) {
        add(
          'vrrp.advertInt',
          `${vrrp.advertInt} is not allowed with VRRP version 3; use 0.01 to 40.95 seconds in steps of 0.01`,
        );
      }
      if (vrrp.auth) add('vrrp.auth', 'VRRP version 3 has no authentication; remove auth or use version 2');
    }
    const witness = vrrp.witness?.address;
    if (witness !== undefined) {
      if (!isIPv4(witness) || /^(0|127|169\.254|22[4-9]|23\d|24\d|25[0-5])\./.test(witness))
        add('vrrp.witness.address', `"${witness}" is not a unicast IPv4 address (e.g. the clients' default gateway)`);
      else if (witness === cidr?.address || nodes?.some((n) => n.host === witness))
        add(
          'vrrp.witness.address',
          `${witness} is the VIP or a node; the witness must be another host on the clients' side, ` +
            `e.g. the default gateway`,
        );
    }
  }

  if (build) {
    const catalogIds = moduleCatalog().map((m) => m.id);
    if (build.flavor === 'openresty' && build.version.split('.').length !== 4) {
      add(
        'build.version',
        `"${build.version}" is not an OpenResty version; OpenResty versions have four parts, e.g. 1.27.1.2`,
      );
    }
    if (build.flavor === 'nginx' && build.version.split('.').length !== 3) {
      add('build.version', `"${build.version}" is not an nginx version; nginx versions have three parts, e.g. 1.22.1`);
    }
    const seenMods = new Set<string>();
    build.modules.forEach((id, i) => {
      const mod = moduleById(id);
      if (seenMods.has(id)) add(`build.modules[${i}]`, `module "${id}" is listed twice`);
      seenMods.add(id);
      if (!mod) {
        add(`build.modules[${i}]`, `unknown module "${id}"; the catalog has: ${catalogIds.join(', ')}`);
        return;
      }
      const why = moduleUnavailableReason(mod, build.flavor, build.version);
      if (why)
        add(
          `build.modules[${i}]`,
          `module "${id}" ${why}${/compile/.test(why) ? `; remove it or use an older ${build.flavor}` : ''}`,
        );
    });
  }

  if (keepalived && nodes && nodes.length >= 2) {
    const w = keepalived.check.weight;
    if (w !== 0) {
      const sorted = [...nodes].sort((a, b) => b.priority - a.priority);
      const top = sorted[0].priority;
      const next = sorted[1].priority;
      // Healthy peers keep (or gain) the weight; the failed top node loses it. Failover happens only
      // when the failed top node ends up strictly below the best healthy peer.
      const topFailed = w > 0 ? top : top + w;
      const nextHealthy = w > 0 ? next + w : next;
      if (topFailed >= nextHealthy) {
        add(
          'keepalived.check.weight',
          `weight ${w} cannot flip the election: with priorities ${top}/${next} the master keeps ${topFailed} >= ` +
            `${nextHealthy} when its nginx dies, so there is no failover; use weight 0 (a failed check puts the node ` +
            `in FAULT) or a weight larger than ${top - next}`,
        );
      }
    }
  }
  if (sources) out.push(...sourceProblems(sources, build, keepalived));
  return out;
}

/** Overrides must name a known source and say where it comes from without contradictions. */
function sourceProblems(
  sources: Runbook['sources'],
  build?: Runbook['build'],
  keepalived?: Runbook['keepalived'],
): Problem[] {
  const out: Problem[] = [];
  const catalog = sourceCatalog();
  for (const [id, o] of Object.entries(sources.overrides)) {
    const path = `sources.overrides.${id}`;
    const entry = catalog[id];
    if (!entry) {
      out.push({ path, message: `unknown source "${id}"; the catalog has: ${Object.keys(catalog).join(', ')}` });
      continue;
    }
    const given = (['url', 'path', 'git'] as const).filter((k) => o[k] !== undefined);
    if (given.length > 1) out.push({ path, message: `give one of url, path or git, not ${given.join(' and ')}` });
    if (o.git && !o.ref)
      out.push({ path: `${path}.ref`, message: 'a git source needs ref: the tag, branch or full commit id to build' });
    const isGit = o.git !== undefined || (entry.git !== undefined && o.url === undefined && o.path === undefined);
    if (!isGit && (o.ref !== undefined || o.commit !== undefined)) {
      out.push({
        path,
        message:
          `ref and commit apply to git ` +
          `sources; ${id} comes from ${o.path ? 'a local path' : 'a tarball URL'} (set git, or use sha256)`,
      });
    }
    if (isGit && o.sha256 !== undefined) {
      out.push({
        path: `${path}.sha256`,
        message: 'a git source is held to its commit, not a tarball checksum; use commit',
      });
    }
    const coreVersion = id === build?.flavor ? build.version : id === 'keepalived' ? keepalived?.version : undefined;
    if (coreVersion && o.version && o.version !== coreVersion) {
      out.push({
        path: `${path}.version`,
        message:
          `${o.version} differs from the version ` +
          `in use (${coreVersion}); a pin recorded here belongs to ${o.version}: update or remove both`,
      });
    }
  }
  return out;
}

/** What the module settings need: their module, names that exist, paths that do not collide. */
function moduleSettingProblems(site: Runbook['site'], build?: Runbook['build']): Problem[] {
  const out: Problem[] = [];
  const add = (path: string, message: string) => out.push({ path, message });
  const has = (m: string) => build === undefined || build.modules.includes(m);
  const needs = (path: string, m: string, what: string) => {
    if (!has(m)) add(path, `${what} needs the ${m} module: add "${m}" to build.modules`);
  };
  site.upstreams.forEach((u, i) => {
    if (u.check) needs(`site.upstreams[${i}].check`, 'upstream-check', 'an active check of the servers');
    if (u.check && u.discovery)
      add(`site.upstreams[${i}].check`, 'peers from Consul are checked by discovery.check, not by upstream-check');
    if (u.sticky && u.discovery)
      add(
        `site.upstreams[${i}].sticky`,
        'sticky sessions need a fixed server list; peers from Consul are balanced in Lua',
      );
    if (u.check?.type === 'tcp' && (u.check.method !== 'HEAD' || u.check.path !== '/'))
      add(`site.upstreams[${i}].check`, 'a tcp check sends no request: method and path apply to type http');
  });
  const upstreams = new Set(site.upstreams.map((u) => u.name));
  const ldapNames = new Set<string>();
  site.ldap.forEach((l, i) => {
    needs(`site.ldap[${i}]`, 'auth-ldap', 'an LDAP server');
    if (ldapNames.has(l.name)) add(`site.ldap[${i}].name`, `"${l.name}" is already the name of another LDAP server`);
    ldapNames.add(l.name);
    if (l.bindPasswordEnv && !l.bindDn) add(`site.ldap[${i}].bindPasswordEnv`, 'a bind password needs bindDn');
  });
  if (site.checkStatus) needs('site.checkStatus', 'upstream-check', 'the check status page');
  if (site.vts) needs('site.vts', 'vts', 'the vts status page');
  // Paths nginx answers itself or another setting takes.
  const taken = new Map<string, string>([
    ['/', "the site's own location /"],
    ['/ha-health', 'the health check'],
    ['/nginx-status', 'the stub status'],
    ['/ha-lua', 'the lua check'],
    ['/ha-gateway/status', 'the gateway status'],
  ]);
  if (site.checkStatus || site.upstreams.some((u) => u.check))
    taken.set(site.checkStatus?.path ?? '/check_status', 'site.checkStatus');
  if (site.vts || build?.modules.includes('vts')) taken.set(site.vts?.path ?? '/vts', 'site.vts');
  const norm = (p: string) => p.replace(/\/+$/, '') || '/';
  const seen = new Map<string, number>();
  site.locations.forEach((l, i) => {
    const at = `site.locations[${i}]`;
    const clash = taken.get(norm(l.path));
    if (clash) add(`${at}.path`, `${l.path} is taken by ${clash}`);
    if (seen.has(norm(l.path))) add(`${at}.path`, `${l.path} is also site.locations[${seen.get(norm(l.path))}]`);
    seen.set(norm(l.path), i);
    if (l.upstream && !upstreams.has(l.upstream))
      add(`${at}.upstream`, `"${l.upstream}" is not an upstream in site.upstreams`);
    if (!l.upstream && !l.fancyindex)
      add(at, 'a location proxies to an upstream or lists a directory (fancyindex): give one');
    if (l.upstream && l.fancyindex) add(at, 'give upstream or fancyindex, not both');
    if (l.fancyindex) needs(`${at}.fancyindex`, 'fancyindex', 'a directory listing');
    if (l.authLdap) {
      needs(`${at}.authLdap`, 'auth-ldap', 'an LDAP-protected location');
      if (!ldapNames.has(l.authLdap)) add(`${at}.authLdap`, `"${l.authLdap}" is not a server in site.ldap`);
    }
    if (l.cache && !site.cache)
      add(`${at}.cache`, 'caching needs a cache zone: add site.cache (path, sizes; defaults are fine: site.cache: {})');
    if (l.cache && !l.upstream) add(`${at}.cache`, 'only proxied answers are cached: give upstream');
  });
  return out;
}
