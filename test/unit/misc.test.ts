import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { sh, shq, shqAll, raw } from '../../src/shell.js';
import { replayRunbook } from '../../src/runbook/replay.js';
import { validateRunbook } from '../../src/runbook/validate.js';
import { measureOutage } from '../../src/verify/probe.js';
import { sustainedSplitBrain } from '../../src/verify/verify.js';
import { labAddressing, labPaths, DEFAULT_LAB } from '../../src/lab/config.js';
import { labRunbook } from '../../src/lab/runbook.js';
import type { Runbook } from '../../src/runbook/schema.js';
import { packagesFor } from '../../src/steps/common.js';
import { assumedFacts } from '../../src/engine/facts.js';

describe('shell quoting', () => {
  it('leaves safe words readable and single-quotes everything else', () => {
    expect(shq('/usr/local/nginx')).toBe('/usr/local/nginx');
    expect(shq('')).toBe("''");
    expect(shq('a b')).toBe("'a b'");
    expect(shq("it's; rm -rf /")).toBe("'it'\\''s; rm -rf /'");
    expect(shq('$(id)')).toBe("'$(id)'");
    expect(shqAll(['x', 'y z'])).toBe("x 'y z'");
  });
  it('quotes every interpolation in sh``', () => {
    expect(sh`cp ${'a b'} ${['c', 'd;e']} ${raw('&&')} true`).toBe("cp 'a b' c 'd;e' && true");
    expect(() => sh`x ${{}}`).toThrow(/cannot quote/);
  });
});

describe('replay', () => {
  const rb = validateRunbook(parse(readFileSync(join(import.meta.dirname, '..', 'fixtures', 'valid.yaml'), 'utf8')));
  const runbook = (rb.ok ? rb.runbook : undefined) as Runbook;
  it('keeps roles and priorities in order and replaces hosts and VIP', () => {
    const doc = replayRunbook(runbook, ['10.0.0.5', '10.0.0.6'], '10.0.0.100/24', undefined);
    expect(doc.name).toBe('web-ha-10-0-0-5');
    expect(doc.nodes.map((n) => [n.host, n.role, n.priority])).toEqual([
      ['10.0.0.5', 'master', 100],
      ['10.0.0.6', 'backup', 90],
    ]);
    expect(doc.vrrp.vip).toBe('10.0.0.100/24');
    expect(validateRunbook(doc).ok).toBe(true);
  });
  it('refuses a different node count and a VIP outside the new subnet', () => {
    expect(() => replayRunbook(runbook, ['10.0.0.5'], undefined, undefined)).toThrow(/2 nodes/);
    expect(() => replayRunbook(runbook, ['10.0.0.5', '10.0.0.6'], undefined, undefined)).toThrow(
      /not in the subnet of the runbook's VIP/,
    );
  });
});

describe('failover measurement', () => {
  const s = (sentAt: number, ok: boolean, node?: string) => ({ sentAt, doneAt: sentAt + (ok ? 2 : 250), ok, node });
  it('measures from the first failed request to the first answer of the new holder', () => {
    const samples = [
      s(0, true, 'a'),
      s(50, true, 'a'),
      s(100, false),
      s(150, false),
      s(200, true, 'b'),
      s(250, true, 'b'),
    ];
    expect(measureOutage(samples, 'b')).toEqual({
      downtimeMs: 102,
      failedRequests: 2,
      totalRequests: 6,
      answeredBy: ['a', 'b'],
    });
  });
  it('calls two holders split brain only when two consecutive polls see them', () => {
    expect(sustainedSplitBrain([{ holders: ['a'] }, { holders: ['a', 'b'] }, { holders: ['b'] }])).toBe(false);
    expect(sustainedSplitBrain([{ holders: ['a'] }, { holders: ['a', 'b'] }, { holders: ['a', 'b'] }])).toBe(true);
  });
  it('is zero when no request failed', () => {
    expect(measureOutage([s(0, true, 'a'), s(50, true, 'b')], 'b').downtimeMs).toBe(0);
  });
});

