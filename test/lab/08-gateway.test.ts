import http from 'node:http';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { cli, ranSteps } from './helpers/cli.js';
import { withLab, type Lab } from './helpers/with-lab.js';

const fixtures = join(import.meta.dirname, '..', 'fixtures', 'lab');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Sample { sentAt: number; ok: boolean; backend?: string; error?: string }

/** A client through the VIP: a request every intervalMs for durationMs (each its own connection). */
async function load(host: string, durationMs: number, during?: (elapsed: () => number) => Promise<void>, intervalMs = 20): Promise<Sample[]> {
  const t0 = Date.now();
  const samples: Sample[] = [];
  const pending: Promise<void>[] = [];
  const one = () => new Promise<void>((resolve) => {
    const sentAt = Date.now() - t0;
    const req = http.get({ host, port: 80, path: '/gw', agent: false, timeout: 3000 }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => {
        samples.push(res.statusCode === 200 ? { sentAt, ok: true, backend: body.split(' ')[1] } : { sentAt, ok: false, error: `HTTP ${res.statusCode}` });
        resolve();
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => { samples.push({ sentAt, ok: false, error: e.message }); resolve(); });
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

// The Consul + OpenResty article's gateway on the lab: a real Consul (Debian bullseye's 1.8.7 on
// node1, its state on disk), backends as systemd units on both nodes, a client through the VIP.
describe.skipIf(!inject('labAvailable'))('gateway: upstream peers from Consul, without a reload', () => {
  let lab: Lab;
  let n1: string;
  let n2: string;
  const masterPids = async () => Promise.all([0, 1].map(async (i) => (await lab.ssh(i, 'cat /usr/local/nginx/logs/nginx.pid')).stdout.trim()));
  const status = async (node: number) => JSON.parse((await lab.ssh(node, 'curl -sS -m 3 http://127.0.0.1/ha-gateway/status')).stdout);
  const register = async (port: number, ip: string, checkPort = port) => {
    const body = JSON.stringify({ ID: `app-${port}`, Name: 'app', Address: ip, Port: port, Check: { HTTP: `http://${ip}:${checkPort}/health`, Interval: '1s', Timeout: '1s' } });
    const r = await lab.ssh(0, `curl -sS -f -X PUT --data '${body}' http://${n1}:8500/v1/agent/service/register`);
    expect(r.code, r.stderr).toBe(0);
  };
  const passing = async () => JSON.parse((await lab.ssh(0, `curl -sS http://${n1}:8500/v1/health/service/app?passing=1`)).stdout).map((e: { Service: { Port: number } }) => e.Service.Port).sort();

  beforeAll(async () => {
    lab = await withLab();
    [n1, n2] = lab.state.nodes.map((n) => n.ip);
    let r = await cli(['apply', lab.runbookPath, '--renderer', 'silent', '--no-verify']);
    expect(r.code, r.err).toBe(0);

    // Backends: lab-gw@<port>.service on each node answering "backend <ip>:<port> ...".
    const backend = readFileSync(join(fixtures, 'backend.py'), 'utf8');
    await Promise.all([0, 1].map(async (i) => {
      const ip = lab.state.nodes[i].ip;
      const x = await lab.ssh(i, [
        'set -e', 'export DEBIAN_FRONTEND=noninteractive',
        'command -v python3 >/dev/null || { apt-get update -q >/dev/null; apt-get install -y -q --no-install-recommends python3 >/dev/null; }',
        `cat > /usr/local/bin/lab-backend.py <<'PY'\n${backend}PY`,
        `printf '[Service]\\nExecStart=/usr/bin/python3 /usr/local/bin/lab-backend.py ${ip} %%i\\n' > /etc/systemd/system/lab-gw@.service`,
        'systemctl daemon-reload',
      ].join('\n'));
      expect(x.code, x.stderr).toBe(0);
    }));
    for (const [i, port] of [[0, 9101], [1, 9102], [0, 9103], [1, 9104]] as const) {
      expect((await lab.ssh(i, `systemctl restart lab-gw@${port}`)).code).toBe(0);
    }

    // Consul 1.8.7 from Debian bullseye, unpacked (not installed), one server with its data on disk.
    const consul = await lab.ssh(0, [
      'set -e',
      'if [ ! -x /opt/consul/usr/bin/consul ]; then',
      '  mkdir -p /tmp/bullseye/lists/partial /opt/consul; cd /tmp/bullseye',
      '  echo "deb http://deb.debian.org/debian bullseye main" > sources.list',
      '  O="-o Dir::Etc::SourceList=/tmp/bullseye/sources.list -o Dir::Etc::SourceParts=/dev/null -o Dir::State::Lists=/tmp/bullseye/lists"',
      '  apt-get $O update -q >/dev/null; apt-get $O download consul >/dev/null 2>&1',
      '  dpkg-deb -x consul_*.deb /opt/consul',
      'fi',
      `printf '[Service]\\nExecStart=/opt/consul/usr/bin/consul agent -server -bootstrap-expect 1 -data-dir /var/lib/lab-consul -bind ${n1} -client 0.0.0.0 -log-level warn\\n' > /etc/systemd/system/lab-consul.service`,
      'systemctl daemon-reload; systemctl restart lab-consul',
      'for i in $(seq 1 60); do curl -sf http://127.0.0.1:8500/v1/status/leader | grep -q : && break; sleep 0.5; done',
      '/opt/consul/usr/bin/consul version | head -1',
    ].join('\n'));
    expect(consul.code, consul.stderr).toBe(0);
    expect(consul.stdout).toContain('Consul v1.8.7');
    await register(9101, n1);
    await register(9102, n2);
    await register(9103, n1);
    for (let k = 0; k < 20 && (await passing()).length < 3; k++) await sleep(500);
    expect(await passing()).toEqual([9101, 9102, 9103]);

    const doc = parse(readFileSync(lab.runbookPath, 'utf8'));
    doc.site.upstreams = [{
      name: 'gw',
      servers: [`${n1}:9101`],
      discovery: {
        consul: { address: `http://${n1}:8500`, service: 'app', interval: 0.5 },
        check: { path: '/health', interval: 0.5, fall: 2, rise: 2 },
      },
    }];
    writeFileSync(lab.runbookPath, stringify(doc));
    r = await cli(['apply', lab.runbookPath, '--renderer', 'silent', '--no-verify']);
    expect(r.code, r.out + r.err).toBe(0);
    // lua-cjson is unpacked (gateway-libs, never a rebuild); the rest is configuration, reloaded.
    expect(ranSteps(lab.runbookPath)).toEqual({ node1: ['gateway-libs', 'nginx-config'], node2: ['gateway-libs', 'nginx-config'] });
  });

  it('traffic through the VIP reaches every instance Consul lists; the status page shows them', async () => {
    await sleep(1500);
    const s = await load(lab.state.vip, 2000);
    expect(s.filter((x) => !x.ok)).toEqual([]);
    expect(served(s)).toEqual([`${n1}:9101`, `${n1}:9103`, `${n2}:9102`]);
    const st = await status(0);
    expect(st.upstreams.gw.source).toBe('consul');
    expect(st.upstreams.gw.peers.map((p: { address: string }) => p.address)).toEqual([`${n1}:9101`, `${n1}:9103`, `${n2}:9102`]);
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
      expect((await status(i)).upstreams.gw.peers.map((p: { address: string }) => p.address)).toEqual([`${n1}:9101`, `${n1}:9103`]);
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
    await lab.ssh(0, 'systemctl start lab-consul; for i in $(seq 1 60); do curl -sf http://127.0.0.1:8500/v1/status/leader | grep -q : && break; sleep 0.5; done');
    await lab.ssh(1, 'systemctl start lab-gw@9102');
    for (let k = 0; k < 40 && (await passing()).length < 4; k++) await sleep(500);
    expect(await passing()).toEqual([9101, 9102, 9103, 9104]);
    await sleep(1500);
    const st = await status(0);
    expect(st.upstreams.gw.error).toBeUndefined();
    expect(st.upstreams.gw.peers.map((p: { address: string }) => p.address)).toEqual([`${n1}:9101`, `${n1}:9103`, `${n2}:9102`, `${n2}:9104`]);
  });

  it('a backend killed without Consul noticing: the active health check takes it out, requests keep succeeding', async () => {
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

  it('a second apply changes nothing; the JSON access log names the upstream and the peer of each request', async () => {
    const r = await cli(['apply', lab.runbookPath, '--renderer', 'silent', '--no-verify']);
    expect(r.code, r.err).toBe(0);
    expect(ranSteps(lab.runbookPath)).toEqual({ node1: [], node2: [] });
    // The access log is buffered (flush=5s); the apply above took longer than that.
    const log = await lab.ssh(0, `grep -c '"upstream":"gw","upstream_addr":"${n1}:9101"' /usr/local/nginx/logs/access.log`);
    expect(Number(log.stdout.trim())).toBeGreaterThan(0);
  });
});
