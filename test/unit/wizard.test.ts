import { existsSync, mkdtempSync, readFileSync, statSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { main } from '../../src/cli/main.js';
import { parseRunbookYaml, runbookToYaml } from '../../src/runbook/io.js';
import { validateRunbook } from '../../src/runbook/validate.js';

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'ha-setup-wizard-'));
}

async function run(argv: string[], cwd: string, interactive = false) {
  let out = '';
  let err = '';
  const code = await main(argv, {
    cwd,
    interactive,
    stdout: (s) => {
      out += s;
    },
    stderr: (s) => {
      err += s;
    },
  });
  return { code, out, err };
}

const required = ['--hosts', '10.0.0.11,10.0.0.12', '--vip', '10.0.0.100/24', '--interface', 'eth0'];

describe('wizard through flags', () => {
  it('writes a runbook that passes validate with --yes', async () => {
    const dir = tmp();
    const r = await run(['init', ...required, '--yes'], dir);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const file = join(dir, 'runbooks', 'web-ha.yaml');
    const doc = parse(readFileSync(file, 'utf8'));
    expect(validateRunbook(doc).ok).toBe(true);
    expect(doc.nodes).toEqual([
      { host: '10.0.0.11', role: 'master', priority: 100 },
      { host: '10.0.0.12', role: 'backup', priority: 90 },
    ]);
    expect(doc.vrrp.virtualRouterId).toBe(100); // derived from the VIP's last octet
    // The fault bench's pick: 0.05 s adverts with a realtime VRRP process (0 false failovers in 10
    // minutes of stress, host loss ~205 ms).
    expect(doc.vrrp).toMatchObject({ version: 3, advertInt: 0.05 });
    expect(doc.keepalived.rtPriority).toBe(50);
    const v = await run(['validate', file], dir);
    expect(v.code).toBe(0);
    const off = await run(['init', ...required, '--rt-priority', '0', '--out', '-', '--yes'], tmp());
    expect(parse(off.out).keepalived.rtPriority).toBe(0);
    const bad = await run(['init', ...required, '--rt-priority', '120', '--yes'], tmp());
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/--rt-priority/);
  });

  it(
    'prefills the SSH user and key from ~/.ssh/config, warns about a key file that does not exist, ' +
      'next steps as invoked',
    async () => {
      const { mkdirSync, writeFileSync } = await import('node:fs');
      const { sshConfigDefaults, invocation } = await import('../../src/cli/init.js');
      const home = tmp();
      mkdirSync(join(home, '.ssh'));
      writeFileSync(
        join(home, '.ssh', 'config'),
        'User deploy\nHost bastion\n  User jump\n  IdentityFile ~/.ssh/jump\nHost *\n  IdentityFile ' +
          '~/.ssh/deploy_ed25519\n  User other\n',
      );
      expect(sshConfigDefaults(home)).toEqual({ user: 'deploy', identityFile: '~/.ssh/deploy_ed25519' });
      const saved = process.env.HOME;
      process.env.HOME = home;
      try {
        const dir = tmp();
        const r = await run(['init', ...required, '--yes'], dir);
        expect(r.code, r.err).toBe(0);
        const doc = parse(readFileSync(join(dir, 'runbooks', 'web-ha.yaml'), 'utf8'));
        expect(doc.ssh).toMatchObject({ user: 'deploy', identityFile: '~/.ssh/deploy_ed25519' });
        expect(r.err).toMatch(/warning: the SSH key ~\/\.ssh\/deploy_ed25519 does not exist on this machine/);
        expect(r.out).toMatch(
          new RegExp(
            ['validate', 'plan', 'apply'].map((c) => String.raw`\n {2}\S.* ${c} runbooks\/web-ha\.yaml`).join(' .*'),
          ),
        );
        expect(r.out).toMatch(/next:\n {2}\S.* validate /);
      } finally {
        process.env.HOME = saved;
      }
      expect(invocation({ npm_command: 'exec' }, '/x/node_modules/.bin/ha-setup')).toBe('npx ha-setup');
      expect(invocation({}, '/usr/lib/node_modules/ha-setup/bin/ha-setup.js')).toBe('ha-setup');
      expect(invocation({}, join(process.cwd(), 'bin', 'ha-setup.js'))).toBe(`node ${join('bin', 'ha-setup.js')}`);
    },
  );

  it('--out - writes the runbook to stdout only, and no file', async () => {
    const { readdirSync } = await import('node:fs');
    const dir = tmp();
    const r = await run(['init', ...required, '--vrrp-version', '2', '--out', '-', '--yes'], dir);
    expect(r.code, r.err).toBe(0);
    const doc = parse(r.out);
    expect(validateRunbook(doc).ok).toBe(true);
    expect(doc.vrrp.auth).toEqual({ passwordEnv: 'HA_SETUP_VRRP_PASSWORD' });
    expect(r.err).toMatch(/VRRP password: not generated/);
    expect(readdirSync(dir)).toEqual([]);
  });

  it(
    'an upstream from Consul through flags: discovery with the active check; ' +
      'refused on nginx without lua, naming the flag',
    async () => {
      const dir = tmp();
      const r = await run(
        [
          'init',
          ...required,
          '--flavor',
          'nginx',
          '--modules',
          'lua',
          '--upstream',
          '10.0.0.21:8080',
          '--consul',
          'http://10.0.0.5:8500',
          '--consul-service',
          'web',
          '--out',
          '-',
          '--yes',
        ],
        dir,
      );
      expect(r.code, r.err).toBe(0);
      const doc = parse(r.out);
      expect(validateRunbook(doc).ok).toBe(true);
      expect(doc.site.upstreams).toEqual([
        {
          name: 'app',
          servers: ['10.0.0.21:8080'],
          discovery: { consul: { address: 'http://10.0.0.5:8500', service: 'web', interval: 1 }, check: { path: '/' } },
        },
      ]);
      const noLua = await run(
        [
          'init',
          ...required,
          '--flavor',
          'nginx',
          '--modules',
          'fancyindex',
          '--upstream',
          '10.0.0.21:8080',
          '--consul',
          'http://10.0.0.5:8500',
          '--yes',
        ],
        tmp(),
      );
      expect(noLua.code).toBe(2);
      expect(noLua.err).toMatch(/--consul.*add lua to the modules/);
      const bad = await run(
        ['init', ...required, '--upstream', '10.0.0.21:8080', '--consul', 'consul.local:8500', '--yes'],
        tmp(),
      );
      expect(bad.code).toBe(2);
      expect(bad.err).toMatch(/--consul.*http:\/\/<IPv4>/);
      const alone = await run(['init', ...required, '--consul', 'http://10.0.0.5:8500', '--yes'], tmp());
      expect(alone.code).toBe(2);
      expect(alone.err).toMatch(/--consul: needs --upstream/);
    },
  );

  it('gray release by flags: a canary upstream and site.gray; refused without lua, Redis, or alone', async () => {
    const r = await run(
      [
        'init',
        ...required,
        '--upstream',
        '10.0.0.21:8080',
        '--gray-canary',
        '10.0.0.31:8080',
        '--gray-redis',
        '10.0.0.7:6379',
        '--gray-redis-password-env',
        'GRAY_PW',
        '--out',
        '-',
        '--yes',
      ],
      tmp(),
    );
    expect(r.code, r.err).toBe(0);
    const doc = parse(r.out);
    expect(validateRunbook(doc).ok).toBe(true);
    expect(doc.site.upstreams).toEqual([
      { name: 'app', servers: ['10.0.0.21:8080'] },
      { name: 'canary', servers: ['10.0.0.31:8080'] },
    ]);
    expect(doc.site.gray).toEqual({
      redis: { address: '10.0.0.7:6379', passwordEnv: 'GRAY_PW' },
      stable: 'app',
      canary: 'canary',
    });
    const noLua = await run(
      [
        'init',
        ...required,
        '--flavor',
        'nginx',
        '--modules',
        'fancyindex',
        '--upstream',
        '10.0.0.21:8080',
        '--gray-canary',
        '10.0.0.31:8080',
        '--gray-redis',
        '10.0.0.7:6379',
        '--yes',
      ],
      tmp(),
    );
    expect(noLua.code).toBe(2);
    expect(noLua.err).toMatch(/--gray-canary.*add lua to the modules/);
    const noRedis = await run(
      ['init', ...required, '--upstream', '10.0.0.21:8080', '--gray-canary', '10.0.0.31:8080', '--yes'],
      tmp(),
    );
    expect(noRedis.code).toBe(2);
    expect(noRedis.err).toMatch(/answers are missing[\s\S]*--gray-redis/);
    const badRedis = await run(
      [
        'init',
        ...required,
        '--upstream',
        '10.0.0.21:8080',
        '--gray-canary',
        '10.0.0.31:8080',
        '--gray-redis',
        'redis.local',
        '--yes',
      ],
      tmp(),
    );
    expect(badRedis.code).toBe(2);
    expect(badRedis.err).toMatch(/--gray-redis.*<IPv4>\[:port\]/);
    const alone = await run(['init', ...required, '--gray-canary', '10.0.0.31:8080', '--yes'], tmp());
    expect(alone.code).toBe(2);
    expect(alone.err).toMatch(/--gray-canary: needs --upstream/);
  });

  it('takes --node specs, VRRPv2 with a generated password kept out of the runbook', async () => {
    const dir = tmp();
    const r = await run(
      [
        'init',
        '--node',
        '10.0.0.11:backup:90',
        '--node',
        '10.0.0.12:master:100',
        '--vip',
        '10.0.0.100/24',
        '--interface',
        'eth0',
        '--vrrp-version',
        '2',
        '--name',
        'edge',
        '--modules',
        'fancyindex,cache-purge',
        '--flavor',
        'nginx',
        '--out',
        'out/edge.yaml',
        '--yes',
      ],
      dir,
    );
    expect(r.code, r.err).toBe(0);
    const text = readFileSync(join(dir, 'out', 'edge.yaml'), 'utf8');
    const doc = parse(text);
    expect(doc.nodes[1]).toEqual({ host: '10.0.0.12', role: 'master', priority: 100 });
    expect(doc.vrrp).toMatchObject({ version: 2, advertInt: 1, auth: { passwordEnv: 'HA_SETUP_VRRP_PASSWORD' } });
    expect(doc.keepalived.rtPriority).toBe(0);
    expect(doc.build).toMatchObject({
      flavor: 'nginx',
      version: '1.26.3',
      prefix: '/usr/local/nginx',
      modules: ['fancyindex', 'cache-purge'],
    });
    const secretsFile = join(dir, 'out', 'edge.secrets');
    const secret = /HA_SETUP_VRRP_PASSWORD=(\S+)/.exec(readFileSync(secretsFile, 'utf8'))![1];
    expect(secret).toHaveLength(8);
    expect(statSync(secretsFile).mode & 0o777).toBe(0o600);
    expect(text).not.toContain(secret);
    expect(validateRunbook(doc).ok).toBe(true);
  });

  it('HTTPS by flags: ACME with the names, a generated ticket secret beside the runbook, never in it', async () => {
    const dir = tmp();
    const r = await run(
      [
        'init',
        ...required,
        '--tls',
        'acme',
        '--server-name',
        'www.example.com example.com',
        '--acme-email',
        'ops@example.com',
        '--yes',
      ],
      dir,
    );
    expect(r.code, r.err).toBe(0);
    const text = readFileSync(join(dir, 'runbooks', 'web-ha.yaml'), 'utf8');
    const doc = parse(text);
    expect(doc.site).toMatchObject({
      serverName: 'www.example.com example.com',
      tls: {
        listen: 443,
        redirectHttp: true,
        acme: { directory: 'letsencrypt-staging', email: 'ops@example.com' },
        sessionTickets: { secretEnv: 'HA_SETUP_TLS_TICKET_SECRET' },
      },
    });
    expect(validateRunbook(doc).ok).toBe(true);
    const secret = /HA_SETUP_TLS_TICKET_SECRET=(\S+)/.exec(
      readFileSync(join(dir, 'runbooks', 'web-ha.secrets'), 'utf8'),
    )![1];
    expect(secret.length).toBeGreaterThanOrEqual(32);
    expect(text).not.toContain(secret);
    expect(r.out).toMatch(/TLS session ticket secret: generated into .*web-ha.secrets \(mode 0600/);
  });

  it(
    'HTTPS by flags: files get their paths and a reminder; ACME on another port than 80, ' +
      'a wildcard or flags without --tls are refused',
    async () => {
      const dir = tmp();
      const r = await run(
        ['init', ...required, '--tls', 'files', '--name', 'shop', '--no-tls-session-tickets', '--yes'],
        dir,
      );
      expect(r.code, r.err).toBe(0);
      const doc = parse(readFileSync(join(dir, 'runbooks', 'shop.yaml'), 'utf8'));
      expect(doc.site.tls).toEqual({
        listen: 443,
        redirectHttp: true,
        certificate: { chain: 'tls/shop.fullchain.pem', key: 'tls/shop.key' },
      });
      expect(r.out).toContain(
        'certificate: ' +
          'put the chain at runbooks/tls/shop.fullchain.pem and the key at runbooks/tls/shop.key (mode 0600)',
      );
      const port = await run(
        ['init', ...required, '--tls', 'acme', '--server-name', 'a.example.com', '--listen', '8080', '--yes'],
        tmp(),
      );
      expect(port.code).toBe(2);
      expect(port.err).toMatch(/--tls.*http-01 challenge always comes to port 80/);
      const wild = await run(['init', ...required, '--tls', 'acme', '--server-name', '*.example.com', '--yes'], tmp());
      expect(wild.code).toBe(2);
      expect(wild.err).toMatch(/--server-name.*wildcard needs a DNS challenge/);
      const stray = await run(['init', ...required, '--acme-email', 'ops@example.com', '--yes'], tmp());
      expect(stray.code).toBe(2);
      expect(stray.err).toMatch(/--acme-email.*needs --tls acme/);
    },
  );

  it('without a terminal and without answers exits 2 listing the missing flags', async () => {
    const dir = tmp();
    const r = await run(['init'], dir);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--hosts/);
    expect(r.err).toMatch(/--vip/);
    expect(r.err).toMatch(/--interface/);
    expect(existsSync(join(dir, 'runbooks'))).toBe(false);
  });

  it('without a terminal and without --yes names the defaulted flags', async () => {
    const r = await run(['init', ...required], tmp());
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/pass --yes/);
  });

  it('rejects an invalid flag value with exit 2', async () => {
    const r = await run(['init', ...required, '--vrid', '300', '--yes'], tmp());
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--vrid 300: virtual router id must be a whole number from 1 to 255/);
  });

  it('refuses to overwrite without --force', async () => {
    const dir = tmp();
    expect((await run(['init', ...required, '--yes'], dir)).code).toBe(0);
    const again = await run(['init', ...required, '--yes'], dir);
    expect(again.code).toBe(2);
    expect(again.err).toMatch(/already exists/);
    expect((await run(['init', ...required, '--yes', '--force'], dir)).code).toBe(0);
  });
});

