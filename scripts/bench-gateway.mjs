#!/usr/bin/env node
// The gateway's cost and speed on the lab (printed, not asserted). Needs root on Linux; builds dist first.
//   npm run bench:gateway [-- --rounds 24 --seconds 2 --flavor nginx|openresty]   (--rounds 0: no req/s)
// Requests per second for the same two backends behind ha-setup's site on :80 with: peers from Consul
// (balancer_by_lua), the gray release with no rule and with a 50% rule (set_by_lua). The baseline is
// a static upstream of the same backends served by the same nginx workers on :8081 (a conf.d file of
// this bench, inheriting ha-setup's proxy settings), so the two are measured alternately, segment by
// segment, with no reload between them: the machine's own drift (seen here: +-15 % within a minute)
// falls on both sides of every paired ratio. Two load shapes, both keep-alive:
//   ab  -c 32 from node2 straight to node1 (the shape this bench always had);
//   wrk -c 64 from the lab host through the VIP (many connections from outside the pair).
// With perf on the lab host, the share of the machine's CPU spent in Lua on each path, and what that
// is per request. Then how long a change takes to be in force: a Consul registration, a gray rule.
import { cpus } from 'node:os';
import { readFileSync, writeFileSync } from 'node:fs';
import { parse, stringify } from 'yaml';
import { labSsh } from '../dist/lab/lab.js';
import { ensureWrk, runWrk } from '../dist/lab/load.js';
import { runLocal } from '../dist/local.js';
import { cli, flavorArg, labRunbookFile, median, medianInterval, paths } from './lib.mjs';

