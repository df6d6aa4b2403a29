import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PlanContext, PlannedFile } from '../engine/types.js';
import { osProfile } from '../engine/os-profile.js';
import { InvalidInputError } from '../errors.js';
import { releaseProblems } from '../runbook/release-rules.js';
import { caFiles } from '../runbook/site-files.js';
import { packageRoot } from '../paths.js';
import { render } from '../render.js';
import type { Runbook } from '../runbook/schema.js';
import { gatewayEnabled, layout } from './common.js';

export { gatewayEnabled };

/** ha-setup's own Lua (src/lua/ha_gateway/*.lua), shipped under the conf dir like the operator's. */
export const GATEWAY_DIR = 'ha-gateway';
const luaSourceDir = join(packageRoot, 'src', 'lua', 'ha_gateway');

export function discoveredUpstreams(rb: Runbook) {
  return rb.site.upstreams.filter((u) => u.discovery);
}

/** The TLS part of an endpoint in config.lua: the name the certificate must carry (SNI and verification). */
function tlsConfig(tls: { serverName?: string } | undefined, host: string) {
  return tls ? { serverName: tls.serverName ?? host } : undefined;
}

/** Does the gateway talk TLS to anything (Consul over https, Redis with tls)? */
export function gatewayUsesTls(rb: Runbook): boolean {
  return (
    discoveredUpstreams(rb).some((u) => u.discovery!.consul.address.startsWith('https://')) ||
    rb.site.gray?.redis.tls !== undefined
  );
}

/** The trusted CA file for TLS from Lua: the runbook's CA files as one bundle, else the nodes' system CAs. */
export const TRUSTED_CA = `${GATEWAY_DIR}/trusted-ca.pem`;

export function luaSslTrustedCertificate(pc: PlanContext): string | undefined {
  const rb = pc.runbook;
  if (!gatewayEnabled(rb) || !gatewayUsesTls(rb)) return undefined;
  if (caFiles(rb).length > 0) return TRUSTED_CA; // relative to the conf dir: the staged copy tests its own
  return osProfile(pc.facts).caBundle;
}

/** The gray release's part of the gateway's config.lua (undefined without site.gray). */
export function grayConfig(rb: Runbook) {
  const g = rb.site.gray;
  if (!g) return undefined;
  const [host, port] = g.redis.address.split(':');
  return {
    host,
    port: Number(port ?? 6379),
    tls: tlsConfig(g.redis.tls, host),
    db: g.redis.db,
    // Substituted at apply time; never in the runbook, the plan or the records.
    password: g.redis.passwordEnv ? `@@secret:${g.redis.passwordEnv}@@` : '',
    // A read of three keys on a LAN takes milliseconds; a dead Redis must not hold the timer long.
    timeoutMs: Math.max(200, Math.min(2000, Math.round(g.refresh * 1000))),
    key: g.key,
    stable: g.stable,
    canary: g.canary,
    // As nginx names the variable: $http_x_gray.
    header: g.header.toLowerCase().replace(/-/g, '_'),
    cookie: g.cookie,
    refresh: g.refresh,
  };
}

/** The gateway's Lua modules and its rendered configuration, under conf/ha-gateway/. */
export function gatewayFiles(pc: PlanContext): PlannedFile[] {
  const rb = pc.runbook;
  if (!gatewayEnabled(rb)) return [];
  const [problem] = releaseProblems(rb, pc.facts.release).filter((p) => p.path !== 'build.modules');
  if (problem) throw new InvalidInputError(`${problem.path}: ${problem.message}`);
  const dir = `${layout(rb).confDir}/${GATEWAY_DIR}/ha_gateway`;
  const modules = readdirSync(luaSourceDir)
    .filter((f) => f.endsWith('.lua'))
    .sort()
    .map((f) => ({ path: `${dir}/${f}`, content: readFileSync(join(luaSourceDir, f), 'utf8'), mode: 0o644 }));
  const config = render('ha-gateway-config.lua.njk', {
    gray: grayConfig(rb),
    peerNetworks: rb.site.peerNetworks,
    upstreams: discoveredUpstreams(rb).map((u) => {
      const c = u.discovery!.consul;
      const https = c.address.startsWith('https://');
      const [host, port] = c.address.replace(/^https?:\/\//, '').split(':');
      return {
        name: u.name,
        service: c.service,
        host,
        port: Number(port ?? (https ? 8501 : 8500)),
        tls: https ? tlsConfig(c.tls ?? {}, host) : undefined,
        interval: c.interval,
        // A poll never outlives its interval by much; Consul answers a LAN health query in milliseconds.
        timeoutMs: Math.max(500, Math.min(5000, Math.round(c.interval * 1000))),
        servers: u.servers,
        check: u.discovery!.check
          ? {
              ...u.discovery!.check,
              timeoutMs: Math.max(300, Math.min(3000, Math.round(u.discovery!.check.interval * 1000))),
            }
          : undefined,
        // Substituted at apply time; never in the runbook, the plan or the records.
        token: c.tokenEnv ? `@@secret:${c.tokenEnv}@@` : '',
      };
    }),
  });
  // Tokens and the Redis password are in here: root only (nginx's master reads it in init_by_lua, before dropping
  // privileges).
  const files = [...modules, { path: `${dir}/config.lua`, content: config, mode: 0o600 }];
  // The CA certificates the gateway's TLS connections are verified against, as one bundle.
  const cas = caFiles(rb).map(({ file }) => pc.siteFiles?.ca[file]);
  if (gatewayUsesTls(rb) && cas.length > 0) {
    if (cas.some((c) => c === undefined))
      throw new InvalidInputError('tls.caFile: the CA files were not read on the control machine');
    files.push({
      path: `${layout(rb).confDir}/${TRUSTED_CA}`,
      content: `${[...new Set(cas.map((c) => c!.trim()))].join('\n')}\n`,
      mode: 0o644,
    });
  }
  return files;
}