describe('lab addressing and runbook', () => {
  it('puts the bridge on .1, nodes on .11.., the VIP on .100 and writes a valid runbook', () => {
    const paths = labPaths({ HA_SETUP_LAB_DIR: '/x/lab', HA_SETUP_CACHE_DIR: '/x/cache' });
    const a = labAddressing({ ...DEFAULT_LAB, nodes: 3 }, paths);
    expect([a.bridgeIp, a.vip, ...a.nodes.map((n) => n.ip)]).toEqual([
      '10.213.0.1',
      '10.213.0.100',
      '10.213.0.11',
      '10.213.0.12',
      '10.213.0.13',
    ]);
    const state = {
      options: DEFAULT_LAB,
      bridge: 'halab0',
      bridgeIp: a.bridgeIp,
      prefix: 24,
      vip: a.vip,
      forwardingBefore: '0',
      nodes: a.nodes,
      createdAt: '',
    };
    const doc = labRunbook(state, paths);
    expect(validateRunbook(doc).problems).toEqual([]);
    expect(doc.sources?.mirror).toBe('/x/cache/sources');
    expect(() => labAddressing({ ...DEFAULT_LAB, nodes: 4 }, paths)).toThrow(/2 or 3/);
  });
  it("builds lua on bookworm only (the pinned lua module matches bookworm's lua-resty-core)", () => {
    const paths = labPaths({ HA_SETUP_LAB_DIR: '/x/lab', HA_SETUP_CACHE_DIR: '/x/cache' });
    const a = labAddressing(DEFAULT_LAB, paths);
    const state = (distro: 'bookworm' | 'trixie') => ({
      options: { ...DEFAULT_LAB, distro },
      bridge: 'halab0',
      bridgeIp: a.bridgeIp,
      prefix: 24,
      vip: a.vip,
      forwardingBefore: '0',
      nodes: a.nodes,
      createdAt: '',
    });
    expect(labRunbook(state('bookworm'), paths).build?.modules).toEqual(['fancyindex', 'lua']);
    const trixie = labRunbook(state('trixie'), paths);
    expect(trixie.build?.modules).toEqual(['fancyindex']);
    expect(validateRunbook(trixie).problems).toEqual([]);
  });
  it('uses PCRE2 where PCRE1 is gone (trixie, noble, el9)', () => {
    expect(packagesFor('build', assumedFacts('debian13'))).toContain('libpcre2-dev');
    expect(packagesFor('build', assumedFacts('debian13'))).not.toContain('libpcre3-dev');
    expect(packagesFor('build', assumedFacts('debian12'))).toContain('libpcre3-dev');
    expect(packagesFor('build', assumedFacts('el9'))).toContain('pcre2-devel');
  });
});