const arg = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const rounds = arg('--rounds', 24);
const seconds = arg('--seconds', 2);
const flavor = flavorArg();
const { file, state } = await labRunbookFile({ openresty: flavor === 'openresty' });
// Where nginx reads conf.d: OpenResty keeps nginx under <prefix>/nginx.
const confD = `${parse(readFileSync(file, 'utf8')).build.prefix}${flavor === 'openresty' ? '/nginx' : ''}/conf/conf.d`;
const [n1, n2] = state.nodes.map((n) => n.ip);
const vip = state.vip;
const ssh = async (i, command) => {
  const r = await labSsh(paths, state.nodes[i].ip, command, { allowFailure: true, timeoutMs: 600_000 });
  if (r.code !== 0) throw new Error(`node${i + 1}: ${command.split('\n')[0]} failed:\n${r.stderr}`);
  return r.stdout;
};
const edit = (fn) => {
  const doc = parse(readFileSync(file, 'utf8'));
  fn(doc);
  writeFileSync(file, stringify(doc));
};
const apply = async () => {
  if ((await cli(['apply', file, '--renderer', 'silent', '--no-verify'])) !== 0) throw new Error('apply failed');
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const status = async () => JSON.parse(await ssh(0, 'curl -sS -m 3 http://127.0.0.1/ha-gateway/status'));

console.log(
  `flavor: ${flavor}\n` +
    'setting up: the lab cluster, backends (:9200/:9201 of both nodes), the baseline on :8081, Consul, Redis, ab, wrk',
);
await apply();
await ensureWrk();
// The backends answer from nginx itself so they are not what is measured; conf.d files that are
// not ha-setup's are left alone by apply. Every listen has reuseport as the site's has: without it the
// baseline's connections spread over the workers unevenly (one shared socket) and the baseline, not
// the site, measured slower (the site at 112 % of it under ab).
const backend =
  'server { listen 9200 reuseport; listen 9201 reuseport; access_log off; ' +
  'location / { return 200 "ok $server_addr:$server_port\\n"; } }';
const baseline =
  `upstream bench_static { server ${n1}:9200; server ${n2}:9200; keepalive 32; } server { listen ` +
  `8081 reuseport; location / { proxy_pass http://bench_static; } }`;
for (const i of [0, 1])
  await ssh(
    i,
    `echo '${backend}' > ${confD}/bench-backend.conf && ` +
      `echo '${baseline}' > ${confD}/bench-static.conf && systemctl reload nginx`,
  );
await ssh(
  1,
  'command -v ab >/dev/null || { apt-get update -q >/dev/null; DEBIAN_FRONTEND=noninteractive apt-get install -y ' +
    '-q --no-install-recommends apache2-utils >/dev/null; }',
);
await ssh(
  0,
  [
    'set -e',
    'export DEBIAN_FRONTEND=noninteractive',
    'command -v redis-server >/dev/null || { apt-get update -q >/dev/null; ' +
      'apt-get install -y -q --no-install-recommends redis-server >/dev/null; }',
    `printf '[Service]\\nExecStart=/usr/bin/redis-server --bind 0.0.0.0 --port 6380 --protected-mode no --save "" ` +
      `--appendonly no\\n' > /etc/systemd/system/bench-redis.service`,
    'if [ ! -x /opt/consul/usr/bin/consul ]; then',
    '  mkdir -p /tmp/bullseye/lists/partial /opt/consul; cd /tmp/bullseye',
    '  echo "deb http://deb.debian.org/debian bullseye main" > sources.list',
    '  O="-o Dir::Etc::SourceList=/tmp/bullseye/sources.list -o Dir::Etc::SourceParts=/dev/null -o ' +
      'Dir::State::Lists=/tmp/bullseye/lists"',
    '  apt-get $O update -q >/dev/null; apt-get $O download consul >/dev/null 2>&1; ' +
      'dpkg-deb -x consul_*.deb /opt/consul',
    'fi',
    `printf '[Service]\\nExecStart=/opt/consul/usr/bin/consul agent -server -bootstrap-expect 1 -data-dir ` +
      `/var/lib/bench-consul -bind ${n1} -client 0.0.0.0 -log-level warn\\n' ` +
      '> /etc/systemd/system/bench-consul.service',
    'systemctl daemon-reload; systemctl restart bench-redis bench-consul',
    'for i in $(seq 1 60); do curl -sf http://127.0.0.1:8500/v1/status/leader | grep -q : && break; sleep 0.5; done',
  ].join('\n'),
);
const register = (ip, port) => {
  const service = JSON.stringify({ ID: `bench-${ip}-${port}`, Name: 'bench', Address: ip, Port: port });
  return ssh(0, `curl -sS -f -X PUT --data '${service}' http://${n1}:8500/v1/agent/service/register`);
};
const deregister = (ip, port) =>
  ssh(0, `curl -sS -f -X PUT http://${n1}:8500/v1/agent/service/deregister/bench-${ip}-${port} || true`);
await deregister(n2, 9201); // left by an earlier run's last part
await register(n1, 9200);
await register(n2, 9200);

/** One segment of a shape against a port of node1: requests per second and failed requests. */
const shapes = {
  async ab(port) {
    const out = await ssh(1, `ab -q -k -c 32 -t ${seconds} -n 10000000 http://${n1}:${port}/ 2>&1`);
    const failed = Number(/Failed requests:\s+(\d+)/.exec(out)?.[1] ?? 0);
    const non2xx = Number(/Non-2xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
    return { rps: Number(/Requests per second:\s+([\d.]+)/.exec(out)?.[1]), failed: failed + non2xx };
  },
  async wrk(port) {
    const w = await runWrk(`http://${vip}:${port}/`, 64, seconds);
    return { rps: w.requests / seconds, failed: w.socketErrors + w.non2xx };
  },
};

/** Alternates the baseline (:8081) and `port` (the site's :80) per shape; paired ratios per round. */
async function measure(label, port = 80) {
  if (rounds === 0) return; // --rounds 0: the profile and the timings only
  await sleep(2000);
  for (const [shape, run] of Object.entries(shapes)) {
    const pairs = [];
    let failed = 0;
    for (let r = 0; r < rounds; r++) {
      // The order flips every round: neither side is always the one measured first.
      const first = r % 2 ? port : 8081;
      const a = await run(first);
      const b = await run(first === port ? 8081 : port);
      const [base, site] = first === port ? [b, a] : [a, b];
      failed += base.failed + site.failed;
      pairs.push({ base: base.rps, site: site.rps, ratio: site.rps / base.rps });
    }
    const ratios = pairs.map((p) => p.ratio);
    const rps = (xs) => median(xs).toFixed(0).padStart(7);
    const pct = (x) => (x * 100).toFixed(1);
    const interval = medianInterval(ratios);
    const within = interval ? `${pct(interval[0])}-${pct(interval[1])}` : '-';
    console.log(
      `  ${label.padEnd(34)} ${shape.padEnd(4)} ${rps(pairs.map((p) => p.base))} ${rps(pairs.map((p) => p.site))}   ` +
        `${pct(median(ratios)).padStart(5)} %  ${within.padEnd(11)}` +
        `  ${pct(Math.min(...ratios))}-${pct(Math.max(...ratios))}   ${failed}`,
    );
  }
}

const perf = (await runLocal('perf', ['--version'], { allowFailure: true })).code === 0;
/**
 * With perf on the lab host: the share of every CPU sample on the machine that is Lua (LuaJIT, its
 * traces, lua-nginx-module's C functions) while wrk loads `port` through the VIP, and that share of
 * the machine's CPU time per request. A ratio within one window: the machine's drift cancels out.
 */
async function luaCost(port) {
  const window = 8;
  // New TCP connections node1 opened (to the backends: the clients' come in) per 1000 requests: the
  // upstream keepalive pool at work or not.
  const opens = async () => Number(await ssh(0, "awk '/^Tcp:/ { n++ } /^Tcp:/ && n == 2 { print $6 }' /proc/net/snmp"));
  const opens0 = await opens();
  const load = runWrk(`http://${vip}:${port}/`, 64, window + 2);
  await sleep(1000);
  const data = `/tmp/ha-setup-bench-gateway-${port}.perf`;
  await runLocal('perf', ['record', '-a', '-F', '1999', '-o', data, '--', 'sleep', String(window)]);
  const w = await load;
  const opened = (await opens()) - opens0;
  const { stdout: report } = await runLocal('perf', [
    'report',
    '-i',
    data,
    '--no-children',
    '--sort',
    'comm,dso,sym',
    '--stdio',
  ]);
  const rps = w.requests / (window + 2);
  const us = (share) => ((share / 100) * cpus().length * 1e6) / rps;
  let lua = 0;
  // Every nginx symbol's CPU time per request, user [.] and kernel [k], front and backends (the same nginx
  // processes): the profile next to the baseline's.
  const symbols = new Map();
  const parts = { lua: 0, nginx: 0, libraries: 0, kernel: 0 };
  for (const line of report.split('\n')) {
    const m = /^\s+([\d.]+)%\s+nginx\s+(.+?)\s+\[([.k])\]\s+(\S+)/.exec(line);
    if (!m) continue;
    const isLua = m[3] === '.' && (/luajit|JIT/.test(m[2]) || /^(ngx_http_lua_|lj_|lua_)/.test(m[4]));
    if (isLua) lua += Number(m[1]);
    const part = m[3] === 'k' ? 'kernel' : isLua ? 'lua' : m[2] === 'nginx' ? 'nginx' : 'libraries';
    parts[part] += us(Number(m[1]));
    const sym = /JIT|perf-\d+\.map/.test(m[2]) ? `${m[2]} (LuaJIT traces)` : m[4];
    symbols.set(sym, (symbols.get(sym) ?? 0) + us(Number(m[1])));
  }
  return {
    share: lua,
    usPerRequest: us(lua),
    opensPer1k: (opened * 1000) / w.requests,
    nginxUs: [...symbols.values()].reduce((a, b) => a + b, 0),
    parts,
    symbols,
  };
}
const costs = [];

console.log(
  `\nrequests per second, baseline (static upstream on :8081) next to the site (:80), ` +
    `alternating ${rounds} x ${seconds} s per shape`,
);
console.log(
  `  ${'site'.padEnd(34)} load ${'base'.padStart(7)} ${'site'.padStart(7)}   ` +
    'paired ratio: median, 95 % interval of the median, min-max   failed',
);
const stable = { name: 'bench', servers: [`${n1}:9200`, `${n2}:9200`] };
// The control: the site with the same static upstream as the baseline, no Lua on its path. What it
// shows is the difference of the two server blocks and the order of measuring, not of the gateway.
edit((d) => {
  d.site.upstreams = [stable];
  delete d.site.gray;
});
await apply();
await measure('static upstream (control)');
edit((d) => {
  d.site.upstreams = [
    { ...stable, discovery: { consul: { address: `http://${n1}:8500`, service: 'bench', interval: 1 } } },
  ];
  delete d.site.gray;
});
await apply();
await measure('peers from Consul (balancer_by_lua)');
// What balancer_by_lua costs by itself: an upstream on :8082 whose Lua only alternates the same two
// peers (no shared dict, no retries). The Consul path's difference to it is ha-setup's Lua.
const mechanism =
  `upstream bench_lua { server 0.0.0.1; balancer_by_lua_block { local t = package.loaded.bench_rr or { n = 0 }; ` +
  `package.loaded.bench_rr = t; t.n = t.n + 1; require("ngx.balancer").set_current_peer(t.n % 2 == 0 and "${n1}" ` +
  `or "${n2}", 9200) } keepalive 32; } server { listen 8082 reuseport; location / { proxy_pass http://bench_lua; } }`;
for (const i of [0, 1]) await ssh(i, `echo '${mechanism}' > ${confD}/bench-mechanism.conf && systemctl reload nginx`);
await measure('balancer_by_lua alone, 2 fixed peers', 8082);
if (perf)
  costs.push({ label: 'peers from Consul', ...(await luaCost(80)) }, { label: 'baseline', ...(await luaCost(8081)) });
edit((d) => {
  d.site.upstreams = [stable, { name: 'canary', servers: [`${n1}:9201`, `${n2}:9201`] }];
  d.site.gray = { redis: { address: `${n1}:6380` }, stable: 'bench', canary: 'canary', refresh: 1 };
});
await apply();
await measure('gray release, no rule (set_by_lua)');
if (perf) costs.push({ label: 'gray release, no rule', ...(await luaCost(80)) });
if ((await cli(['gray', file, 'percent', '50'])) !== 0) throw new Error('gray percent failed');
await measure('gray release, 50% to canary');
if (perf) costs.push({ label: 'gray release, 50%', ...(await luaCost(80)) });
await cli(['gray', file, 'clear']);

if (perf) {
  console.log(`\nLua's share of the machine's CPU under wrk -c 64 (perf, ${cpus().length} cores)`);
  for (const c of costs)
    console.log(
      `  ${c.label.padEnd(24)} ${c.share.toFixed(2).padStart(5)} %   ` +
        `${c.usPerRequest.toFixed(2).padStart(5)} us per request   ` +
        `${c.opensPer1k.toFixed(1).padStart(6)} upstream connections opened per 1000 requests`,
    );
  // Where a request's extra time in nginx goes: the symbols that cost most more than on the baseline
  // (one window each, so the machine's drift is in these too; a symbol the baseline never runs is not).
  const base = costs.find((c) => c.label === 'baseline');
  for (const c of costs.filter((x) => x !== base)) {
    const split = (x) =>
      Object.entries(x.parts)
        .map(([k, v]) => `${k} ${v.toFixed(1)}`)
        .join(', ');
    console.log(
      `\n  ${c.label}: nginx processes ${c.nginxUs.toFixed(1)} us per request (${split(c)}), ` +
        `the baseline ${base.nginxUs.toFixed(1)} (${split(base)}); most more than the baseline:`,
    );
    const more = [...c.symbols].map(([sym, v]) => [sym, v - (base.symbols.get(sym) ?? 0)]);
    for (const [sym, v] of more.sort((a, b) => b[1] - a[1]).slice(0, 10))
      console.log(`    ${v.toFixed(2).padStart(6)} us  ${sym}`);
  }
} else console.log('\n(perf is not on this machine: no CPU breakdown)');

console.log('\nhow long a change takes to be in force on node1 (no reload)');
edit((d) => {
  d.site.upstreams = [
    { ...stable, discovery: { consul: { address: `http://${n1}:8500`, service: 'bench', interval: 1 } } },
    { name: 'canary', servers: [`${n1}:9201`] },
  ];
});
await apply();
await sleep(2000);
let t0 = Date.now();
await register(n2, 9201);
while (!(await status()).upstreams.bench.peers.some((p) => p.address === `${n2}:9201`)) await sleep(50);
console.log(`  Consul registration -> in node1's peer list (poll interval 1 s)   ${Date.now() - t0} ms`);
t0 = Date.now();
if ((await cli(['gray', file, 'add-ip', '10.99.0.1'])) !== 0) throw new Error('gray add-ip failed');
while (![].concat((await status()).gray.rules?.ips ?? []).includes('10.99.0.1')) await sleep(50);
console.log(`  ha-setup gray add-ip -> rule in force on node1 (refresh 1 s)        ${Date.now() - t0} ms`);

await cli(['gray', file, 'clear']);
for (const i of [0, 1])
  await ssh(
    i,
    `cd ${confD} && rm -f bench-backend.conf bench-static.conf bench-mechanism.conf && systemctl reload nginx`,
  );
await ssh(0, 'systemctl stop bench-redis bench-consul');