describe('CLI surface', () => {
  it('prints --version and --help with exit 0', async () => {
    const v = await run(['--version'], tmp());
    expect(v.code).toBe(0);
    expect(v.out.trim()).toMatch(/^\d+\.\d+\.\d+$/);
    for (const argv of [['--help'], ['init', '--help'], ['validate', '--help']]) {
      const h = await run(argv, tmp());
      expect(h.code).toBe(0);
      expect(h.out).toMatch(/Usage: ha-setup/);
    }
  });

  it('exits 2 with a hint on an unknown command or flag', async () => {
    const c = await run(['validat'], tmp());
    expect(c.code).toBe(2);
    expect(c.err).toMatch(/did you mean 'validate'/);
    const f = await run(['init', '--vipp', 'x'], tmp());
    expect(f.code).toBe(2);
    expect(f.err).toMatch(/unknown option '--vipp'/);
  });

  it('validate prints every problem with its field path and exits 2', async () => {
    const dir = tmp();
    const file = join(dir, 'bad.yaml');
    const rb = parse(readFileSync(new URL('../fixtures/valid.yaml', import.meta.url), 'utf8'));
    rb.nodes[1].host = 'bad_host!';
    rb.vrrp.virtualRouterId = 0;
    rb.vrp = {};
    const { writeFileSync } = await import('node:fs');
    writeFileSync(file, runbookToYaml(rb));
    const r = await run(['validate', file], dir);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/nodes\[1\]\.host: "bad_host!" is not an IPv4 address or DNS name/);
    expect(r.err).toMatch(/vrrp\.virtualRouterId: virtualRouterId must be from 1 to 255/);
    expect(r.err).toMatch(/vrp: unknown key/);
  });

  it('first-hour error paths: clean messages and exit 2, never a stack trace', async () => {
    const { writeFileSync, mkdirSync } = await import('node:fs');
    const dir = tmp();
    const valid = readFileSync(new URL('../fixtures/valid.yaml', import.meta.url), 'utf8');
    const cases: Array<[string[], RegExp]> = [];
    // a directory, a missing file
    mkdirSync(join(dir, 'adir'));
    cases.push([['validate', join(dir, 'adir')], /runbook .*adir is not a file/]);
    cases.push([['validate', join(dir, 'missing.yaml')], /does not exist/]);
    // YAML syntax: the first error with its excerpt, not a cascade
    writeFileSync(join(dir, 'syntax.yaml'), 'version: 1\nname: x\n  bad: [\nnodes: 3\n');
    cases.push([
      ['validate', join(dir, 'syntax.yaml')],
      new RegExp(
        String.raw`\(1 problem\)\n {2}\(yaml\): ` +
          String.raw`Nested mappings are not allowed in compact mappings at line 2, column 7\n {4}name: x\n`,
      ),
    ]);
    // a wrong type names what it got
    writeFileSync(join(dir, 'type.yaml'), valid.replace('virtualRouterId: 51', 'virtualRouterId: fifty-one'));
    cases.push([
      ['validate', join(dir, 'type.yaml')],
      /vrrp\.virtualRouterId: virtualRouterId must be a whole number from 1 to 255, got "fifty-one"/,
    ]);
    // an unknown key does not hide the other problems
    writeFileSync(
      join(dir, 'both.yaml'),
      valid.replace('virtualRouterId: 51', 'virtual_router_id: 51').replace('priority: 90', 'priority: 900'),
    );
    cases.push([
      ['validate', join(dir, 'both.yaml')],
      /nodes\[1\]\.priority: priority must be from 1 to 254[\s\S]*vrrp\.virtual_router_id: unknown key/,
    ]);
    // --os without --offline, a mistyped command with arguments, help for an unknown command
    cases.push([['plan', join(dir, 'type.yaml'), '--os', 'el9'], /--os only applies with --offline/]);
    cases.push([['aply', 'runbooks/x.yaml'], /unknown command 'aply'\n {2}did you mean 'apply'\?/]);
    cases.push([['help', 'nope'], /unknown command 'nope'/]);
    // a crash scenario without a terminal and without --yes: refused before any host is contacted
    writeFileSync(join(dir, 'ok.yaml'), valid);
    cases.push([
      ['verify', join(dir, 'ok.yaml'), '--scenario', 'nginx-crash'],
      /--scenario nginx-crash kills nginx \(SIGKILL\) on the VIP holder: clients see failed requests; add --yes/,
    ]);
    // YAML aliases: an unknown one, and a billion laughs
    writeFileSync(join(dir, 'alias.yaml'), 'version: 1\nname: x\nnodes: *nope\n');
    cases.push([['validate', join(dir, 'alias.yaml')], /\(yaml\): Unresolved alias/]);
    const laughs = [
      'a: &a [x, x, x, x, x, x, x, x, x]',
      ...'bcdefg'.split('').map((k, i) => `${k}: &${k} [${Array(9).fill(`*${'abcdefg'[i]}`).join(', ')}]`),
    ].join('\n');
    writeFileSync(join(dir, 'laughs.yaml'), `${laughs}\n`);
    cases.push([['validate', join(dir, 'laughs.yaml')], /\(yaml\): Excessive alias count/]);
    // a key file that does not exist: named, exit 2, before any connection
    writeFileSync(
      join(dir, 'key.yaml'),
      valid.replace('identityFile: ~/.ssh/id_ed25519', 'identityFile: /nonexistent/id_ed25519'),
    );
    cases.push([
      ['status', join(dir, 'key.yaml')],
      /ssh\.identityFile: cannot read the SSH key \/nonexistent\/id_ed25519: ENOENT/,
    ]);
    for (const [argv, expected] of cases) {
      const r = await run(argv, dir);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.err, argv.join(' ')).toMatch(expected);
      expect(r.err).not.toMatch(/internal error|\n\s+at /);
    }
    const h = await run(['help', 'apply'], dir);
    expect(h.code).toBe(0);
    expect(h.out).toMatch(/Usage: ha-setup apply/);
    const top = await run(['--help'], dir);
    expect(top.out).toMatch(/no command, at a terminal: the wizard/);
  });

  it('validate --json: the same problems as data, exit codes unchanged', async () => {
    const { writeFileSync } = await import('node:fs');
    const dir = tmp();
    const bad = join(dir, 'bad.yaml');
    const valid = readFileSync(new URL('../fixtures/valid.yaml', import.meta.url), 'utf8');
    writeFileSync(bad, valid.replace('virtualRouterId: 51', 'virtualRouterId: 0'));
    const good = join(dir, 'good.yaml');
    writeFileSync(good, valid);
    const b = await run(['validate', bad, '--json'], dir);
    expect(b.code).toBe(2);
    const out = JSON.parse(b.out);
    expect(out.valid).toBe(false);
    expect(out.problems).toEqual([{ path: 'vrrp.virtualRouterId', message: expect.stringMatching(/from 1 to 255/) }]);
    const g = await run(['validate', good, '--json'], dir);
    expect(g.code).toBe(0);
    expect(JSON.parse(g.out)).toMatchObject({ valid: true, problems: [] });
    const m = await run(['validate', join(dir, 'missing.yaml'), '--json'], dir);
    expect(m.code).toBe(2);
    expect(JSON.parse(m.out).problems[0]).toMatchObject({
      path: '(file)',
      message: expect.stringMatching(/does not exist/),
    });
  });

  it('plan --offline: review document by default, --json and --limit', async () => {
    const dir = tmp();
    const example = join(import.meta.dirname, '..', '..', 'runbooks', 'example-nginx-lua.yaml');
    const text = await run(['plan', example, '--offline', '--os', 'el9'], dir);
    expect(text.code, text.err).toBe(0);
    expect(text.out).toMatch(/^plan for .*example-nginx-lua\.yaml \(runbook "edge-nginx"/);
    expect(text.out).toMatch(/-- \[will run\] packages: .*\[every node\]/);
    const json = await run(['plan', example, '--offline', '--json', '--limit', 'edge2'], dir);
    expect(json.code, json.err).toBe(0);
    const doc = JSON.parse(json.out);
    expect(doc.nodes.map((n: { name: string; osSource: string }) => [n.name, n.osSource])).toEqual([
      ['edge2', 'assumed'],
    ]);
    expect(doc.nodes[0].steps.map((s: { id: string }) => s.id)).toContain('keepalived-config');
    const bad = await run(['plan', example, '--offline', '--limit', 'nope'], dir);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/--limit: no node nope/);
  });

  it('apply refuses a bad --concurrency or --build-concurrency before connecting to anything', async () => {
    const dir = tmp();
    const example = join(import.meta.dirname, '..', '..', 'runbooks', 'example-nginx-lua.yaml');
    for (const [flag, value] of [
      ['--build-concurrency', '0'],
      ['--build-concurrency', 'two'],
      ['--concurrency', '-1'],
    ]) {
      const r = await run(['apply', example, flag, value], dir);
      expect(r.code, `${flag} ${value}`).toBe(2);
      expect(r.err).toContain(`${flag}: ${value} is not a whole number from 1 to 9999`);
    }
  });

  it("completion bash: commands, lab subcommands and each command's flags, from the command table", async () => {
    const { writeFileSync } = await import('node:fs');
    const { execFileSync } = await import('node:child_process');
    const dir = tmp();
    const r = await run(['completion', 'bash'], dir);
    expect(r.code, r.err).toBe(0);
    const script = join(dir, 'ha-setup.bash');
    writeFileSync(script, r.out);
    const complete = (...line: string[]) =>
      execFileSync(
        'bash',
        [
          '-c',
          `source ${script}; COMP_WORDS=(${line.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${line.length - 1}; ` +
            `_ha_setup; echo "\${COMPREPLY[*]}"`,
        ],
        { cwd: dir, encoding: 'utf8' },
      ).trim();
    expect(complete('ha-setup', 'ap')).toBe('apply');
    expect(complete('ha-setup', 'ro')).toBe('rollback');
    expect(complete('ha-setup', 'apply', 'x.yaml', '--li')).toBe('--limit');
    expect(complete('ha-setup', 'plan', 'x.yaml', '--j')).toBe('--json');
    expect(complete('ha-setup', 'lab', 'd')).toBe('demo down');
    expect(complete('ha-setup', 'lab', 'up', '--di')).toBe('--distro');
    expect((await run(['completion', 'zsh'], dir)).out).toMatch(
      /bashcompinit[\s\S]*complete -o filenames -F _ha_setup ha-setup/,
    );
    expect((await run(['completion', 'fish'], dir)).code).toBe(2);
  });

  it('--no-color and NO_COLOR take the colour off every line', async () => {
    const chalk = (await import('chalk')).default;
    const { writeFileSync } = await import('node:fs');
    const dir = tmp();
    const file = join(dir, 'type.yaml');
    writeFileSync(
      file,
      readFileSync(new URL('../fixtures/valid.yaml', import.meta.url), 'utf8').replace(
        'virtualRouterId: 51',
        'virtualRouterId: 0',
      ),
    );
    const saved = { level: chalk.level, env: process.env.NO_COLOR };
    try {
      chalk.level = 1;
      const coloured = await run(['validate', file], dir);
      expect(coloured.err).toContain('\x1b[');
      chalk.level = 1;
      const flag = await run(['validate', file, '--no-color'], dir);
      expect(flag.code).toBe(2);
      expect(flag.err).toMatch(/virtualRouterId/);
      expect(flag.err).not.toContain('\x1b[');
      chalk.level = 1;
      process.env.NO_COLOR = '1';
      const env = await run(['validate', file], dir);
      expect(env.err).not.toContain('\x1b[');
    } finally {
      chalk.level = saved.level;
      if (saved.env === undefined) delete process.env.NO_COLOR;
      else process.env.NO_COLOR = saved.env;
    }
  });
});

