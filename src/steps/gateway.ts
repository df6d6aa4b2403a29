import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PlanContext, PlannedFile } from '../engine/types.js';
import { InvalidInputError } from '../errors.js';
import { packageRoot } from '../paths.js';
import { render } from '../render.js';
import type { Runbook } from '../runbook/schema.js';
import { layout } from './common.js';

/** ha-setup's own Lua (src/lua/ha_gateway/*.lua), shipped under the conf dir like the operator's. */
export const GATEWAY_DIR = 'ha-gateway';
const luaSourceDir = join(packageRoot, 'src', 'lua', 'ha_gateway');

export function discoveredUpstreams(rb: Runbook) {
  return rb.site.upstreams.filter((u) => u.discovery);
}

export function gatewayEnabled(rb: Runbook): boolean {
  return discoveredUpstreams(rb).length > 0;
}

/** Secret names the gateway needs at apply time (Consul tokens). */
export function gatewaySecretNames(rb: Runbook): string[] {
  return [...new Set(discoveredUpstreams(rb).map((u) => u.discovery!.consul.tokenEnv).filter((n): n is string => Boolean(n)))];
}

/** The gateway's Lua modules and its rendered configuration, under conf/ha-gateway/. */
export function gatewayFiles(pc: PlanContext): PlannedFile[] {
  const rb = pc.runbook;
  if (!gatewayEnabled(rb)) return [];
  if (rb.build.flavor === 'nginx' && pc.facts.packageManager !== 'apt') {
    const i = rb.site.upstreams.findIndex((u) => u.discovery);
    throw new InvalidInputError(`site.upstreams[${i}].discovery: on ${pc.facts.release} the nginx flavor has no lua-cjson for LuaJIT; use the openresty flavor (it bundles cjson) on EL nodes`);
  }
  const dir = `${layout(rb).confDir}/${GATEWAY_DIR}/ha_gateway`;
  const modules = readdirSync(luaSourceDir).filter((f) => f.endsWith('.lua')).sort()
    .map((f) => ({ path: `${dir}/${f}`, content: readFileSync(join(luaSourceDir, f), 'utf8'), mode: 0o644 }));
  const config = render('ha-gateway-config.lua.njk', {
    upstreams: discoveredUpstreams(rb).map((u) => {
      const c = u.discovery!.consul;
      const [host, port] = c.address.replace(/^http:\/\//, '').split(':');
      return {
        name: u.name,
        service: c.service,
        host,
        port: Number(port ?? 8500),
        interval: c.interval,
        // A poll never outlives its interval by much; Consul answers a LAN health query in milliseconds.
        timeoutMs: Math.max(500, Math.min(5000, Math.round(c.interval * 1000))),
        servers: u.servers,
        check: u.discovery!.check
          ? { ...u.discovery!.check, timeoutMs: Math.max(300, Math.min(3000, Math.round(u.discovery!.check.interval * 1000))) }
          : undefined,
        // Substituted at apply time; never in the runbook, the plan or the records.
        token: c.tokenEnv ? `@@secret:${c.tokenEnv}@@` : '',
      };
    }),
  });
  // The token is in here: root only (nginx's master reads it in init_by_lua, before dropping privileges).
  return [...modules, { path: `${dir}/config.lua`, content: config, mode: 0o600 }];
}
