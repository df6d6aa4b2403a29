import { spawnSync } from 'node:child_process';
import http from 'node:http';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { runbookToYaml } from '../../../src/runbook/io.js';
import { parse, stringify } from 'yaml';
import { cli, ranSteps } from './cli.js';
import { startGitServer, type GitServer } from './git-server.js';
import { keptKeepalivedVersion, openrestyModulesRunbook } from './openresty-runbook.js';
import { expectNoOrphanNginx } from './services.js';
import { withLab, type Lab } from './with-lab.js';

const fixtures = join(import.meta.dirname, '..', '..', 'fixtures', 'lab');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Sample {
  sentAt: number;
  ok: boolean;
  backend?: string;
  error?: string;
}

/** A client through the VIP: a request every intervalMs for durationMs (each its own connection). */
async function load(
  host: string,
  durationMs: number,
  during?: (elapsed: () => number) => Promise<void>,
  intervalMs = 20,
  headers: Record<string, string> = {},
): Promise<Sample[]> {
  const t0 = Date.now();
  const samples: Sample[] = [];
  const pending: Promise<void>[] = [];
  const one = () =>
    new Promise<void>((resolve) => {
      const sentAt = Date.now() - t0;
      const req = http.get({ host, port: 80, path: '/gw', agent: false, timeout: 3000, headers }, (res) => {
        let body = '';
        res.on('data', (d) => {
          body += d;
        });
        res.on('end', () => {
          samples.push(
            res.statusCode === 200
              ? { sentAt, ok: true, backend: body.split(' ')[1] }
              : { sentAt, ok: false, error: `HTTP ${res.statusCode}` },
          );
          resolve();
        });
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (e) => {
        samples.push({ sentAt, ok: false, error: e.message });
        resolve();
      });
    });
  const side = during ? during(() => Date.now() - t0) : Promise.resolve();
  while (Date.now() - t0 < durationMs) {
    pending.push(one());
    await sleep(intervalMs);
  }
  await Promise.all([...pending, side]);
  return samples.sort((a, b) => a.sentAt - b.sentAt);
}

const served = (s: Sample[]) => [...new Set(s.filter((x) => x.ok).map((x) => x.backend))].sort();

/** One request through the VIP: which backend answered ("ip:port"), or throws. */
function backendOf(host: string, headers: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host, port: 80, path: '/gw', agent: false, timeout: 3000, headers }, (res) => {
      let body = '';
      res.on('data', (d) => {
        body += d;
      });
      res.on('end', () =>
        res.statusCode === 200 ? resolve(body.split(' ')[1]) : reject(new Error(`HTTP ${res.statusCode}: ${body}`)),
      );
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

/** lab-gw@<port>.service on both nodes: the fixture backend answering "backend <ip>:<port> ...". */
async function installBackends(lab: Lab): Promise<void> {
  const backend = readFileSync(join(fixtures, 'backend.py'), 'utf8');
  await Promise.all(
    [0, 1].map(async (i) => {
      const ip = lab.state.nodes[i].ip;
      const x = await lab.ssh(
        i,
        [
          'set -e',
          'export DEBIAN_FRONTEND=noninteractive',
          'command -v python3 >/dev/null || { apt-get update -q >/dev/null; ' +
            'apt-get install -y -q --no-install-recommends python3 >/dev/null; }',
          `cat > /usr/local/bin/lab-backend.py <<'PY'\n${backend}PY`,
          `printf '[Service]\\nExecStart=/usr/bin/python3 /usr/local/bin/lab-backend.py ${ip} %%i\\n' > ` +
            `/etc/systemd/system/lab-gw@.service`,
          'systemctl daemon-reload',
        ].join('\n'),
      );
      expect(x.code, x.stderr).toBe(0);
    }),
  );
}

/**
 * Consul 1.8.7 from Debian bullseye, unpacked (not installed), one server on node1 with its data on
 * disk. Started empty when not running; `restart` restarts it with `extraArgs` (e.g. an ACL config
 * file), its registrations kept.
 */
async function startConsul(lab: Lab, opts: { extraArgs?: string; restart?: boolean } = {}): Promise<void> {
  const n1 = lab.state.nodes[0].ip;
  const consul = await lab.ssh(
    0,
    [
      'set -e',
      'if [ ! -x /opt/consul/usr/bin/consul ]; then',
      '  mkdir -p /tmp/bullseye/lists/partial /opt/consul; cd /tmp/bullseye',
      '  echo "deb http://deb.debian.org/debian bullseye main" > sources.list',
      '  O="-o Dir::Etc::SourceList=/tmp/bullseye/sources.list -o Dir::Etc::SourceParts=/dev/null -o ' +
        'Dir::State::Lists=/tmp/bullseye/lists"',
      '  apt-get $O update -q >/dev/null; apt-get $O download consul >/dev/null 2>&1',
      '  dpkg-deb -x consul_*.deb /opt/consul',
      'fi',
      `printf '[Service]\\nExecStart=/opt/consul/usr/bin/consul agent -server -bootstrap-expect 1 -data-dir ` +
        `/var/lib/lab-consul -bind ${n1} -client 0.0.0.0 -log-level warn${opts.extraArgs ?? ''}\\n' > ` +
        `/etc/systemd/system/lab-consul.service`,
      // A Consul started afresh starts empty: an earlier suite's registrations stay in its data dir.
      opts.restart
        ? 'systemctl daemon-reload; systemctl restart lab-consul'
        : 'systemctl daemon-reload; systemctl is-active --quiet lab-consul || ' +
          '{ rm -rf /var/lib/lab-consul; systemctl restart lab-consul; }',
      'for i in $(seq 1 60); do curl -sf http://127.0.0.1:8500/v1/status/leader | grep -q : && break; sleep 0.5; done',
      '/opt/consul/usr/bin/consul version | head -1',
    ].join('\n'),
  );
  expect(consul.code, consul.stderr).toBe(0);
  expect(consul.stdout).toContain('Consul v1.8.7');
}

/** The flavors the gateway suites run on; the lab's nginx home of each. */
export type GatewayFlavor = 'nginx' | 'openresty';

/**
 * The OpenResty pair 10-openresty leaves, made a plain gateway: its build kept (lua is bundled, so
 * adding it changes no build), the articles' module settings taken out so the suites' upstreams are
 * the only ones. Written over the lab runbook each suite starts from (`withLab` writes the nginx
 * flavor's); `git` serves the module sources that runbook names.
 */
async function openrestyGatewayBase(lab: Lab, git: GitServer): Promise<void> {
  const doc = openrestyModulesRunbook(lab, git.base, {
    cachePurge: true,
    keepalivedVersion: await keptKeepalivedVersion(lab),
  });
  doc.build.modules.push('lua');
  doc.site.locations = [];
  delete doc.site.ldap;
  delete doc.site.cache;
  writeFileSync(lab.runbookPath, runbookToYaml(doc));
}

/**
 * The gateway suites (Consul-driven upstreams with an active health check, gray release from Redis)
 * on one flavor: 08-gateway runs them on the nginx flavor with lua, 10b-gateway-openresty on the
 * OpenResty build 10-openresty leaves.
 */
export function gatewaySuites(flavor: GatewayFlavor): void {
  const home = flavor === 'nginx' ? '/usr/local/nginx' : '/usr/local/openresty/nginx';
  // OpenResty: the lab's git server its runbook names, up until the last suite here ends.
  let git: GitServer | undefined;
  const flavorBase = async (lab: Lab) => {
    // The suite before crashed nginx on purpose (10-openresty does): its workers died with it.
    await expectNoOrphanNginx(lab);
    if (flavor === 'nginx') return;
    git ??= await startGitServer(lab.state.nodes[0].ip.replace(/\.\d+$/, '.1'));
    await openrestyGatewayBase(lab, git);
  };

  // The Consul + OpenResty article's gateway on the lab: a real Consul (Debian bullseye's 1.8.7 on
  // node1, its state on disk), backends as systemd units on both nodes, a client through the VIP.
  describe.skipIf(!inject('labAvailable'))(`gateway (${flavor}): upstream peers from Consul, without a reload`, () => {
    let lab: Lab;
    let n1: string;
    let n2: string;
    const masterPids = async () =>
      Promise.all([0, 1].map(async (i) => (await lab.ssh(i, `cat ${home}/logs/nginx.pid`)).stdout.trim()));
    const status = async (node: number) =>
      JSON.parse((await lab.ssh(node, 'curl -sS -m 3 http://127.0.0.1/ha-gateway/status')).stdout);
    const register = async (port: number, ip: string, checkPort = port) => {
      const body = JSON.stringify({
        ID: `app-${port}`,
        Name: 'app',
        Address: ip,
        Port: port,
        Check: { HTTP: `http://${ip}:${checkPort}/health`, Interval: '1s', Timeout: '1s' },
      });
      const r = await lab.ssh(0, `curl -sS -f -X PUT --data '${body}' http://${n1}:8500/v1/agent/service/register`);
      expect(r.code, r.stderr).toBe(0);
    };
    const passing = async () =>
      JSON.parse((await lab.ssh(0, `curl -sS http://${n1}:8500/v1/health/service/app?passing=1`)).stdout)
        .map((e: { Service: { Port: number } }) => e.Service.Port)
        .sort();

    beforeAll(async () => {
      lab = await withLab();
      [n1, n2] = lab.state.nodes.map((n) => n.ip);
      await flavorBase(lab);
      let r = await cli(['apply', lab.runbookPath, '--renderer', 'silent', '--no-verify']);
      expect(r.code, r.err).toBe(0);

      // Backends: lab-gw@<port>.service on each node answering "backend <ip>:<port> ...".
      await installBackends(lab);
      for (const [i, port] of [
        [0, 9101],
        [1, 9102],
        [0, 9103],
        [1, 9104],
      ] as const) {
        expect((await lab.ssh(i, `systemctl restart lab-gw@${port}`)).code).toBe(0);
      }

      await startConsul(lab);
      await register(9101, n1);
      await register(9102, n2);
      await register(9103, n1);
      for (let k = 0; k < 20 && (await passing()).length < 3; k++) await sleep(500);
      expect(await passing()).toEqual([9101, 9102, 9103]);

      const doc = parse(readFileSync(lab.runbookPath, 'utf8'));
      doc.site.upstreams = [
        {
          name: 'gw',
          servers: [`${n1}:9101`],
          discovery: {
            consul: { address: `http://${n1}:8500`, service: 'app', interval: 0.5 },
            check: { path: '/health', interval: 0.5, fall: 2, rise: 2 },
          },
        },
      ];
      writeFileSync(lab.runbookPath, stringify(doc));
      r = await cli(['apply', lab.runbookPath, '--renderer', 'silent', '--no-verify']);
      expect(r.code, r.out + r.err).toBe(0);
      // nginx: lua-cjson is unpacked (gateway-libs, never a rebuild); OpenResty bundles it. The rest is
      // configuration, reloaded.
      const ran = flavor === 'nginx' ? ['gateway-libs', 'nginx-config'] : ['nginx-config'];
      expect(ranSteps(lab.runbookPath)).toEqual({ node1: ran, node2: ran });
    });

    it('traffic through the VIP reaches every instance Consul lists; the status page shows them', async () => {
      await sleep(1500);
      const s = await load(lab.state.vip, 2000);
      expect(s.filter((x) => !x.ok)).toEqual([]);
      expect(served(s)).toEqual([`${n1}:9101`, `${n1}:9103`, `${n2}:9102`]);
      const st = await status(0);
      expect(st.upstreams.gw.source).toBe('consul');
      expect(st.upstreams.gw.peers.map((p: { address: string }) => p.address)).toEqual([
        `${n1}:9101`,
        `${n1}:9103`,
        `${n2}:9102`,
      ]);
    });

    it('an instance Consul marks critical leaves the rotation: 0 failed requests, no reload', async () => {
      const pids = await masterPids();
      let stoppedAt = 0;
      const s = await load(lab.state.vip, 7000, async (elapsed) => {
        await sleep(1000);
        stoppedAt = elapsed();
        await lab.ssh(1, 'systemctl stop lab-gw@9102');
      });
      // Requests that met the stopped instance were retried on another peer: none failed.
      expect(s.filter((x) => !x.ok)).toEqual([]);
      console.log(`9102 stopped at ${stoppedAt} ms of ${s.length} requests`);
      expect(served(s.filter((x) => x.sentAt > stoppedAt + 4000))).toEqual([`${n1}:9101`, `${n1}:9103`]);
      // Consul's check runs every 1 s and the poll every 0.5 s: both nodes dropped it from their list.
      for (const i of [0, 1]) {
        expect((await status(i)).upstreams.gw.peers.map((p: { address: string }) => p.address)).toEqual([
          `${n1}:9101`,
          `${n1}:9103`,
        ]);
      }
      expect(await masterPids()).toEqual(pids);
    });

    it('a newly registered instance receives traffic without a reload', async () => {
      const pids = await masterPids();
      await register(9104, n2);
      await sleep(3000);
      const s = await load(lab.state.vip, 1500);
      expect(s.filter((x) => !x.ok)).toEqual([]);
      expect(served(s)).toContain(`${n2}:9104`);
      expect(await masterPids()).toEqual(pids);
    });

    it('Consul down: the last known peers keep serving, the status page says so; back up: updates resume', async () => {
      await lab.ssh(0, 'systemctl stop lab-consul');
      const s = await load(lab.state.vip, 2500);
      expect(s.filter((x) => !x.ok)).toEqual([]);
      expect(served(s)).toEqual([`${n1}:9101`, `${n1}:9103`, `${n2}:9104`]);
      for (const i of [0, 1]) expect((await status(i)).upstreams.gw.error).toMatch(/Consul unreachable/);
      await lab.ssh(
        0,
        'systemctl start lab-consul; for i in $(seq 1 60); do curl -sf http://127.0.0.1:8500/v1/status/leader | grep ' +
          '-q : && break; sleep 0.5; done',
      );
      await lab.ssh(1, 'systemctl start lab-gw@9102');
      for (let k = 0; k < 40 && (await passing()).length < 4; k++) await sleep(500);
      expect(await passing()).toEqual([9101, 9102, 9103, 9104]);
      await sleep(1500);
      const st = await status(0);
      expect(st.upstreams.gw.error).toBeUndefined();
      expect(st.upstreams.gw.peers.map((p: { address: string }) => p.address)).toEqual([
        `${n1}:9101`,
        `${n1}:9103`,
        `${n2}:9102`,
        `${n2}:9104`,
      ]);
    });

    it('a backend killed unknown to Consul: the active health check takes it out, requests still succeed', async () => {
      // 9103's Consul check looks at 9101, so Consul keeps it passing when 9103 dies.
      await register(9103, n1, 9101);
      await sleep(1500);
      let killedAt = 0;
      const s = await load(lab.state.vip, 5000, async (elapsed) => {
        await sleep(1000);
        killedAt = elapsed();
        await lab.ssh(0, 'systemctl kill -s KILL lab-gw@9103');
      });
      expect(s.filter((x) => !x.ok)).toEqual([]);
      expect(await passing()).toContain(9103);
      const gw = (await status(0)).upstreams.gw;
      expect(gw.peers.find((p: { address: string }) => p.address === `${n1}:9103`).healthy).toBe(false);
      expect(served(s.filter((x) => x.sentAt > killedAt + 2500))).not.toContain(`${n1}:9103`);
      await lab.ssh(0, 'systemctl start lab-gw@9103');
    });

    it('failover of the pair: the gateway keeps working on the new VIP holder (its state is in Consul)', async () => {
      const s = await load(lab.state.vip, 8000, async () => {
        await sleep(1000);
        await lab.ssh(0, 'systemctl stop nginx');
      });
      try {
        const after = s.filter((x) => x.sentAt > 6000);
        expect(after.length).toBeGreaterThan(0);
        expect(after.filter((x) => !x.ok)).toEqual([]);
        expect(served(after)).toEqual([`${n1}:9101`, `${n1}:9103`, `${n2}:9102`, `${n2}:9104`]);
        expect((await lab.ssh(1, `ip -4 addr show | grep -c ' ${lab.state.vip}/'`)).stdout.trim()).toBe('1');
      } finally {
        await lab.ssh(0, 'systemctl start nginx');
        await sleep(3000);
      }
    });

    it('a second apply changes nothing; the JSON access log names the upstream and peer of each request', async () => {
      const r = await cli(['apply', lab.runbookPath, '--renderer', 'silent', '--no-verify']);
      expect(r.code, r.err).toBe(0);
      expect(ranSteps(lab.runbookPath)).toEqual({ node1: [], node2: [] });
      // The access log is buffered (flush=5s); the apply above took longer than that.
      const log = await lab.ssh(0, `grep -c '"upstream":"gw","upstream_addr":"${n1}:9101"' ${home}/logs/access.log`);
      expect(Number(log.stdout.trim())).toBeGreaterThan(0);
    });

    // The token is a header the same Lua sends on both flavors; CI's minutes go to what differs.
    it.skipIf(flavor !== 'nginx')(
      'Consul with ACLs (default deny): without a token the list stays and the status page says why; ' +
        'with tokenEnv the peers come back',
      async () => {
        const TOKEN = '6f1c2a4e-8d3b-4c5f-9a7e-1b2c3d4e5f60';
        const acl = `acl { enabled = true\n default_policy = "deny"\n tokens { master = "${TOKEN}" } }`;
        try {
          expect((await lab.ssh(0, `printf '${acl}\\n' > /etc/lab-consul-acl.hcl`)).code).toBe(0);
          await startConsul(lab, { extraArgs: ' -config-file /etc/lab-consul-acl.hcl', restart: true });
          // A new leader sets the ACL system up first: until then reads may still be answered.
          let anonymous = '';
          for (let k = 0; k < 40 && anonymous !== '[]'; k++) {
            anonymous = (await lab.ssh(0, `curl -sS http://${n1}:8500/v1/health/service/app?passing=1`)).stdout.trim();
            if (anonymous !== '[]') await sleep(250);
          }
          expect(anonymous).toBe('[]');
          for (let k = 0; k < 20 && !(await status(0)).upstreams.gw.error; k++) await sleep(250);
          const denied = (await status(0)).upstreams.gw;
          expect(denied.error).toMatch(/no passing instance|HTTP 403/);
          expect(denied.peers.length).toBe(4);

          process.env.HA_SETUP_LAB_CONSUL_TOKEN = TOKEN;
          const doc = parse(readFileSync(lab.runbookPath, 'utf8'));
          doc.site.upstreams[0].discovery.consul.tokenEnv = 'HA_SETUP_LAB_CONSUL_TOKEN';
          writeFileSync(lab.runbookPath, stringify(doc));
          const pids = await masterPids();
          const r = await cli(['apply', lab.runbookPath, '--renderer', 'silent', '--no-verify']);
          expect(r.code, r.err).toBe(0);
          expect(ranSteps(lab.runbookPath)).toEqual({ node1: ['nginx-config'], node2: ['nginx-config'] });
          expect(await masterPids()).toEqual(pids);
          // Anonymous reads see nothing (above): peers back on both nodes means nginx sends the token.
          for (
            let k = 0;
            k < 40 &&
            ((await status(0)).upstreams.gw.error !== undefined || (await status(1)).upstreams.gw.error !== undefined);
            k++
          )
            await sleep(250);
          for (const i of [0, 1]) {
            const gw = (await status(i)).upstreams.gw;
            expect(gw.error).toBeUndefined();
            expect(gw.source).toBe('consul');
            expect(gw.peers.length).toBe(4);
          }
          // The token is in no file written on this machine (runbook, records, logs, docs).
          const grep = spawnSync('grep', ['-rlF', '--', TOKEN, join(lab.runbookPath, '..')], { encoding: 'utf8' });
          expect(grep.stdout).toBe('');
        } finally {
          await startConsul(lab, { restart: true });
        }
      },
    );
  });

  // The OpenResty gateway article's gray release on the lab: a real Redis (Debian's redis-server on
  // node1, with a password), a stable upstream on both nodes, a canary on node2, a client through the VIP.
  describe.skipIf(!inject('labAvailable'))(
    `gateway (${flavor}): gray release from Redis, rules changed without a reload`,
    () => {
      const PASSWORD = 'lab-gr4y!pw';
      const CANARY = 9105;
      let lab: Lab;
      let n1: string;
      let n2: string;
      const gray = (...args: string[]) => cli(['gray', lab.runbookPath, ...args]);
      const status = async (node: number) =>
        JSON.parse((await lab.ssh(node, 'curl -sS -m 3 http://127.0.0.1/ha-gateway/status')).stdout);
      const masterPids = async () =>
        Promise.all([0, 1].map(async (i) => (await lab.ssh(i, `cat ${home}/logs/nginx.pid`)).stdout.trim()));
      /** Waits until both nodes' status pages show `percent` and `ips` in force (the rules are polled). */
      const inForce = async (want: { ips?: string[]; values?: string[]; percent?: number }) => {
        for (let k = 0; k < 30; k++) {
          const all = await Promise.all([0, 1].map(status));
          // An empty list may come back as {} (lua-cjson without array_mt).
          const list = (x: unknown) => (Array.isArray(x) ? x.join() : '');
          if (
            all.every(
              (st) =>
                st.gray.rules &&
                (want.ips ?? []).join() === list(st.gray.rules.ips) &&
                (want.values ?? []).join() === list(st.gray.rules.values) &&
                (want.percent ?? 0) === st.gray.rules.percent,
            )
          )
            return;
          await sleep(200);
        }
        throw new Error(`rules ${JSON.stringify(want)} never in force: ${JSON.stringify((await status(0)).gray)}`);
      };

      // The suites after this one change the same pair: they should not share the nodes with a Consul
      // server, two Redis and the backends this file started.
      afterAll(async () => {
        await git?.stop();
        if (!lab) return;
        await Promise.all(
          [0, 1].map((i) =>
            lab.ssh(
              i,
              "systemctl stop lab-consul lab-redis lab-redis-tls 'lab-gw@*' 2>/dev/null; rm -f " +
                '/etc/systemd/system/lab-consul.service /etc/systemd/system/lab-redis.service ' +
                '/etc/systemd/system/lab-redis-tls.service /etc/systemd/system/lab-gw@.service; ' +
                'systemctl daemon-reload; true',
            ),
          ),
        );
      });

      beforeAll(async () => {
        process.env.HA_SETUP_LAB_GRAY_PW = PASSWORD;
        lab = await withLab();
        await flavorBase(lab);
        [n1, n2] = lab.state.nodes.map((n) => n.ip);
        await installBackends(lab);
        for (const [i, port] of [
          [0, 9101],
          [1, 9102],
          [1, CANARY],
        ] as const) {
          expect((await lab.ssh(i, `systemctl restart lab-gw@${port}`)).code).toBe(0);
        }
        // Debian's redis-server, run by a unit of ours on 6380 (the package's own stays on 127.0.0.1:6379).
        const redis = await lab.ssh(
          0,
          [
            'set -e',
            'export DEBIAN_FRONTEND=noninteractive',
            'command -v redis-server >/dev/null || { apt-get update -q >/dev/null; ' +
              'apt-get install -y -q --no-install-recommends redis-server >/dev/null; }',
            `printf '[Service]\\nExecStart=/usr/bin/redis-server --bind 0.0.0.0 --port 6380 ` +
              `--requirepass ${PASSWORD} --save "" --appendonly no\\n' > /etc/systemd/system/lab-redis.service`,
            'systemctl daemon-reload; systemctl restart lab-redis',
            `for i in $(seq 1 40); do redis-cli -p 6380 -a '${PASSWORD}' --no-auth-warning ping 2>/dev/null ` +
              `| grep -q PONG && break; sleep 0.25; done`,
            `redis-cli -p 6380 -a '${PASSWORD}' --no-auth-warning -n 3 flushdb; redis-server --version`,
          ].join('\n'),
        );
        expect(redis.code, redis.stderr).toBe(0);
        // Stable's peers come from Consul, so gray release and discovery work together.
        await startConsul(lab);
        for (const [ip, port] of [
          [n1, 9101],
          [n2, 9102],
        ] as const) {
          const body = JSON.stringify({
            ID: `gray-stable-${port}`,
            Name: 'gray-stable',
            Address: ip,
            Port: port,
            Check: { HTTP: `http://${ip}:${port}/health`, Interval: '1s', Timeout: '1s' },
          });
          expect(
            (await lab.ssh(0, `curl -sS -f -X PUT --data '${body}' http://${n1}:8500/v1/agent/service/register`)).code,
          ).toBe(0);
        }

        const doc = parse(readFileSync(lab.runbookPath, 'utf8'));
        doc.site.upstreams = [
          {
            name: 'stable',
            servers: [`${n1}:9101`],
            discovery: { consul: { address: `http://${n1}:8500`, service: 'gray-stable', interval: 0.5 } },
          },
          { name: 'canary', servers: [`${n2}:${CANARY}`] },
        ];
        doc.site.gray = {
          redis: { address: `${n1}:6380`, db: 3, passwordEnv: 'HA_SETUP_LAB_GRAY_PW' },
          stable: 'stable',
          canary: 'canary',
          cookie: 'gray_user',
          refresh: 0.5,
        };
        writeFileSync(lab.runbookPath, stringify(doc));
        const pids = await masterPids();
        const r = await cli(['apply', lab.runbookPath, '--renderer', 'silent', '--no-verify']);
        expect(r.code, r.out + r.err).toBe(0);
        // Configuration only (lua-cjson when this suite runs alone), reloaded: the masters stay.
        for (const steps of Object.values(ranSteps(lab.runbookPath))) {
          expect(steps).toContain('nginx-config');
          expect(steps.filter((s) => s !== 'nginx-config' && s !== 'gateway-libs')).toEqual([]);
        }
        expect(await masterPids()).toEqual(pids);
      });

      it(
        'no rules: every request goes to stable (its peers from Consul); ' +
          'the status page shows the empty rule set, no error',
        async () => {
          await inForce({});
          for (let k = 0; k < 30 && (await status(0)).upstreams.stable.peers.length < 2; k++) await sleep(200);
          expect((await status(0)).upstreams.stable.source).toBe('consul');
          const s = await load(lab.state.vip, 1500);
          expect(s.filter((x) => !x.ok)).toEqual([]);
          expect(served(s)).toEqual([`${n1}:9101`, `${n2}:9102`]);
          const st = (await status(0)).gray;
          expect(st).toMatchObject({ redis: `${n1}:6380/3`, stable: 'stable', canary: 'canary' });
          expect(st.error).toBeUndefined();
        },
      );

      it(
        'add-ip of this client sends its requests to the canary without a reload or a failed request; ' +
          'remove-ip brings it back',
        async () => {
          const pids = await masterPids();
          let addedAt = 0;
          const s = await load(lab.state.vip, 4000, async (elapsed) => {
            await sleep(500);
            const r = await gray('add-ip', `${lab.state.bridgeIp}/32`);
            expect(r.code, r.err).toBe(0);
            addedAt = elapsed();
          });
          expect(s.filter((x) => !x.ok)).toEqual([]);
          expect(served(s.filter((x) => x.sentAt < 400))).toEqual([`${n1}:9101`, `${n2}:9102`]);
          // Polled every 0.5 s: a second later every request is the canary's.
          expect(served(s.filter((x) => x.sentAt > addedAt + 1200))).toEqual([`${n2}:${CANARY}`]);
          const out = await gray('status', '--json');
          expect(JSON.parse(out.out)).toMatchObject({ ips: [`${lab.state.bridgeIp}/32`], values: [], percent: 0 });
          expect((await gray('remove-ip', `${lab.state.bridgeIp}/32`)).code).toBe(0);
          await inForce({});
          expect(await backendOf(lab.state.vip)).not.toBe(`${n2}:${CANARY}`);
          expect(await masterPids()).toEqual(pids);
        },
      );

      it('a value in the set sends requests with that header or cookie to the canary, and only those', async () => {
        expect((await gray('add-value', 'tester1')).code).toBe(0);
        await inForce({ values: ['tester1'] });
        expect(await backendOf(lab.state.vip, { 'X-Gray': 'tester1' })).toBe(`${n2}:${CANARY}`);
        expect(await backendOf(lab.state.vip, { Cookie: 'a=1; gray_user=tester1' })).toBe(`${n2}:${CANARY}`);
        expect(await backendOf(lab.state.vip, { 'X-Gray': 'tester2' })).not.toBe(`${n2}:${CANARY}`);
        expect(await backendOf(lab.state.vip, { Cookie: 'gray_user=tester11' })).not.toBe(`${n2}:${CANARY}`);
        expect((await gray('remove-value', 'tester1')).code).toBe(0);
      });

      it(
        'percent 20: 15-25 % of 1,000 requests from different clients (by cookie) go to the canary, ' +
          'each client always to the same side',
        async () => {
          expect((await gray('percent', '20')).code).toBe(0);
          await inForce({ percent: 20 });
          const users = Array.from({ length: 1000 }, (_, i) => `user${i}`);
          const sides = async () => {
            const out: boolean[] = [];
            for (let i = 0; i < users.length; i += 50) {
              const batch = await Promise.all(
                users.slice(i, i + 50).map((u) => backendOf(lab.state.vip, { Cookie: `gray_user=${u}` })),
              );
              out.push(...batch.map((b) => b === `${n2}:${CANARY}`));
            }
            return out;
          };
          const first = await sides();
          const share = first.filter(Boolean).length;
          console.log(`percent 20: ${share} of ${users.length} clients on the canary`);
          expect(share).toBeGreaterThanOrEqual(150);
          expect(share).toBeLessThanOrEqual(250);
          // Stable hashing: asked again, every client lands where it did.
          expect(await sides()).toEqual(first);
        },
      );

      it('failover with gray release and Consul discovery active: the new VIP holder routes the same way', async () => {
        expect((await gray('add-ip', lab.state.bridgeIp)).code).toBe(0);
        await inForce({ ips: [lab.state.bridgeIp], percent: 20 });
        const s = await load(lab.state.vip, 7000, async () => {
          await sleep(1000);
          await lab.ssh(0, 'systemctl stop nginx');
        });
        try {
          const after = s.filter((x) => x.sentAt > 5000);
          expect(after.length).toBeGreaterThan(0);
          expect(after.filter((x) => !x.ok)).toEqual([]);
          expect(served(after)).toEqual([`${n2}:${CANARY}`]);
          expect((await lab.ssh(1, `ip -4 addr show | grep -c ' ${lab.state.vip}/'`)).stdout.trim()).toBe('1');
          expect(await backendOf(lab.state.vip, { 'X-Gray': 'nobody' })).toBe(`${n2}:${CANARY}`);
        } finally {
          await lab.ssh(0, 'systemctl start nginx');
          await sleep(3000);
        }
        expect((await gray('remove-ip', lab.state.bridgeIp)).code).toBe(0);
        await inForce({ percent: 20 });
      });

      it(
        'Redis down: everything goes to stable with no failed request, the status page says why; Redis back: ' +
          'the rules apply again',
        async () => {
          expect((await gray('add-ip', `${lab.state.bridgeIp}`)).code).toBe(0);
          await inForce({ ips: [lab.state.bridgeIp], percent: 20 });
          expect(await backendOf(lab.state.vip)).toBe(`${n2}:${CANARY}`);
          let stoppedAt = 0;
          const s = await load(lab.state.vip, 3000, async (elapsed) => {
            await sleep(300);
            await lab.ssh(0, 'systemctl stop lab-redis');
            stoppedAt = elapsed();
          });
          expect(s.filter((x) => !x.ok)).toEqual([]);
          expect(served(s.filter((x) => x.sentAt > stoppedAt + 1200))).toEqual([`${n1}:9101`, `${n2}:9102`]);
          for (const i of [0, 1]) {
            const st = (await status(i)).gray;
            expect(st.error).toMatch(/Redis/);
            expect(st.rules).toBeNull();
          }
          const cliDown = await gray('status');
          expect(cliDown.code).toBe(1);
          expect(cliDown.err).toMatch(/Redis at .*:6380/);
          await lab.ssh(
            0,
            'systemctl start lab-redis; ' +
              `for i in $(seq 1 40); do redis-cli -p 6380 -a '${PASSWORD}' --no-auth-warning ping 2>/dev/null ` +
              '| grep -q PONG && break; sleep 0.25; done',
          );
          // This Redis keeps nothing on disk: the operator puts the rules back.
          expect((await gray('add-ip', `${lab.state.bridgeIp}`)).code).toBe(0);
          await inForce({ ips: [lab.state.bridgeIp] });
          expect(await backendOf(lab.state.vip)).toBe(`${n2}:${CANARY}`);
          expect((await status(0)).gray.error).toBeUndefined();
        },
      );

      // The review: raw rule lists went into the 1 MiB dict the peer lists live in, unchecked; near the
      // limit they evicted the peers (intermittent 502), and every request walked every CIDR.
      it(
        '50,000 rules: in force on both nodes, routing right for a listed and an unlisted client, ' +
          'Consul peers untouched, no failed request',
        async () => {
          const fill = await lab.ssh(
            0,
            `awk 'BEGIN { for (i = 0; i < 50000; i++) printf "SADD ha-setup:gray:ips 10.%d.%d.1\\n", ` +
              `int(i / 256) % 256, i % 256 }' | redis-cli -p 6380 -a '${PASSWORD}' --no-auth-warning -n 3 --pipe`,
          );
          expect(fill.code, fill.stderr).toBe(0);
          expect((await gray('add-ip', lab.state.bridgeIp)).code).toBe(0);
          const started = Date.now();
          for (;;) {
            const all = await Promise.all([0, 1].map(status));
            if (all.every((st) => st.gray.rules?.counts?.ips === 50001)) break;
            if (Date.now() - started > 20_000)
              throw new Error(`50,001 rules never in force: ${JSON.stringify((await status(0)).gray).slice(0, 500)}`);
            await sleep(200);
          }
          console.log(`50,001 gray rules in force on both nodes after ${Date.now() - started} ms`);
          const st = await status(0);
          expect(st.gray.error).toBeUndefined();
          expect(st.gray.rules.ips.length).toBeLessThanOrEqual(100);
          expect(st.upstreams.stable.peers.map((p: { address: string }) => p.address).sort()).toEqual([
            `${n1}:9101`,
            `${n2}:9102`,
          ]);
          const s = await load(lab.state.vip, 3000);
          expect(s.filter((x) => !x.ok)).toEqual([]);
          expect(served(s)).toEqual([`${n2}:${CANARY}`]);
          // A client that is not listed (a node, through the VIP) stays on stable.
          const other = await lab.ssh(1, `for k in 1 2 3 4; do curl -sS -m 3 http://${lab.state.vip}/ ; echo; done`);
          expect(other.stdout).not.toContain(String(CANARY));
          expect(other.stdout).toMatch(/9101|9102/);
          expect(
            (await lab.ssh(0, `redis-cli -p 6380 -a '${PASSWORD}' --no-auth-warning -n 3 del ha-setup:gray:ips`)).code,
          ).toBe(0);
          await inForce({});
        },
      );

      it('the access log says why a request went to the canary; the Redis password is in no local file', async () => {
        // The access log is buffered (flush=5s).
        await sleep(5500);
        await backendOf(lab.state.vip);
        const log = await lab.ssh(
          0,
          `grep -c '"upstream":"canary","upstream_addr":"${n2}:${CANARY}".*"gray":"ip ${lab.state.bridgeIp}' ` +
            `${home}/logs/access.log; grep -c '"gray":"-"' ${home}/logs/access.log`,
        );
        const [canary, stable] = log.stdout.trim().split('\n').map(Number);
        expect(canary).toBeGreaterThan(0);
        expect(stable).toBeGreaterThan(0);
        // Runbook, records, command logs, handover docs: grep exits 1 when no file holds it.
        const grep = spawnSync('grep', ['-rlF', '--', PASSWORD, join(lab.runbookPath, '..')], { encoding: 'utf8' });
        expect(grep.stdout).toBe('');
        expect(grep.status).toBe(1);
        // On the node the password is in the gateway's config.lua only, readable by root alone.
        const mode = await lab.ssh(0, `stat -c %a ${home}/conf/ha-gateway/ha_gateway/config.lua`);
        expect(mode.stdout.trim()).toBe('600');
        expect((await gray('clear')).code).toBe(0);
      });

      // The review: the Consul token and the Redis password crossed the LAN in clear on every poll. Real
      // TLS servers (Consul's https port, Redis's tls-port with no plain port) with certificates from a
      // CA made here; the nodes verify them by name, and a capture on the wire finds no password.
      it('Consul over https and Redis over TLS: peers and rules as before, the password not on the wire', async () => {
        const tls = await lab.ssh(
          0,
          [
            'set -e',
            'export DEBIAN_FRONTEND=noninteractive',
            'command -v openssl >/dev/null || { apt-get update -q >/dev/null; ' +
              'apt-get install -y -q --no-install-recommends openssl >/dev/null; }',
            'mkdir -p /etc/lab-tls && cd /etc/lab-tls',
            'openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 ' +
              "-subj '/CN=lab CA' 2>/dev/null",
            "openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj '/CN=consul.lab' 2>/dev/null",
            "printf 'subjectAltName=DNS:consul.lab,DNS:redis.lab\\n' > san.ext",
            'openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 ' +
              '-extfile san.ext 2>/dev/null',
            'chmod 644 server.key',
            `printf '{"ports": {"https": 8501}, "cert_file": "/etc/lab-tls/server.pem", "key_file": ` +
              `"/etc/lab-tls/server.key", "ca_file": "/etc/lab-tls/ca.pem", "verify_incoming": false}\\n' ` +
              '> consul-tls.json',
            `printf '[Service]\\nExecStart=/usr/bin/redis-server --port 0 --tls-port 6381 --tls-cert-file ` +
              `/etc/lab-tls/server.pem --tls-key-file /etc/lab-tls/server.key --tls-ca-cert-file /etc/lab-tls/ca.pem ` +
              `--tls-auth-clients no --requirepass ${PASSWORD} --save "" --appendonly no\\n' > ` +
              `/etc/systemd/system/lab-redis-tls.service`,
            'systemctl daemon-reload; systemctl restart lab-redis-tls',
            'for i in $(seq 1 40); do redis-cli --tls --cacert /etc/lab-tls/ca.pem --sni redis.lab -h 127.0.0.1 ' +
              `-p 6381 -a '${PASSWORD}' --no-auth-warning ping 2>/dev/null | grep -q PONG && break; sleep 0.25; done`,
            'cat /etc/lab-tls/ca.pem',
          ].join('\n'),
        );
        expect(tls.code, tls.stderr).toBe(0);
        writeFileSync(
          join(lab.runbookPath, '..', 'lab-ca.pem'),
          tls.stdout.slice(tls.stdout.indexOf('-----BEGIN CERTIFICATE-----')),
        );
        await startConsul(lab, { extraArgs: ' -config-file /etc/lab-tls/consul-tls.json', restart: true });
        const https = await lab.ssh(
          0,
          `for i in $(seq 1 40); do curl -sS --cacert /etc/lab-tls/ca.pem --resolve ` +
            `consul.lab:8501:${n1} https://consul.lab:8501/v1/status/leader && break; sleep 0.25; done`,
        );
        expect(https.stdout, https.stderr).toContain(':');

        const doc = parse(readFileSync(lab.runbookPath, 'utf8'));
        doc.site.upstreams[0].discovery.consul = {
          ...doc.site.upstreams[0].discovery.consul,
          address: `https://${n1}:8501`,
          tls: { caFile: 'lab-ca.pem', serverName: 'consul.lab' },
        };
        doc.site.gray.redis = {
          ...doc.site.gray.redis,
          address: `${n1}:6381`,
          tls: { caFile: 'lab-ca.pem', serverName: 'redis.lab' },
        };
        writeFileSync(lab.runbookPath, stringify(doc));
        const pids = await masterPids();
        const r = await cli(['apply', lab.runbookPath, '--renderer', 'silent', '--no-verify']);
        expect(r.code, r.out + r.err).toBe(0);
        for (const steps of Object.values(ranSteps(lab.runbookPath))) expect(steps).toEqual(['nginx-config']);
        expect(await masterPids()).toEqual(pids);

        // Consul's peers over https on both nodes, verified for consul.lab.
        for (let k = 0; k < 40; k++) {
          const all = await Promise.all([0, 1].map(status));
          if (
            all.every(
              (st) =>
                st.upstreams.stable.source === 'consul' &&
                !st.upstreams.stable.error &&
                st.upstreams.stable.peers.length === 2,
            )
          )
            break;
          if (k === 39)
            throw new Error(
              `Consul over https never answered: ${JSON.stringify(all.map((st) => st.upstreams.stable))}`,
            );
          await sleep(250);
        }
        // The rules over TLS, from this machine (ha-setup gray) and from the nodes.
        expect((await gray('clear')).code).toBe(0);
        expect((await gray('add-ip', lab.state.bridgeIp)).code).toBe(0);
        await inForce({ ips: [lab.state.bridgeIp] });
        expect(await backendOf(lab.state.vip)).toBe(`${n2}:${CANARY}`);
        expect((await status(1)).gray.error).toBeUndefined();

        // On the wire: node2's and this machine's connections to Redis while they (re)authenticate.
        const capture = lab.ssh(0, "timeout 6 tcpdump -i host0 -nn -A -s0 'tcp port 6381' 2>/dev/null; true");
        await sleep(1000);
        await lab.ssh(0, 'systemctl restart lab-redis-tls'); // the nodes' pooled connections AUTH again
        // Until it answers again: the gray command below would otherwise race the restart.
        const up = await lab.ssh(
          0,
          'for i in $(seq 1 40); do redis-cli --tls --cacert /etc/lab-tls/ca.pem --sni redis.lab -h 127.0.0.1 ' +
            `-p 6381 -a '${PASSWORD}' --no-auth-warning ping 2>/dev/null | grep -q PONG && exit 0; ` +
            'sleep 0.25; done; exit 1',
        );
        expect(up.code, 'Redis over TLS answers after its restart').toBe(0);
        // This Redis keeps nothing on disk: the rules go back in, over TLS, while the capture runs.
        expect((await gray('add-ip', lab.state.bridgeIp)).code).toBe(0);
        const wire = (await capture).stdout;
        expect(wire.length).toBeGreaterThan(1000);
        expect(wire).not.toContain(PASSWORD);
        await inForce({ ips: [lab.state.bridgeIp] });

        // A certificate for another name is refused: the nodes keep stable for everyone and say why.
        doc.site.gray.redis.tls.serverName = 'other.lab';
        writeFileSync(lab.runbookPath, stringify(doc));
        expect((await cli(['apply', lab.runbookPath, '--renderer', 'silent', '--no-verify'])).code).toBe(0);
        for (let k = 0; k < 40 && !(await status(0)).gray.error; k++) await sleep(250);
        expect((await status(0)).gray.error).toMatch(/TLS with Redis .* \(other\.lab\) failed/);
        expect(await backendOf(lab.state.vip)).not.toBe(`${n2}:${CANARY}`);
        expect((await gray('status')).err).toMatch(/TLS: ERR_TLS_CERT_ALTNAME_INVALID/);
      });
    },
  );
}