describe('runbook YAML', () => {
  it('round-trips without loss', () => {
    const original = parse(readFileSync(new URL('../fixtures/valid.yaml', import.meta.url), 'utf8'));
    const again = parseRunbookYaml(runbookToYaml(original), 'roundtrip');
    expect(again).toEqual(original);
    const a = validateRunbook(original);
    const b = validateRunbook(again);
    expect(a.ok && b.ok && a.runbook).toEqual(b.ok && b.runbook);
  });

  it('reports a YAML syntax error as an invalid runbook', () => {
    expect(() => parseRunbookYaml('nodes: [1, 2\n', 'broken.yaml')).toThrow(/not a valid runbook/);
  });
});

// Drives the real clack prompts with keystrokes on an injected input stream.
class Terminal {
  input = new PassThrough();
  output = new PassThrough();
  screen = '';
  /** Everything ever shown (screen is cleared at each answer). */
  transcript = '';
  constructor() {
    this.output.on('data', (d) => {
      this.screen += d.toString();
      this.transcript += d.toString();
    });
    (this.input as any).isTTY = false;
  }
  async answer(prompt: string, keys: string): Promise<void> {
    const start = Date.now();
    let seen = 0;
    while (true) {
      const idx = this.screen.indexOf(prompt, seen);
      if (idx >= 0) break;
      if (Date.now() - start > 5000)
        throw new Error(`prompt "${prompt}" never appeared; screen:\n${this.screen.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 10));
      seen = 0;
    }
    this.screen = '';
    await new Promise((r) => setTimeout(r, 20));
    this.input.write(keys);
  }
}

const ENTER = '\r';
const DOWN = '\u001b[B';
const SPACE = ' ';

describe('wizard through clack', () => {
  it('asks every question and writes a valid runbook', async () => {
    const dir = tmp();
    const term = new Terminal();
    const done = main(['init'], {
      cwd: dir,
      interactive: true,
      input: term.input,
      output: term.output,
      stdout: () => {},
      stderr: () => {},
    });
    await term.answer('Cluster name', `edge-ha${ENTER}`);
    await term.answer('Node addresses', `10.0.0.11, 10.0.0.12${ENTER}`);
    await term.answer('Which node is the master', `${DOWN}${ENTER}`); // the second node
    await term.answer('Priorities', ENTER);
    await term.answer('SSH user', ENTER);
    await term.answer('SSH port', ENTER);
    await term.answer('SSH private key', ENTER);
    await term.answer('Virtual IP', `10.0.0.100/24${ENTER}`);
    await term.answer('Look up the first node', ENTER); // no: nothing connects anywhere
    await term.answer('Network interface', `eth0${ENTER}`);
    expect(term.transcript).toContain('common names: eth0, ens18 / ens192 (VMs)');
    await term.answer('virtual router id', ENTER);
    await term.answer('VRRP version', ENTER);
    await term.answer('Customize tuning', `${DOWN}${ENTER}`); // yes: every question
    await term.answer('Advertisement interval', ENTER);
    await term.answer('Realtime priority', ENTER);
    await term.answer('unicast', ENTER);
    await term.answer('preempt', ENTER);
    await term.answer('Witness address', `10.0.0.1${ENTER}`);
    await term.answer('What to build', `${DOWN}${ENTER}`); // nginx
    await term.answer('Version to build', ENTER);
    await term.answer('Third-party modules', `${DOWN}${DOWN}${SPACE}${ENTER}`); // fancyindex
    for (const q of [
      'Install prefix',
      'keepalived version',
      'keepalived prefix',
      'Health check interval',
      'Failed checks',
      'Good checks',
      'Check weight',
      'Site listen port',
      'Upstream servers',
      'fancyindex: directory listing', // asked because fancyindex was picked
      'HTTPS on the VIP',
      'failover test',
      'Maximum accepted',
    ]) {
      await term.answer(q, ENTER);
    }
    await term.answer('Write runbooks/edge-ha.yaml?', ENTER);
    expect(await done).toBe(0);
    // The frame: what it will ask and how to cancel first, the key facts before writing.
    expect(term.transcript).toMatch(
      /up to \d+ questions, then a summary to confirm; .*Ctrl-C cancels and writes nothing/,
    );
    expect(term.transcript).toMatch(/node +10\.0\.0\.11 backup, priority 90/);
    expect(term.transcript).toMatch(/node +10\.0\.0\.12 master, priority 100/);
    expect(term.transcript).toMatch(/VIP +10\.0\.0\.100\/24 on eth0, VRID 100/);
    const doc = parse(readFileSync(join(dir, 'runbooks', 'edge-ha.yaml'), 'utf8'));
    expect(validateRunbook(doc).ok).toBe(true);
    expect(doc.nodes).toEqual([
      { host: '10.0.0.11', role: 'backup', priority: 90 },
      { host: '10.0.0.12', role: 'master', priority: 100 },
    ]);
    expect(doc.build).toMatchObject({ flavor: 'nginx', modules: ['fancyindex'] });
    expect(doc.vrrp.witness).toEqual({ address: '10.0.0.1' });
    // The picked module is configured, not only compiled in.
    expect(doc.site.locations).toEqual([{ path: '/files/', fancyindex: { root: '/srv/files' } }]);
  });

  it('the picked modules are configured through their flags: check, sticky, cache, LDAP, listing', async () => {
    const dir = tmp();
    const r = await run(
      [
        'init',
        '--name',
        'mods',
        '--hosts',
        '10.0.0.11,10.0.0.12',
        '--vip',
        '10.0.0.100/24',
        '--interface',
        'eth0',
        '--modules',
        'upstream-check,cache-purge,auth-ldap,fancyindex',
        '--upstream',
        '10.0.0.21:8080,10.0.0.22:8080',
        '--check-path',
        '/health',
        '--sticky-cookie',
        'srv',
        '--ldap-url',
        'ldap://10.0.0.5/ou=people,dc=ex,dc=com?uid?sub',
        '--ldap-bind-dn',
        'cn=nginx,dc=ex,dc=com',
        '--files-location',
        '/pub/=/srv/pub',
        '--yes',
      ],
      dir,
    );
    expect(r.code, r.err).toBe(0);
    const doc = parse(readFileSync(join(dir, 'runbooks', 'mods.yaml'), 'utf8'));
    expect(validateRunbook(doc).problems).toEqual([]);
    expect(doc.site.upstreams[0]).toMatchObject({ check: { path: '/health' }, sticky: { cookie: 'srv' } });
    expect(doc.site.locations).toEqual([
      { path: '/static/', upstream: 'app', cache: { valid: '10m' } },
      { path: '/admin/', upstream: 'app', authLdap: 'directory' },
      { path: '/pub/', fancyindex: { root: '/srv/pub' } },
    ]);
    expect(doc.site.ldap).toEqual([
      {
        name: 'directory',
        url: 'ldap://10.0.0.5/ou=people,dc=ex,dc=com?uid?sub',
        bindDn: 'cn=nginx,dc=ex,dc=com',
        bindPasswordEnv: 'HA_SETUP_LDAP_PASSWORD',
      },
    ]);
    // A module's flag without its module is an error naming why, not dropped.
    const stray = await run(
      [
        'init',
        '--name',
        'x',
        '--hosts',
        '10.0.0.11,10.0.0.12',
        '--vip',
        '10.0.0.100/24',
        '--interface',
        'eth0',
        '--check-path',
        '/h',
        '--yes',
      ],
      dir,
    );
    expect(stray.code).toBe(2);
    expect(stray.err).toMatch(/--check-path: needs --modules upstream-check and --upstream/);
  });

  it('re-asks after an invalid answer', async () => {
    const dir = tmp();
    const term = new Terminal();
    const done = main(['init', '--name', 'x', '--hosts', '10.0.0.11,10.0.0.12', '--interface', 'eth0', '--yes'], {
      cwd: dir,
      interactive: true,
      input: term.input,
      output: term.output,
      stdout: () => {},
      stderr: () => {},
    });
    await term.answer('Virtual IP', `10.0.0.100${ENTER}`);
    await term.answer('CIDR form', `/24${ENTER}`);
    expect(await done).toBe(0);
    expect(parse(readFileSync(join(dir, 'runbooks', 'x.yaml'), 'utf8')).vrrp.vip).toBe('10.0.0.100/24');
  });

  it('checks combinations at the question that decides them: master priority, VIP subnet', async () => {
    const dir = tmp();
    const term = new Terminal();
    const done = main(
      [
        'init',
        '--name',
        'x',
        '--hosts',
        '10.0.0.11,10.0.0.12',
        '--master',
        '10.0.0.12',
        '--interface',
        'eth0',
        '--yes',
      ],
      { cwd: dir, interactive: true, input: term.input, output: term.output, stdout: () => {}, stderr: () => {} },
    );
    // --yes takes the default priorities (which follow the master); the VIP has no default.
    await term.answer('Virtual IP', `10.1.0.100/24${ENTER}`);
    await term.answer('10.0.0.11, 10.0.0.12 are not in 10.1.0.100/24', `\u0015${ENTER}`);
    await term.answer('an answer is required', `10.0.0.100/24${ENTER}`);
    expect(await done).toBe(0);
    const doc = parse(readFileSync(join(dir, 'runbooks', 'x.yaml'), 'utf8'));
    expect(doc.vrrp.vip).toBe('10.0.0.100/24');
    expect(doc.nodes.map((n: { priority: number }) => n.priority)).toEqual([90, 100]);

    const { questions: QUESTIONS } = await import('../../src/wizard/questions.js');
    const prio = QUESTIONS.find((q) => q.id === 'priorities')!;
    expect(prio.validate!('100,90', { hosts: '10.0.0.11,10.0.0.12', master: '10.0.0.12' })).toMatch(
      /the master 10\.0\.0\.12 \(node 2\) must have the highest priority; it has 90/,
    );
    expect(prio.validate!('90,100', { hosts: '10.0.0.11,10.0.0.12', master: '10.0.0.12' })).toBeUndefined();
    expect(prio.validate!('100,90', { hosts: '10.0.0.11,10.0.0.12', master: 'none' })).toBeUndefined();
  });

  it('an existing runbook is caught right after the name question: another name, or overwrite', async () => {
    const dir = tmp();
    const { mkdirSync, writeFileSync } = await import('node:fs');
    mkdirSync(join(dir, 'runbooks'));
    writeFileSync(join(dir, 'runbooks', 'taken.yaml'), 'keep me\n');
    const flags = ['--hosts', '10.0.0.11,10.0.0.12', '--vip', '10.0.0.100/24', '--interface', 'eth0', '--yes'];
    let term = new Terminal();
    let done = main(['init', ...flags.slice(0, -1)], {
      cwd: dir,
      interactive: true,
      input: term.input,
      output: term.output,
      stdout: () => {},
      stderr: () => {},
    });
    await term.answer('Cluster name', `taken${ENTER}`);
    await term.answer('taken.yaml already exists', ENTER); // use another name
    await term.answer('Cluster name', `fresh${ENTER}`);
    for (const q of [
      'Which node is the master',
      'Priorities',
      'SSH user',
      'SSH port',
      'SSH private key',
      'virtual router id',
      'VRRP version',
      'Customize tuning',
      'unicast',
      'preempt',
      'What to build',
      'Third-party modules',
      'Site listen port',
      'Upstream servers',
      'HTTPS on the VIP',
      'failover test',
      'Write runbooks/fresh.yaml?',
    ]) {
      await term.answer(q, ENTER);
    }
    expect(await done).toBe(0);
    expect(readFileSync(join(dir, 'runbooks', 'taken.yaml'), 'utf8')).toBe('keep me\n');
    expect(existsSync(join(dir, 'runbooks', 'fresh.yaml'))).toBe(true);
    // Overwrite, chosen at the question, is honoured at the end without --force.
    term = new Terminal();
    done = main(['init', '--name', 'taken', ...flags], {
      cwd: dir,
      interactive: true,
      input: term.input,
      output: term.output,
      stdout: () => {},
      stderr: () => {},
    });
    await term.answer('taken.yaml already exists', `${DOWN}${ENTER}`);
    expect(await done).toBe(0);
    expect(validateRunbook(parse(readFileSync(join(dir, 'runbooks', 'taken.yaml'), 'utf8'))).ok).toBe(true);
  });

  it('a problem only the whole runbook shows goes back to its question; the other answers are kept', async () => {
    const dir = tmp();
    const term = new Terminal();
    // Weight 5 with priorities 100/90 passes its own question but cannot flip the election.
    const done = main(
      [
        'init',
        '--name',
        'w',
        '--hosts',
        '10.0.0.11,10.0.0.12',
        '--vip',
        '10.0.0.100/24',
        '--interface',
        'eth0',
        '--check-weight',
        '5',
        '--listen',
        '8080',
        '--yes',
      ],
      { cwd: dir, interactive: true, input: term.input, output: term.output, stdout: () => {}, stderr: () => {} },
    );
    await term.answer('Check weight', `\u0015-20${ENTER}`);
    expect(await done).toBe(0);
    expect(term.transcript).toMatch(/keepalived\.check\.weight: weight 5 cannot flip the election/);
    const doc = parse(readFileSync(join(dir, 'runbooks', 'w.yaml'), 'utf8'));
    expect(doc.keepalived.check.weight).toBe(-20);
    expect(doc.site.listen).toBe(8080);
  });

  it('answering no at the summary writes nothing', async () => {
    const dir = tmp();
    const term = new Terminal();
    const done = main(
      ['init', '--name', 'n', '--hosts', '10.0.0.11,10.0.0.12', '--vip', '10.0.0.100/24', '--interface', 'eth0'],
      { cwd: dir, interactive: true, input: term.input, output: term.output, stdout: () => {}, stderr: () => {} },
    );
    for (const q of [
      'Which node is the master',
      'Priorities',
      'SSH user',
      'SSH port',
      'SSH private key',
      'virtual router id',
      'VRRP version',
      'Customize tuning',
      'unicast',
      'preempt',
      'What to build',
      'Third-party modules',
      'Site listen port',
      'Upstream servers',
      'HTTPS on the VIP',
      'failover test',
    ]) {
      await term.answer(q, ENTER);
    }
    await term.answer('Write runbooks/n.yaml?', `${DOWN}${ENTER}`);
    expect(await done).toBe(130);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('Ctrl-C exits 130 and leaves no file', async () => {
    const dir = tmp();
    const term = new Terminal();
    const done = main(['init'], {
      cwd: dir,
      interactive: true,
      input: term.input,
      output: term.output,
      stdout: () => {},
      stderr: () => {},
    });
    await term.answer('Cluster name', `abc${ENTER}`);
    await term.answer('Node addresses', '\u0003');
    expect(await done).toBe(130);
    expect(existsSync(join(dir, 'runbooks'))).toBe(false);
    expect(readdirSync(dir)).toEqual([]);
  });
});

describe('module question', () => {
  it(
    'offers only modules that build for the flavor and version, says where each comes from, ' +
      'and names the rest with why',
    async () => {
      const { questions: QUESTIONS } = await import('../../src/wizard/questions.js');
      const q = QUESTIONS.find((x: { id: string }) => x.id === 'modules')!;
      const openresty = { flavor: 'openresty', buildVersion: '1.27.1.2' };
      const ids = q.choices!(openresty).map((c: { value: string }) => c.value);
      expect(ids).not.toContain('sticky');
      expect(ids).toEqual(expect.arrayContaining(['lua', 'upstream-check', 'auth-ldap', 'cache-purge', 'vts']));
      expect(q.note!(openresty)).toMatch(/sticky \(does not compile with nginx 1\.27\.1/);
      const hints = Object.fromEntries(
        q.choices!(openresty).map((c: { value: string; hint?: string }) => [c.value, c.hint]),
      );
      expect(hints.lua).toBe('bundled with OpenResty; proven on lab hosts');
      // Honest about what ran on real hosts: headers-more has only golden plans on OpenResty 1.27.1.2.
      expect(hints['headers-more']).toMatch(/golden plans only for this version$/);
      expect(hints['upstream-check']).toMatch(
        /^git yaoweibin\/nginx_upstream_check_module @ e538034; needs patch, a core patch; proven on lab hosts$/,
      );
      expect(hints['auth-ldap']).toMatch(/needs libldap2-dev/);
      const nginx = { flavor: 'nginx', buildVersion: '1.22.1' };
      expect(q.choices!(nginx).map((c: { value: string }) => c.value)).toContain('sticky');
      expect(q.note!(nginx)).toBeUndefined();
    },
  );
});

describe('interface lookup (--lookup-interface)', () => {
  const ipOutput = [
    '1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever',
    '2: eth0    inet 10.0.0.11/24 brd 10.0.0.255 scope global eth0\\       valid_lft forever preferred_lft forever',
    '3: docker0    inet 172.17.0.1/16 brd 172.17.255.255 scope global docker0\\       valid_lft forever ' +
      'preferred_lft forever',
    '4: host0@if12    inet 192.168.56.11/24 brd 192.168.56.255 scope global host0',
  ].join('\n');

  it('reads `ip -4 -o addr show` without loopback and picks the interface whose subnet holds the VIP', async () => {
    const { parseIpAddrShow, interfaceForVip } = await import('../../src/net.js');
    const found = parseIpAddrShow(ipOutput);
    expect(found).toEqual([
      { iface: 'eth0', cidr: '10.0.0.11/24' },
      { iface: 'docker0', cidr: '172.17.0.1/16' },
      { iface: 'host0', cidr: '192.168.56.11/24' },
    ]);
    expect(interfaceForVip(found, '10.0.0.100/24')).toBe('eth0');
    expect(interfaceForVip(found, '192.168.56.200/24')).toBe('host0');
    expect(interfaceForVip(found, '10.9.0.1/24')).toBeUndefined();
    // two interfaces in the VIP's subnet: no guess
    expect(interfaceForVip([...found, { iface: 'eth1', cidr: '10.0.0.12/24' }], '10.0.0.100/24')).toBeUndefined();
  });

  it('the found interface becomes the default (--yes takes it); the lookup gets the answers given so far', async () => {
    const { resolveAnswers } = await import('../../src/wizard/run.js');
    const { parseIpAddrShow } = await import('../../src/net.js');
    let seen: Record<string, unknown> | undefined;
    const a = await resolveAnswers(
      { hosts: '10.0.0.11,10.0.0.12', vip: '10.0.0.100/24', lookupInterface: true, sshUser: 'deploy' },
      {
        yes: true,
        interactive: false,
        lookupInterfaces: async (x) => {
          seen = { ...x };
          return parseIpAddrShow(ipOutput);
        },
      },
    );
    expect(a.interface).toBe('eth0');
    expect(seen).toMatchObject({ hosts: '10.0.0.11,10.0.0.12', sshUser: 'deploy', sshPort: '22' });
  });

  it('a failed lookup warns and the interface is required as before, named by its flag', async () => {
    const { resolveAnswers } = await import('../../src/wizard/run.js');
    let text = '';
    await expect(
      resolveAnswers(
        { hosts: '10.0.0.11,10.0.0.12', vip: '10.0.0.100/24', lookupInterface: true },
        {
          yes: true,
          interactive: false,
          warn: (l) => {
            text += l;
          },
          lookupInterfaces: async () => {
            throw new Error('connect ECONNREFUSED 10.0.0.11:22');
          },
        },
      ),
    ).rejects.toMatchObject({ details: [expect.stringContaining('--interface')] });
    expect(text).toBe('warning: could not look up the interfaces on 10.0.0.11: connect ECONNREFUSED 10.0.0.11:22');
  });

  it('without the lookup nothing connects; with --interface the lookup flag is an error, not ignored', async () => {
    const { resolveAnswers } = await import('../../src/wizard/run.js');
    let calls = 0;
    const lookupInterfaces = async () => {
      calls++;
      return [];
    };
    const a = await resolveAnswers(
      { hosts: '10.0.0.11,10.0.0.12', vip: '10.0.0.100/24', interface: 'eth0' },
      { yes: true, interactive: false, lookupInterfaces },
    );
    expect(a.interface).toBe('eth0');
    await expect(
      resolveAnswers(
        { hosts: '10.0.0.11,10.0.0.12', vip: '10.0.0.100/24', interface: 'eth0', lookupInterface: true },
        { yes: true, interactive: false, lookupInterfaces },
      ),
    ).rejects.toMatchObject({ details: ['--lookup-interface: --interface already names the interface'] });
    expect(calls).toBe(0);
  });
});
