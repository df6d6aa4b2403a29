import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { cli, ranSteps } from './helpers/cli.js';
import { startGitServer, type GitServer } from './helpers/git-server.js';
import { installModuleServices } from './helpers/services.js';
import { withLab, type Lab } from './helpers/with-lab.js';

const fixtures = join(import.meta.dirname, '..', 'fixtures', 'lab');
const GIT_MODULES = ['upstream-check', 'sticky', 'auth-ldap', 'cache-purge', 'headers-more', 'vts'];

// The first reference article's build, for real: third-party modules cloned from git (a git daemon
// on the lab bridge stands in for GitHub through sources.gitRewrite), the upstream-check core patch,
// configure and make on both nodes; then each module is shown to work against real backends
// (python http servers as systemd units) and a real slapd.
describe.skipIf(!inject('labAvailable'))('third-party modules from git, working on the lab', () => {
  let lab: Lab;
  let git: GitServer;
  const curl = (node: number, args: string) => lab.ssh(node, `curl -sS -m 5 ${args}`);

  beforeAll(async () => {
    // The cluster the earlier suites left serving: the modules go in by a rebuild rolled node by node.
    // Alone, this suite installs the lab's pair first.
    lab = await withLab();
    if ((await cli(['status', lab.runbookPath])).code !== 0) {
      const r = await cli(['apply', lab.runbookPath, '--renderer', 'silent', '--no-verify']);
      expect(r.code, r.out + r.err).toBe(0);
    }
    git = await startGitServer(lab.state.nodes[0].ip.replace(/\.\d+$/, '.1'));
    const [n1, n2] = lab.state.nodes.map((n) => n.ip);

    // Backends on :9001 of both nodes, and slapd with one user on node2.
    await installModuleServices(lab);

    // The runbook: every git module, the site include with the module test server on :8080.
    const dir = join(lab.runbookPath, '..');
    writeFileSync(
      join(dir, 'modules-test.conf'),
      readFileSync(join(fixtures, 'modules-test.conf'), 'utf8')
        .replaceAll('@NODE1@', n1)
        .replaceAll('@NODE2@', n2)
        .replaceAll('@LDAP@', n2),
    );
    const doc = parse(readFileSync(lab.runbookPath, 'utf8'));
    doc.build.modules = ['fancyindex', 'lua', ...GIT_MODULES];
    doc.sources.gitRewrite = { 'https://github.com/': git.base };
    doc.site.include = { http: ['modules-test.conf'] };
    writeFileSync(lab.runbookPath, stringify(doc));
  });

  afterAll(async () => {
    await git?.stop();
  });

  it(
    'apply clones every module over git, patches, builds and installs on both nodes, ' +
      're-running exactly the steps that depend on the modules',
    async () => {
      const plan = await cli(['plan', lab.runbookPath]);
      // configure re-runs because what it depends on re-runs (the modules' packages and sources)
      expect(plan.out).toMatch(/\[will re-run\] configure: .*\(because (packages|sources|patch) re-ran\)/);
      expect(plan.out).toMatch(/\[will re-run\] build: .*\(because configure re-ran\)/);
      // the new binary goes in with its configuration: nginx-config performs the hot upgrade
      expect(plan.out).toMatch(/\[will re-run\] nginx-config: .*\(because install re-ran\)/);
      const r = await cli(['apply', lab.runbookPath, '--renderer', 'silent', '--no-verify']);
      expect(r.err).toBe('');
      expect(r.code).toBe(0);
      for (const ran of Object.values(ranSteps(lab.runbookPath))) {
        expect(ran).toEqual(
          expect.arrayContaining([
            'sources',
            'patch',
            'configure',
            'build',
            'install',
            'nginx-config',
            'nginx-service',
          ]),
        );
        // keepalived is not rebuilt or restarted: the modules are nginx's business (its configuration
        // may be rewritten: 03 left nopreempt and no track file, this runbook has the defaults)
        expect(ran.filter((s) => /^keepalived-(sources|build)$|^start$/.test(s))).toEqual([]);
      }
      const record = JSON.parse(readFileSync(join(lab.runbookPath, '..', 'records', 'lab', 'last-run.json'), 'utf8'));
      const gitSources = record.sources.filter((s: { git?: unknown }) => s.git);
      expect(gitSources.map((s: { id: string }) => s.id).sort()).toEqual(
        [
          'headers-more-nginx-module',
          'ngx_cache_purge',
          'nginx-auth-ldap',
          'nginx-module-vts',
          'nginx-sticky-module-ng',
          'nginx_upstream_check_module',
        ].sort(),
      );
      for (const s of gitSources) {
        expect(s.git.fetchedFrom.startsWith(git.base)).toBe(true);
        expect(s.git.commit).toMatch(/^[0-9a-f]{40}$/);
      }
      const docs = readFileSync(join(lab.runbookPath, '..', 'lab.handover.md'), 'utf8');
      expect(docs).toContain('commit `e538034b6ad7992080d2403d6d3da56e4f7ac01e`');
    },
  );

  it('nginx -V lists every module and the upstream-check patch is in the core', async () => {
    for (const i of [0, 1]) {
      const v = await lab.ssh(i, '/usr/local/nginx/sbin/nginx -V 2>&1');
      for (const dir of [
        'nginx_upstream_check_module',
        'nginx-sticky-module-ng',
        'nginx-auth-ldap',
        'ngx_cache_purge',
        'headers-more-nginx-module',
        'nginx-module-vts',
        'ngx-fancyindex',
        'lua-nginx-module',
      ]) {
        expect(v.stdout).toContain(`--add-module=/usr/local/src/ha-setup/src/${dir}`);
      }
      const patched = await lab.ssh(
        i,
        'grep -c ngx_http_upstream_check_peer_down ' +
          '/usr/local/src/ha-setup/src/nginx/src/http/ngx_http_upstream_round_robin.c',
      );
      expect(Number(patched.stdout.trim())).toBeGreaterThan(0);
    }
  });

  it('upstream-check: a stopped backend shows down on check_status and gets no requests', async () => {
    const both = new Set<string>();
    for (let k = 0; k < 10; k++) both.add((await curl(0, 'http://127.0.0.1:8080/checked/')).stdout.split(' ')[1]);
    expect(both.size).toBe(2);
    await lab.ssh(1, 'systemctl stop lab-backend');
    try {
      await new Promise((r) => setTimeout(r, 2500));
      const status = await curl(0, "'http://127.0.0.1:8080/check_status?format=json'");
      const servers = JSON.parse(status.stdout).servers.server as Array<{
        upstream: string;
        name: string;
        status: string;
      }>;
      const checked = servers.filter((s) => s.upstream === 'checked');
      expect(checked.find((s) => s.name.startsWith(lab.state.nodes[1].ip))?.status).toBe('down');
      expect(checked.find((s) => s.name.startsWith(lab.state.nodes[0].ip))?.status).toBe('up');
      for (let k = 0; k < 20; k++) {
        const r = await lab.ssh(
          0,
          "curl -sS -m 5 -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/checked/; echo; " +
            'curl -sS -m 5 http://127.0.0.1:8080/checked/',
        );
        const [code, body] = r.stdout.split('\n');
        expect(code).toBe('200');
        expect(body).toContain(`backend ${lab.state.nodes[0].ip}:9001`);
      }
    } finally {
      await lab.ssh(1, 'systemctl start lab-backend');
    }
  });

  it('sticky: a client with its cookie always reaches the same backend; without it, both serve', async () => {
    const first = await lab.ssh(
      0,
      'rm -f /tmp/jar; curl -sS -m 5 -c /tmp/jar http://127.0.0.1:8080/sticky/; grep -c route /tmp/jar',
    );
    expect(first.stdout).toMatch(/\n1\n?$/);
    const seen = new Set<string>();
    for (let k = 0; k < 10; k++)
      seen.add((await curl(0, '-b /tmp/jar http://127.0.0.1:8080/sticky/')).stdout.split(' ')[1]);
    expect(seen.size).toBe(1);
    const free = new Set<string>();
    for (let k = 0; k < 10; k++) free.add((await curl(0, 'http://127.0.0.1:8080/sticky/')).stdout.split(' ')[1]);
    expect(free.size).toBe(2);
  });

  it('auth-ldap against a real slapd: right password 200, wrong 401, LDAP down refuses', async () => {
    const code = async (user: string) =>
      (
        await lab.ssh(0, `curl -sS -m 10 -o /dev/null -w '%{http_code}' -u ${user} http://127.0.0.1:8080/ldap/`)
      ).stdout.trim();
    expect(await code('alice:wonderland')).toBe('200');
    expect(await code('alice:wrong')).toBe('401');
    expect(await code('mallory:wonderland')).toBe('401');
    await lab.ssh(1, 'systemctl stop slapd');
    try {
      // Fail closed: with LDAP down the module gives up after request_timeout (2 s) and closes the
      // connection without an answer (curl reports 000), for right and wrong passwords alike.
      for (const user of ['alice:wonderland', 'alice:wrong']) {
        const started = Date.now();
        expect(await code(user)).toBe('000');
        expect(Date.now() - started).toBeLessThan(8000);
      }
    } finally {
      await lab.ssh(1, 'systemctl start slapd');
    }
  });

  it('cache-purge: cached, purged, fetched again', async () => {
    const get = async () =>
      (
        await lab.ssh(
          0,
          "curl -sS -m 5 -D - -o /dev/null http://127.0.0.1:8080/cached/page | grep -i '^x-cache-status' | tr -d '\\r'",
        )
      ).stdout.trim();
    await lab.ssh(0, 'curl -sS -m 5 -o /dev/null -X PURGE http://127.0.0.1:8080/cached/page');
    expect(await get()).toMatch(/MISS/);
    expect(await get()).toMatch(/HIT/);
    const purge = await lab.ssh(
      0,
      "curl -sS -m 5 -o /dev/null -w '%{http_code}' -X PURGE http://127.0.0.1:8080/cached/page",
    );
    expect(purge.stdout.trim()).toBe('200');
    expect(await get()).toMatch(/MISS/);
  });

  it('headers-more sets and clears headers; vts lists the upstreams as JSON', async () => {
    const h = await lab.ssh(0, 'curl -sS -m 5 -D - -o /dev/null http://127.0.0.1:8080/headers');
    expect(h.stdout).toMatch(/^X-HA-Test: on\r?$/m);
    expect(h.stdout).not.toMatch(/^Server:/im);
    const vts = JSON.parse((await curl(0, 'http://127.0.0.1:8080/vts/format/json')).stdout);
    expect(Object.keys(vts.upstreamZones)).toEqual(expect.arrayContaining(['checked', 'stickied', 'plain']));
  });

  it('a second apply changes nothing', async () => {
    const r = await cli(['apply', lab.runbookPath, '--renderer', 'silent', '--no-verify']);
    expect(r.code, r.err).toBe(0);
    expect(ranSteps(lab.runbookPath)).toEqual({ node1: [], node2: [] });
  });

  it(
    'your own Lua modules (site.include.lua) load through lua_package_path; ' +
      'a change to one is a reload, not a restart',
    async () => {
      const dir = join(lab.runbookPath, '..');
      mkdirSync(join(dir, 'lua', 'lab'), { recursive: true });
      const greet = (word: string) =>
        `local M = {}\nfunction M.hello(node) return "${word} from " .. node end\nreturn M\n`;
      writeFileSync(join(dir, 'lua', 'lab', 'greet.lua'), greet('hello'));
      writeFileSync(
        join(dir, 'lua-test.conf'),
        'location = /lua-mod {\n    default_type text/plain;\n    content_by_lua_block { ' +
          'ngx.say(require("lab.greet").hello(ngx.var.hostname)) }\n}\n',
      );
      const doc = parse(readFileSync(lab.runbookPath, 'utf8'));
      doc.site.include = { http: ['modules-test.conf'], server: ['lua-test.conf'], lua: ['lua'] };
      writeFileSync(lab.runbookPath, stringify(doc));
      let r = await cli(['apply', lab.runbookPath, '--renderer', 'silent', '--no-verify']);
      expect(r.code, r.out + r.err).toBe(0);
      expect(ranSteps(lab.runbookPath)).toEqual({ node1: ['nginx-config'], node2: ['nginx-config'] });
      expect((await lab.ssh(0, 'curl -sS -m 3 http://127.0.0.1/lua-mod')).stdout.trim()).toBe('hello from node1');
      expect((await lab.ssh(1, 'ls /usr/local/nginx/conf/ha-lua/lab/')).stdout.trim()).toBe('greet.lua');
      const pid = (await lab.ssh(0, 'cat /usr/local/nginx/logs/nginx.pid')).stdout.trim();
      writeFileSync(join(dir, 'lua', 'lab', 'greet.lua'), greet('hi'));
      r = await cli(['apply', lab.runbookPath, '--renderer', 'silent', '--no-verify']);
      expect(r.code, r.out + r.err).toBe(0);
      expect(ranSteps(lab.runbookPath)).toEqual({ node1: ['nginx-config'], node2: ['nginx-config'] });
      expect((await lab.ssh(1, 'curl -sS -m 3 http://127.0.0.1/lua-mod')).stdout.trim()).toBe('hi from node2');
      expect((await lab.ssh(0, 'cat /usr/local/nginx/logs/nginx.pid')).stdout.trim()).toBe(pid);
    },
  );

  it('removing the include file from the runbook removes it from the nodes (config step only)', async () => {
    const doc = parse(readFileSync(lab.runbookPath, 'utf8'));
    doc.site.include = { http: [] };
    writeFileSync(lab.runbookPath, stringify(doc));
    const r = await cli(['apply', lab.runbookPath, '--renderer', 'silent', '--no-verify']);
    expect(r.code, r.err).toBe(0);
    expect(ranSteps(lab.runbookPath)).toEqual({ node1: ['nginx-config'], node2: ['nginx-config'] });
    // (writeFile's timestamped .bak copies of changed files stay, the five newest, as everywhere.)
    const gone = await lab.ssh(
      0,
      "ls /usr/local/nginx/conf/conf.d/ | grep -v '[.]bak$'; " +
        "find /usr/local/nginx/conf/ha-lua /usr/local/nginx/conf/ha-site.d -type f ! -name '*.bak' | wc -l",
    );
    expect(gone.stdout.trim()).toBe('ha-site.conf\n0');
    const port = await lab.ssh(0, "curl -sS -m 3 -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/headers");
    expect(port.stdout.trim()).not.toBe('200');
  });

  // Issue: a module picked in the wizard was compiled in and never configured. The same module set,
  // now configured by runbook fields alone (no include file), each shown working by a request on the
  // site's own port.
  it('modules configured from the runbook: check, sticky, LDAP, cache/purge, listing, vts, each working', async () => {
    const [n1, n2] = lab.state.nodes.map((n) => n.ip);
    for (const i of [0, 1]) {
      expect(
        (
          await lab.ssh(
            i,
            'mkdir -p /srv/lab-files && echo one > /srv/lab-files/alpha.txt && echo two > /srv/lab-files/beta.txt',
          )
        ).code,
      ).toBe(0);
    }
    const doc = parse(readFileSync(lab.runbookPath, 'utf8'));
    doc.site.include = {};
    doc.site.upstreams = [
      {
        name: 'checked',
        servers: [`${n1}:9001`, `${n2}:9001`],
        check: { interval: 500, rise: 1, fall: 2, timeout: 1000, path: '/' },
      },
      { name: 'stickied', servers: [`${n1}:9001`, `${n2}:9001`], sticky: { cookie: 'route' } },
    ];
    doc.site.ldap = [
      { name: 'labldap', url: `ldap://${n2}:389/ou=people,dc=ha,dc=lab?uid?sub?(objectClass=inetOrgPerson)` },
    ];
    doc.site.cache = { path: '/var/cache/nginx-ha-lab' };
    doc.site.locations = [
      { path: '/sticky/', upstream: 'stickied' },
      { path: '/ldap/', upstream: 'checked', authLdap: 'labldap' },
      { path: '/cached/', upstream: 'checked', cache: { valid: '10m' } },
      { path: '/files/', fancyindex: { root: '/srv/lab-files' } },
    ];
    writeFileSync(lab.runbookPath, stringify(doc));
    const r = await cli(['apply', lab.runbookPath, '--renderer', 'silent', '--no-verify']);
    expect(r.code, r.out + r.err).toBe(0);
    expect(ranSteps(lab.runbookPath)).toEqual({ node1: ['nginx-config'], node2: ['nginx-config'] });
    const get = (args: string) => lab.ssh(0, `curl -sS -m 10 ${args}`);
    const backend = async (args: string) => (await get(args)).stdout.split(' ')[1];

    // upstream-check: the status page lists both servers up; a stopped backend goes down and gets nothing.
    const status = async () =>
      JSON.parse((await get("'http://127.0.0.1/check_status?format=json'")).stdout).servers.server as Array<{
        upstream: string;
        name: string;
        status: string;
      }>;
    expect((await status()).filter((x) => x.upstream === 'checked').map((x) => x.status)).toEqual(['up', 'up']);
    await lab.ssh(1, 'systemctl stop lab-backend');
    try {
      await new Promise((res) => setTimeout(res, 2500));
      expect((await status()).find((x) => x.name.startsWith(n2))?.status).toBe('down');
      for (let k = 0; k < 10; k++) expect(await backend('http://127.0.0.1/')).toBe(`${n1}:9001`);
    } finally {
      await lab.ssh(1, 'systemctl start lab-backend');
    }
    // sticky (the module here: nginx 1.22): with its cookie a client stays on one backend.
    expect(
      (
        await lab.ssh(
          0,
          'rm -f /tmp/jar2; curl -sS -m 5 -c /tmp/jar2 -o /dev/null http://127.0.0.1/sticky/; grep -c route /tmp/jar2',
        )
      ).stdout.trim(),
    ).toBe('1');
    const seen = new Set<string>();
    for (let k = 0; k < 10; k++) seen.add(await backend('-b /tmp/jar2 http://127.0.0.1/sticky/'));
    expect(seen.size).toBe(1);
    // auth-ldap against the real slapd.
    const code = async (user: string) =>
      (await get(`-o /dev/null -w '%{http_code}' ${user} http://127.0.0.1/ldap/`)).stdout.trim();
    expect(await code('')).toBe('401');
    expect(await code('-u alice:wrong')).toBe('401');
    expect(await code('-u alice:wonderland')).toBe('200');
    // cache-purge: MISS, HIT, PURGE from this node, MISS again.
    const cache = async () =>
      (
        await get("-D - -o /dev/null http://127.0.0.1/cached/page | grep -i '^x-cache-status' | tr -d '\\r'")
      ).stdout.trim();
    await cache();
    expect(await cache()).toMatch(/HIT/);
    expect((await get("-o /dev/null -w '%{http_code}' -X PURGE http://127.0.0.1/cached/page")).stdout.trim()).toBe(
      '200',
    );
    expect(await cache()).toMatch(/MISS/);
    // fancyindex: the directory listed.
    const listing = (await get('http://127.0.0.1/files/')).stdout;
    expect(listing).toContain('alpha.txt');
    expect(listing).toContain('beta.txt');
    // vts: its page on localhost, counting the upstreams.
    const vts = JSON.parse((await get('http://127.0.0.1/vts/format/json')).stdout);
    expect(Object.keys(vts.upstreamZones)).toEqual(expect.arrayContaining(['checked', 'stickied']));
  });
});
