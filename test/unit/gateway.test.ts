import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { offlinePlan } from '../../src/engine/plan-view.js';
import { luaString } from '../../src/render.js';
import type { Runbook } from '../../src/runbook/schema.js';
import { validateRunbook } from '../../src/runbook/validate.js';
import { INSTALL_STEPS } from '../../src/steps/index.js';
import { loadSecrets } from '../../src/engine/session.js';

const example = () =>
  parse(readFileSync(join(import.meta.dirname, '..', '..', 'runbooks', 'example-gateway.yaml'), 'utf8'));
const configStep = (rb: Runbook, release = 'debian12') =>
  offlinePlan(rb, INSTALL_STEPS, release)[0].steps.find((s) => s.step.id === 'nginx-config')!.plan;

describe('gateway: Consul discovery', () => {
  it('validates the discovery fields by name', () => {
    const doc = example();
    expect(validateRunbook(doc).problems).toEqual([]);
    const u = doc.site.upstreams[0];
    u.discovery.consul.address = 'consul.internal:8500';
    u.discovery.consul.service = 'app service';
    u.discovery.consul.interval = 0;
    u.discovery.check.path = 'health';
    const paths = validateRunbook(doc)
      .problems.map((p) => p.path)
      .sort();
    expect(paths).toEqual([
      'site.upstreams[0].discovery.check.path',
      'site.upstreams[0].discovery.consul.address',
      'site.upstreams[0].discovery.consul.interval',
      'site.upstreams[0].discovery.consul.service',
    ]);
    const twice = example();
    twice.site.upstreams.push({ name: 'app', servers: ['10.0.0.1:80'] });
    expect(validateRunbook(twice).problems).toEqual([
      { path: 'site.upstreams[1].name', message: '"app" is already the name of another upstream' },
    ]);
    const port = example();
    port.site.upstreams[0].discovery.consul.address = 'http://10.0.0.5:99999';
    expect(validateRunbook(port).problems).toEqual([
      { path: 'site.upstreams[0].discovery.consul.address', message: 'has a port outside 1..65535' },
    ]);
    const noLua = example();
    noLua.build.modules = [];
    expect(validateRunbook(noLua).problems).toEqual([
      { path: 'site.upstreams[0].discovery', message: expect.stringMatching(/add "lua" to build\.modules/) },
    ]);
  });

  it('ships the Lua and a root-only config holding the token as a placeholder; the upstream balances from Lua', () => {
    const v = validateRunbook(example());
    const plan = configStep(v.runbook as Runbook);
    const config = plan.files.find((f) => f.path === '/usr/local/nginx/conf/ha-gateway/ha_gateway/config.lua')!;
    expect(config.mode).toBe(0o600);
    expect(config.content).toContain('token = "@@secret:HA_SETUP_CONSUL_TOKEN@@",');
    expect(config.content).toContain('consul = { host = "10.10.0.5", port = 8500 },');
    expect(plan.files.map((f) => f.path.split('/').pop())).toEqual(
      expect.arrayContaining(['balancer.lua', 'discovery.lua', 'http.lua', 'peers.lua', 'status.lua']),
    );
    const site = plan.files.find((f) => f.path.endsWith('/ha-site.conf'))!.content;
    expect(site).toMatch(/upstream app \{\n[^}]*server 0\.0\.0\.1;\n {4}balancer_by_lua_block/);
    expect(site).toContain(
      'server 0.0.0.1;\n    balancer_by_lua_block {\n        require("ha_gateway.balancer").run("app")\n    }\n' +
        '    keepalive 32;',
    );
    expect(site).toContain('location = /ha-gateway/status {');
  });

  it('refuses the nginx flavor on EL (no cjson for LuaJIT there) and names the field', () => {
    const v = validateRunbook(example());
    expect(() => configStep(v.runbook as Runbook, 'el9')).toThrow(
      /site\.upstreams\[0\]\.discovery: .*openresty flavor/,
    );
  });

  it('the Consul token is a secret: required at apply time and limited to token characters', () => {
    const rb = validateRunbook(example()).runbook as Runbook;
    const env = { ...process.env };
    try {
      process.env.HA_SETUP_VRRP_PASSWORD = 'x';
      delete process.env.HA_SETUP_CONSUL_TOKEN;
      expect(() => loadSecrets(rb, '/nonexistent/runbooks/gw.yaml')).toThrow(
        /the secret HA_SETUP_CONSUL_TOKEN is not set/,
      );
      process.env.HA_SETUP_CONSUL_TOKEN = 'abc"; os.exit()';
      expect(() => loadSecrets(rb, '/nonexistent/runbooks/gw.yaml')).toThrow(
        /HA_SETUP_CONSUL_TOKEN is not a Consul ACL token/,
      );
      process.env.HA_SETUP_CONSUL_TOKEN = '6d0d6e9a-1b7c-4f3e-9a55-0d5c2a8f1e21';
      expect(loadSecrets(rb, '/nonexistent/runbooks/gw.yaml').HA_SETUP_CONSUL_TOKEN).toBe(
        '6d0d6e9a-1b7c-4f3e-9a55-0d5c2a8f1e21',
      );
    } finally {
      process.env = env;
    }
  });

  it(
    "a runbook cannot send any variable of the operator's: only HA_SETUP_* from the environment, " +
      'other names from the .secrets file',
    async () => {
      const { mkdtempSync, writeFileSync, chmodSync } = await import('node:fs');
      const { tmpdir } = await import('node:os');
      const { join } = await import('node:path');
      const doc = example();
      doc.site.upstreams[0].discovery.consul.tokenEnv = 'AWS_SECRET_ACCESS_KEY';
      const rb = validateRunbook(doc).runbook as Runbook;
      const dir = mkdtempSync(join(tmpdir(), 'ha-secrets-'));
      const path = join(dir, 'gw.yaml');
      const env = { ...process.env };
      try {
        process.env.HA_SETUP_VRRP_PASSWORD = 'x';
        process.env.AWS_SECRET_ACCESS_KEY = 'wJalrXUtnFEMI';
        expect(() => loadSecrets(rb, path)).toThrow(
          'site.upstreams[0].discovery.consul.tokenEnv: AWS_SECRET_ACCESS_KEY is set in the environment, ' +
            'but ha-setup reads only HA_SETUP_* variables',
        );
        // Declared by the operator in the runbook's own secrets file: that value, never the environment's.
        writeFileSync(join(dir, `${rb.name}.secrets`), 'AWS_SECRET_ACCESS_KEY=6d0d6e9a-1b7c-4f3e-9a55-0d5c2a8f1e21\n', {
          mode: 0o600,
        });
        expect(loadSecrets(rb, path).AWS_SECRET_ACCESS_KEY).toBe('6d0d6e9a-1b7c-4f3e-9a55-0d5c2a8f1e21');
        // A secrets file others can read is refused, like ssh refuses such a key.
        chmodSync(join(dir, `${rb.name}.secrets`), 0o644);
        expect(() => loadSecrets(rb, path)).toThrow(
          /edge-gateway\.secrets is readable or writable by others \(mode 0644\)/,
        );
      } finally {
        process.env = env;
      }
    },
  );

  it('plan says which variable goes where', async () => {
    const { secretUses } = await import('../../src/runbook/secrets.js');
    const rb = validateRunbook(example()).runbook as Runbook;
    rb.vrrp = { ...rb.vrrp, version: 2, advertInt: 1, auth: { passwordEnv: 'HA_SETUP_VRRP_PASSWORD' } };
    expect(secretUses(rb).map((u) => `${u.name} -> ${u.goesTo}`)).toEqual([
      expect.stringMatching(/^HA_SETUP_VRRP_PASSWORD -> keepalived\.conf on every node/),
      expect.stringMatching(/^HA_SETUP_CONSUL_TOKEN -> Consul http:\/\/10\.\d+\.\d+\.\d+:8500 \(X-Consul-Token/),
    ]);
  });

  it('Lua string literals escape quotes, backslashes and control bytes', () => {
    expect(luaString('a"b\\c\nd')).toBe('"a\\"b\\\\c\\010d"');
    expect(luaString('é')).toBe('"\\195\\169"');
  });

  it('the handover document explains the gateway (and says nothing of it without discovery)', async () => {
    const { renderHandover } = await import('../../src/docs/handover.js');
    const { loadRunbook } = await import('../../src/runbook/io.js');
    const gw = loadRunbook(join(import.meta.dirname, '..', '..', 'runbooks', 'example-gateway.yaml'));
    const md = renderHandover(gw.path, gw.runbook, '0.0.0');
    expect(md).toContain('## Gateway: upstream peers from Consul');
    expect(md).toContain('Upstream `app` takes its peers from Consul service `app` at http://10.10.0.5:8500');
    expect(md).toContain('`GET /health` every 1 s, 2 failures take it out');
    expect(md).toContain('curl -s http://127.0.0.1:80/ha-gateway/status');
    const plain = loadRunbook(join(import.meta.dirname, '..', '..', 'runbooks', 'example-nginx-lua.yaml'));
    expect(renderHandover(plain.path, plain.runbook, '0.0.0')).not.toContain('Gateway');
  });
});
