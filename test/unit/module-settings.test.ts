import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { offlinePlan } from '../../src/engine/plan-view.js';
import { secretUses } from '../../src/runbook/secrets.js';
import type { Runbook } from '../../src/runbook/schema.js';
import { validateRunbook } from '../../src/runbook/validate.js';
import { nginxTimeSeconds } from '../../src/steps/module-config.js';
import { INSTALL_STEPS } from '../../src/steps/index.js';

// The articles' modules configured from the runbook (the example runbook's site is in the goldens).
const example = () =>
  parse(readFileSync(join(import.meta.dirname, '..', '..', 'runbooks', 'example-openresty-modules.yaml'), 'utf8'));
const siteConf = (rb: Runbook) =>
  offlinePlan(rb, INSTALL_STEPS, 'debian12')[0]
    .steps.find((s) => s.step.id === 'nginx-config')!
    .plan.files.find((f) => f.path.endsWith('/ha-site.conf'))!;

describe('module settings', () => {
  it('the example is valid; its LDAP bind password is a secret and keeps the site file root-only', () => {
    const v = validateRunbook(example());
    expect(v.problems).toEqual([]);
    const rb = v.runbook as Runbook;
    expect(secretUses(rb).map((u) => u.field)).toEqual(['site.ldap[0].bindPasswordEnv']);
    const site = siteConf(rb);
    expect(site.mode).toBe(0o600);
    expect(site.content).toContain('binddn_passwd "@@secret:HA_SETUP_LDAP_PASSWORD@@";');
  });

  it('each setting needs its module, and names what is missing', () => {
    const doc = example();
    doc.build.modules = [];
    const paths = validateRunbook(doc).problems.map((p) => `${p.path}: ${p.message}`);
    expect(paths).toEqual(
      expect.arrayContaining([
        expect.stringMatching(
          new RegExp(
            String.raw`^site\.upstreams\[0\]\.check: ` +
              'an active check of the servers needs the upstream-check module: add "upstream-check"',
          ),
        ),
        expect.stringMatching(/^site\.ldap\[0\]: an LDAP server needs the auth-ldap module/),
        expect.stringMatching(/^site\.locations\[0\]\.authLdap: an LDAP-protected location needs the auth-ldap module/),
        expect.stringMatching(/^site\.locations\[2\]\.fancyindex: a directory listing needs the fancyindex module/),
      ]),
    );
  });

  it('names, paths and combinations are checked at their field', () => {
    const doc = example();
    doc.site.locations.push(
      { path: '/ha-health', upstream: 'app' },
      { path: '/files', upstream: 'nope' },
      { path: '/x/' },
    );
    doc.site.locations[0].authLdap = 'other';
    doc.site.upstreams[0].check.type = 'tcp';
    const problems = validateRunbook(doc).problems.map((p) => `${p.path}: ${p.message}`);
    expect(problems).toEqual(
      expect.arrayContaining([
        'site.locations[3].path: /ha-health is taken by the health check',
        'site.locations[4].path: /files is also site.locations[2]',
        'site.locations[4].upstream: "nope" is not an upstream in site.upstreams',
        'site.locations[5]: a location proxies to an upstream or lists a directory (fancyindex): give one',
        'site.locations[0].authLdap: "other" is not a server in site.ldap',
        'site.upstreams[0].check: a tcp check sends no request: method and path apply to type http',
      ]),
    );
    const time = example();
    time.site.locations[1].cache = { valid: '10 minutes' };
    expect(validateRunbook(time).problems).toEqual([
      { path: 'site.locations[1].cache.valid', message: expect.stringMatching(/must be an nginx time/) },
    ]);
    const noCache = example();
    delete noCache.site.cache;
    expect(validateRunbook(noCache).problems).toEqual([
      { path: 'site.locations[1].cache', message: expect.stringMatching(/needs a cache zone: add site\.cache/) },
    ]);
  });

  it('sticky: the module where it builds (nginx < 1.23), else the cookie nginx sets, hashed consistently', () => {
    const doc = example();
    doc.build = { flavor: 'nginx', version: '1.22.1', prefix: '/usr/local/nginx', modules: ['sticky'] };
    doc.site.ldap = [];
    doc.site.locations = [];
    delete doc.site.upstreams[0].check;
    const v = validateRunbook(doc);
    expect(v.problems).toEqual([]);
    const withModule = siteConf(v.runbook as Runbook).content;
    expect(withModule).toContain('    sticky name=route expires=1h;');
    expect(withModule).not.toContain('hash $ha_sticky_app');
    const hashed = siteConf(validateRunbook(example()).runbook as Runbook).content;
    expect(hashed).toContain('    hash $ha_sticky_app consistent;');
    expect(hashed).toContain(
      'map $cookie_route $ha_sticky_set_app { "" "route=$request_id; Path=/; HttpOnly; Max-Age=3600"; default ""; }',
    );
    expect(nginxTimeSeconds('7d')).toBe(604800);
  });

  it('status pages: upstream-check with a check, vts with its module; on localhost unless allowed', () => {
    const doc = example();
    doc.build.modules = ['upstream-check', 'vts', 'auth-ldap', 'cache-purge', 'fancyindex'];
    doc.site.vts = { path: '/traffic', allow: ['127.0.0.1', '10.0.0.0/8'] };
    const site = siteConf(validateRunbook(doc).runbook as Runbook).content;
    expect(site).toMatch(/location = \/check_status \{\n {8}check_status;/);
    expect(site).toMatch(
      /location \/traffic \{\n {8}vhost_traffic_status_display;[\s\S]*?allow 10\.0\.0\.0\/8;\n {8}deny all;/,
    );
    expect(site).toContain('vhost_traffic_status_zone;');
    const bad = example();
    bad.site.checkStatus = { allow: ['everyone'] };
    expect(validateRunbook(bad).problems.map((p) => p.path)).toEqual(['site.checkStatus.allow[0]']);
  });
});