describe('what ha-setup writes next to runbooks stays out of git', () => {
  it('the secrets file comes with runbooks/.gitignore (secrets, logs, records); an existing one is kept', async () => {
    const { mkdtempSync, readFileSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { writeSecretsFile } = await import('../../src/runbook/io.js');
    const dir = mkdtempSync(join(tmpdir(), 'ha-setup-gi-'));
    writeSecretsFile(join(dir, 'web.secrets'), { HA_VRRP_PASSWORD: 'x' });
    expect(readFileSync(join(dir, '.gitignore'), 'utf8').split('\n')).toEqual(
      expect.arrayContaining(['*.secrets', 'logs/', 'records/']),
    );
    const other = mkdtempSync(join(tmpdir(), 'ha-setup-gi-'));
    writeFileSync(join(other, '.gitignore'), 'mine\n');
    writeSecretsFile(join(other, 'web.secrets'), { HA_VRRP_PASSWORD: 'x' });
    expect(readFileSync(join(other, '.gitignore'), 'utf8')).toBe('mine\n');
  });
});

describe('nginx hot upgrade and rollback scripts', () => {
  const paths = labPaths({ HA_SETUP_LAB_DIR: '/x/lab', HA_SETUP_CACHE_DIR: '/x/cache' });
  const a = labAddressing(DEFAULT_LAB, paths);
  const state = {
    options: DEFAULT_LAB,
    bridge: 'halab0',
    bridgeIp: a.bridgeIp,
    prefix: 24,
    vip: a.vip,
    forwardingBefore: '0',
    nodes: a.nodes,
    createdAt: '',
  };
  const rb = (prefix: string) => {
    const doc = labRunbook(state, paths);
    doc.build = { ...doc.build, prefix } as typeof doc.build;
    const v = validateRunbook(doc);
    expect(v.problems).toEqual([]);
    return v.runbook as Runbook;
  };
  const shellAccepts = (script: string) => execFileSync('sh', ['-n', '-c', script], { encoding: 'utf8' });

  it('render to shell that parses, with every path quoted', async () => {
    const { rollbackScript } = await import('../../src/orchestrate/rollback.js');
    const { upgradeScriptFile } = await import('../../src/steps/install.js');
    const { assumedFacts: facts } = await import('../../src/engine/facts.js');
    for (const prefix of ['/usr/local/nginx', '/opt/edge_nginx-1.26']) {
      const runbook = rb(prefix);
      const upgrade = upgradeScriptFile({
        runbook,
        node: { name: 'n1', host: '10.0.0.1', role: 'master', priority: 100 } as never,
        cluster: [],
        facts: facts('debian12'),
        sources: {},
        clusterFacts: {},
      } as never).content;
      const rollback = rollbackScript(runbook);
      shellAccepts(upgrade);
      shellAccepts(rollback);
      expect(upgrade).toContain(`BIN=${shq(`${prefix}/sbin/nginx`)}\n`);
      expect(rollback).toContain(shq(`${prefix}/sbin/nginx.old`));
      // USR2, then WINCH, then QUIT to the old master, in that order; HUP only on the rollback path.
      const order = ['kill -USR2 "$old"', 'kill -WINCH "$old"', 'kill -HUP "$old"', 'kill -QUIT "$old"'].map((k) =>
        upgrade.indexOf(k),
      );
      expect(order.every((i) => i > 0)).toBe(true);
      expect([...order].sort((x, y) => x - y)).toEqual(order);
    }
  });

  it(
    'rollback brings the previous configuration back with the previous binary, tested together first; ' +
      'twice is the newer again',
    async () => {
      const { mkdtempSync, mkdirSync, writeFileSync, readFileSync: read, chmodSync } = await import('node:fs');
      const { tmpdir } = await import('node:os');
      const { rollbackScript } = await import('../../src/orchestrate/rollback.js');
      const prefix = mkdtempSync(join(tmpdir(), 'ha-rb-'));
      // Stand-ins for two builds: the old one has no lua and refuses a configuration with lua directives.
      const build = (name: string, lua: boolean) =>
        `#!/bin/sh\n[ "$1" = -v ] && { echo "nginx version: ${name}"; exit 0; }\n` +
        `conf=$(for a in "$@"; do :; done; echo "$a")\n${
          lua ? '' : 'grep -q lua_package_path "$conf" && { echo "unknown directive lua_package_path" >&2; exit 1; }\n'
        }exit 0\n`;
      mkdirSync(join(prefix, 'sbin'));
      writeFileSync(join(prefix, 'sbin', 'nginx'), build('new', true));
      writeFileSync(join(prefix, 'sbin', 'nginx.old'), build('old', false));
      for (const f of ['nginx', 'nginx.old']) chmodSync(join(prefix, 'sbin', f), 0o755);
      mkdirSync(join(prefix, 'conf'));
      writeFileSync(join(prefix, 'conf', 'nginx.conf'), 'lua_package_path "x";\n');
      mkdirSync(join(prefix, '.ha-setup-conf.old'));
      writeFileSync(join(prefix, '.ha-setup-conf.old', 'nginx.conf'), 'events {}\n');
      const script = rollbackScript(rb(prefix));
      // No systemd here: nginx counts as not running; the swap is what is under test.
      const run = () =>
        spawnSync('bash', ['-c', `systemctl() { return 3; }\nset -euo pipefail\n${script}`], { encoding: 'utf8' });
      const first = run();
      expect(first.status, first.stderr).toBe(0);
      expect(first.stdout).toContain('nginx version: old');
      expect(read(join(prefix, 'conf', 'nginx.conf'), 'utf8')).toBe('events {}\n');
      expect(read(join(prefix, '.ha-setup-conf.old', 'nginx.conf'), 'utf8')).toContain('lua_package_path');
      const second = run();
      expect(second.status, second.stderr).toBe(0);
      expect(second.stdout).toContain('nginx version: new');
      expect(read(join(prefix, 'conf', 'nginx.conf'), 'utf8')).toContain('lua_package_path');
      // Without the previous configuration the previous binary is tested against the current one: refused, nothing
      // swapped.
      const { rmSync } = await import('node:fs');
      rmSync(join(prefix, '.ha-setup-conf.old'), { recursive: true });
      const refused = run();
      expect(refused.status).toBe(1);
      expect(refused.stderr).toMatch(
        /the previous binary refuses the configuration it would run with: not rolled back/,
      );
      expect(read(join(prefix, 'sbin', 'nginx'), 'utf8')).toContain('version: new');
    },
  );
});

describe('handover document', () => {
  it("names the runbook without this machine's paths, so it can travel", async () => {
    const { mkdtempSync, copyFileSync, mkdirSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { renderHandover } = await import('../../src/docs/handover.js');
    const { loadRunbook } = await import('../../src/runbook/io.js');
    const dir = mkdtempSync(join(tmpdir(), 'ha-setup-docs-'));
    mkdirSync(join(dir, 'runbooks'));
    const file = join(dir, 'runbooks', 'edge.yaml');
    copyFileSync(join(import.meta.dirname, '..', '..', 'runbooks', 'example-nginx-lua.yaml'), file);
    const { path, runbook } = loadRunbook(file);
    const md = renderHandover(path, runbook, '0.0.0');
    expect(md).not.toContain(dir);
    expect(md).toContain('ha-setup docs edge.yaml');
  });

  it('text from runbooks and hosts shows as text, never as HTML or extra table columns', async () => {
    const { mkdtempSync, mkdirSync, copyFileSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { renderHandover } = await import('../../src/docs/handover.js');
    const { loadRunbook } = await import('../../src/runbook/io.js');
    const { markdownText } = await import('../../src/render.js');
    expect(markdownText('a <b> & c | `d`')).toBe('a &lt;b&gt; &amp; c \\| \\`d\\`');
    // An upstream server line cannot carry markup in the first place.
    const doc = parse(
      readFileSync(join(import.meta.dirname, '..', '..', 'runbooks', 'example-nginx-lua.yaml'), 'utf8'),
    );
    doc.site.upstreams = [{ name: 'api', servers: ['10.10.1.21:9000 <img src=x onerror=alert(1)>'] }];
    expect(validateRunbook(doc).problems.map((p) => p.path)).toEqual(['site.upstreams[0].servers[0]']);
    // What a verification recorded (host output) goes through the filter.
    const dir = mkdtempSync(join(tmpdir(), 'ha-setup-md-'));
    const file = join(dir, 'edge.yaml');
    copyFileSync(join(import.meta.dirname, '..', '..', 'runbooks', 'example-nginx-lua.yaml'), file);
    const { path, runbook } = loadRunbook(file);
    mkdirSync(join(dir, 'records', runbook.name), { recursive: true });
    const failover = {
      from: 'edge1',
      to: 'edge2',
      downtimeMs: 1,
      failedRequests: 0,
      totalRequests: 1,
      splitBrain: false,
    };
    writeFileSync(
      join(dir, 'records', runbook.name, 'last-verify.json'),
      JSON.stringify({
        scenario: 'planned',
        at: 'now',
        passed: false,
        failover,
        problems: ['<script>alert(1)</script> | x'],
        states: [],
      }),
    );
    const md = renderHandover(path, runbook, '0.0.0');
    expect(md).not.toContain('<script>');
    expect(md).toContain('| problem | &lt;script&gt;alert(1)&lt;/script&gt; \\| x |');
  });
});

describe('site.include.lua: your Lua modules shipped with the config', () => {
  it(
    'validates, reads every .lua below each directory, places them on lua_package_path, ' +
      'and refuses what cannot work',
    async () => {
      const { mkdtempSync, mkdirSync, writeFileSync } = await import('node:fs');
      const { tmpdir } = await import('node:os');
      const { readSiteFiles } = await import('../../src/runbook/site-files.js');
      const { offlinePlan } = await import('../../src/engine/plan-view.js');
      const { INSTALL_STEPS } = await import('../../src/steps/index.js');
      const dir = mkdtempSync(join(tmpdir(), 'ha-setup-lua-'));
      mkdirSync(join(dir, 'lua', 'gw'), { recursive: true });
      writeFileSync(join(dir, 'lua', 'gw', 'route.lua'), 'return { pick = function() return "a" end }\n');
      writeFileSync(join(dir, 'lua', 'hello.lua'), 'return "hi"\n');
      writeFileSync(join(dir, 'lua', 'README.md'), 'not Lua\n');
      const doc = parse(
        readFileSync(join(import.meta.dirname, '..', '..', 'runbooks', 'example-nginx-lua.yaml'), 'utf8'),
      );
      doc.site = { ...(doc.site ?? {}), include: { lua: ['lua'] } };
      const v = validateRunbook(doc);
      expect(v.problems).toEqual([]);
      const rb = v.runbook as Runbook;
      const files = readSiteFiles(rb, dir);
      expect(Object.keys(files.lua).sort()).toEqual(['gw/route.lua', 'hello.lua']);
      expect(files.conf).toEqual({});
      const [node] = offlinePlan(rb, INSTALL_STEPS, 'debian12', files);
      const cfg = node.steps.find((s) => s.step.id === 'nginx-config')!.plan;
      const paths = cfg.files.map((f) => f.path);
      expect(paths).toEqual(
        expect.arrayContaining(['/usr/local/nginx/conf/ha-lua/gw/route.lua', '/usr/local/nginx/conf/ha-lua/hello.lua']),
      );
      const nginxConf = cfg.files.find((f) => f.path.endsWith('/nginx.conf'))!.content;
      // $prefix: the staged copy nginx-config tests sits in a prefix of its own, with its own Lua.
      expect(nginxConf).toContain(
        'lua_package_path "$prefix/conf/ha-lua/?.lua;$prefix/conf/ha-lua/?/init.lua;' +
          '/usr/local/share/ha-setup/lua/usr/share/lua/5.1/?.lua;;";',
      );

      // OpenResty: only ours in front of its own defaults.
      const or = validateRunbook({
        ...doc,
        build: { flavor: 'openresty', version: '1.27.1.2', prefix: '/usr/local/openresty', modules: [] },
      });
      expect(or.problems).toEqual([]);
      const orConf = offlinePlan(or.runbook as Runbook, INSTALL_STEPS, 'debian12', files)[0]
        .steps.find((s) => s.step.id === 'nginx-config')!
        .plan.files.find((f) => f.path.endsWith('/nginx.conf'))!.content;
      expect(orConf).toContain('lua_package_path "$prefix/conf/ha-lua/?.lua;$prefix/conf/ha-lua/?/init.lua;;";');

      // The nginx flavor without the lua module cannot load them.
      const noLua = validateRunbook({ ...doc, build: { ...doc.build, modules: ['fancyindex'] } });
      expect(noLua.problems).toEqual([
        { path: 'site.include.lua', message: expect.stringMatching(/add "lua" to build\.modules/) },
      ]);
      // A missing or empty directory, the same module in two directories: named at the field.
      mkdirSync(join(dir, 'empty'));
      mkdirSync(join(dir, 'other'));
      writeFileSync(join(dir, 'other', 'hello.lua'), 'return "again"\n');
      const withDirs = (dirs: string[]) => ({
        ...rb,
        site: { ...rb.site, include: { ...rb.site.include, lua: dirs } },
      });
      expect(() => readSiteFiles(withDirs(['nope']), dir)).toThrow(/site\.include\.lua\[0\]: nope does not exist/);
      expect(() => readSiteFiles(withDirs(['empty']), dir)).toThrow(
        /site\.include\.lua\[0\]: empty has no \.lua files/,
      );
      expect(() => readSiteFiles(withDirs(['lua', 'other']), dir)).toThrow(
        /site\.include\.lua\[1\]: hello\.lua is also in lua/,
      );
    },
  );
});

describe('site.include never leaves its directories', () => {
  const setup = async () => {
    const { mkdtempSync, mkdirSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const dir = mkdtempSync(join(tmpdir(), 'ha-setup-esc-'));
    mkdirSync(join(dir, 'lua'));
    writeFileSync(join(dir, 'lua', 'ok.lua'), 'return 1\n');
    const doc = parse(
      readFileSync(join(import.meta.dirname, '..', '..', 'runbooks', 'example-nginx-lua.yaml'), 'utf8'),
    );
    return { dir, doc };
  };

  it(
    "the review's exploit: a conf include whose path starts like a Lua directory is refused, " +
      'and never becomes a Lua file',
    async () => {
      const { mkdirSync, writeFileSync } = await import('node:fs');
      const { readSiteFiles } = await import('../../src/runbook/site-files.js');
      const { offlinePlan } = await import('../../src/engine/plan-view.js');
      const { INSTALL_STEPS } = await import('../../src/steps/index.js');
      const { dir, doc } = await setup();
      const evil = 'lua/../../../../../../../etc/systemd/system/nginx.service.d/evil.conf';
      doc.site = { include: { lua: ['lua'], http: [evil] } };
      const v = validateRunbook(doc);
      expect(v.problems).toEqual([
        { path: 'site.include.http[0]', message: expect.stringMatching(/goes up with '\.\.'/) },
      ]);
      // Past the schema (a runbook object built in code): the file is read from where the path points
      // inside the runbook folder only, and lands in conf.d under its base name, never under ha-lua.
      mkdirSync(join(dir, 'lua', 'sub'), { recursive: true });
      writeFileSync(join(dir, 'lua', 'sub', 'x.conf'), 'add_header X-Test 1;\n');
      const rb = {
        ...(validateRunbook({ ...doc, site: { include: { lua: ['lua'], http: ['lua/sub/x.conf'] } } })
          .runbook as Runbook),
      };
      const files = readSiteFiles(rb, dir);
      expect(Object.keys(files.lua)).toEqual(['ok.lua']);
      const paths = offlinePlan(rb, INSTALL_STEPS, 'debian12', files)[0]
        .steps.find((s) => s.step.id === 'nginx-config')!
        .plan.files.map((f) => f.path);
      expect(paths).toContain('/usr/local/nginx/conf/conf.d/site-http-x.conf');
      expect(paths.filter((p) => !p.startsWith('/usr/local/nginx/conf/'))).toEqual([]);
      const forged = { ...rb, site: { ...rb.site, include: { ...rb.site.include, http: [evil] } } };
      expect(() => readSiteFiles(forged, dir)).toThrow(
        /site\.include\.http\[0\]: .* outside the runbook's folder|does not exist/,
      );
    },
  );

  it('every remote destination is checked after normalising', async () => {
    const { remotePathInside } = await import('../../src/runbook/site-files.js');
    expect(remotePathInside('/usr/local/nginx/conf/ha-lua', 'gw/route.lua', 'f')).toBe(
      '/usr/local/nginx/conf/ha-lua/gw/route.lua',
    );
    for (const bad of ['../x.lua', 'a/../../x.lua', '/etc/passwd', '', 'a/./../../b']) {
      expect(() => remotePathInside('/usr/local/nginx/conf/ha-lua', bad, 'site.include.lua')).toThrow(
        /site\.include\.lua: .* outside/,
      );
    }
  });

  it(
    'absolute paths, symlinks out of the runbook folder, a whole tree: ' +
      'clear errors naming the field, no stack trace',
    async () => {
      const { mkdirSync, symlinkSync, writeFileSync } = await import('node:fs');
      const { readSiteFiles, SITE_LIMITS } = await import('../../src/runbook/site-files.js');
      const { InvalidInputError } = await import('../../src/errors.js');
      const { dir, doc } = await setup();
      expect(validateRunbook({ ...doc, site: { include: { lua: ['/'] } } }).problems).toEqual([
        { path: 'site.include.lua[0]', message: expect.stringMatching(/is absolute/) },
      ]);
      expect(validateRunbook({ ...doc, site: { include: { http: ['/etc/nginx/x.conf'] } } }).problems).toEqual([
        { path: 'site.include.http[0]', message: expect.stringMatching(/is absolute/) },
      ]);
      const rb = validateRunbook(doc).runbook as Runbook;
      const withInclude = (include: object) => ({
        ...rb,
        site: { ...rb.site, include: { http: [], server: [], lua: [], ...include } },
      });
      // Forged past the schema: still refused when reading.
      expect(() => readSiteFiles(withInclude({ lua: ['/'] }), dir)).toThrow(InvalidInputError);
      symlinkSync('/etc/hostname', join(dir, 'out.conf'));
      expect(() => readSiteFiles(withInclude({ http: ['out.conf'] }), dir)).toThrow(
        /site\.include\.http\[0\]: out\.conf resolves to .*outside the runbook's folder/,
      );
      symlinkSync('/usr/share', join(dir, 'lua', 'share'));
      expect(() => readSiteFiles(withInclude({ lua: ['lua'] }), dir)).toThrow(
        /site\.include\.lua\[0\]: .*outside the runbook's folder/,
      );
      const many = join(dir, 'many');
      mkdirSync(many);
      for (let i = 0; i <= SITE_LIMITS.luaFiles; i++) writeFileSync(join(many, `m${i}.lua`), 'return 1\n');
      expect(() => readSiteFiles(withInclude({ lua: ['many'] }), dir)).toThrow(/more than 500 Lua files/);
      writeFileSync(join(dir, 'big.conf'), Buffer.alloc(SITE_LIMITS.fileBytes + 1, 0x23));
      expect(() => readSiteFiles(withInclude({ http: ['big.conf'] }), dir)).toThrow(/big\.conf is \d+ bytes/);
    },
  );
});

describe('the hot-upgrade script', () => {
  it(
    '--restore-binary puts the previous binary back and keeps the refused one as .failed (the one revert ' +
      'nginx-config uses)',
    async () => {
      const { mkdtempSync, writeFileSync } = await import('node:fs');
      const { tmpdir } = await import('node:os');
      const { render } = await import('../../src/render.js');
      const dir = mkdtempSync(join(tmpdir(), 'ha-upgrade-'));
      const script = join(dir, 'nginx-upgrade.sh');
      writeFileSync(
        script,
        render('nginx-upgrade.sh.njk', {
          binary: join(dir, 'nginx'),
          confFile: join(dir, 'nginx.conf'),
          pidFile: join(dir, 'nginx.pid'),
          healthUrl: 'http://127.0.0.1/ha-health',
        }),
      );
      writeFileSync(join(dir, 'nginx'), 'new build');
      writeFileSync(join(dir, 'nginx.old'), 'previous build');
      const ok = spawnSync('sh', [script, '--restore-binary'], { encoding: 'utf8' });
      expect(ok.status, ok.stderr).toBe(0);
      expect(readFileSync(join(dir, 'nginx'), 'utf8')).toBe('previous build');
      expect(readFileSync(join(dir, 'nginx.failed'), 'utf8')).toBe('new build');
      const { rmSync } = await import('node:fs');
      rmSync(join(dir, 'nginx.old'));
      const none = spawnSync('sh', [script, '--restore-binary'], { encoding: 'utf8' });
      expect(none.status).toBe(1);
      expect(none.stderr).toContain('no previous binary');
    },
  );
});
