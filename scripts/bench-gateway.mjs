#!/usr/bin/env node
// The gateway's cost and speed on the lab (printed, not asserted). Needs root on Linux; builds dist first.
//   npm run bench:gateway [-- --seconds 10]
// Requests per second through node1's nginx (ab from node2, 32 connections, keepalive) for the same
// two backends behind: a static upstream (the baseline, measured in the same run), peers from Consul
// (balancer_by_lua), and the gray release (access_by_lua) with no rule and with a 50% rule. Then how
// long a change takes to be in force: a Consul registration, a gray rule.
import { readFileSync, writeFileSync } from 'node:fs';
import { parse, stringify } from 'yaml';
import { labSsh } from '../dist/lab/lab.js';
import { cli, labRunbookFile, paths } from './lib.mjs';

const seconds = Number(process.argv[process.argv.indexOf('--seconds') + 1]) || 10;
const { file, state } = await labRunbookFile();
const [n1, n2] = state.nodes.map((n) => n.ip);
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

console.log('setting up: the lab cluster, backends (an nginx server on :9200/:9201 of both nodes), Consul, Redis, ab');
await apply();
// The backends answer from nginx itself so they are not what is measured; conf.d files that are
// not ha-setup's are left alone by apply.
const backend =
  'server { listen 9200; listen 9201; access_log off; location / { return 200 "ok $server_addr:$server_port\\n"; } }';
for (const i of [0, 1])
  await ssh(i, `echo '${backend}' > /usr/local/nginx/conf/conf.d/bench-backend.conf && systemctl reload nginx`);
await ssh(
  1,
  'command -v ab >/dev/null || { apt-get update -q >/dev/null; DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends apache2-utils >/dev/null; }',
);
await ssh(
  0,
  [
    'set -e',
    'export DEBIAN_FRONTEND=noninteractive',
    'command -v redis-server >/dev/null || { apt-get update -q >/dev/null; apt-get install -y -q --no-install-recommends redis-server >/dev/null; }',
    `printf '[Service]\\nExecStart=/usr/bin/redis-server --bind 0.0.0.0 --port 6380 --protected-mode no --save "" --appendonly no\\n' > /etc/systemd/system/bench-redis.service`,
    'if [ ! -x /opt/consul/usr/bin/consul ]; then',
    '  mkdir -p /tmp/bullseye/lists/partial /opt/consul; cd /tmp/bullseye',
    '  echo "deb http://deb.debian.org/debian bullseye main" > sources.list',
    '  O="-o Dir::Etc::SourceList=/tmp/bullseye/sources.list -o Dir::Etc::SourceParts=/dev/null -o Dir::State::Lists=/tmp/bullseye/lists"',
    '  apt-get $O update -q >/dev/null; apt-get $O download consul >/dev/null 2>&1; dpkg-deb -x consul_*.deb /opt/consul',
    'fi',
    `printf '[Service]\\nExecStart=/opt/consul/usr/bin/consul agent -server -bootstrap-expect 1 -data-dir /var/lib/bench-consul -bind ${n1} -client 0.0.0.0 -log-level warn\\n' > /etc/systemd/system/bench-consul.service`,
    'systemctl daemon-reload; systemctl restart bench-redis bench-consul',
    'for i in $(seq 1 60); do curl -sf http://127.0.0.1:8500/v1/status/leader | grep -q : && break; sleep 0.5; done',
  ].join('\n'),
);
const register = (ip, port) =>
  ssh(
    0,
    `curl -sS -f -X PUT --data '${JSON.stringify({ ID: `bench-${ip}-${port}`, Name: 'bench', Address: ip, Port: port })}' http://${n1}:8500/v1/agent/service/register`,
  );
await register(n1, 9200);
await register(n2, 9200);

async function rps(label) {
  await sleep(2000);
  const out = await ssh(1, `ab -q -k -c 32 -t ${seconds} -n 10000000 http://${n1}/ 2>&1`);
  const value = Number(/Requests per second:\s+([\d.]+)/.exec(out)?.[1]);
  const failed = Number(/Failed requests:\s+(\d+)/.exec(out)?.[1]);
  const non2xx = Number(/Non-2xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  return { label, value, failed: failed + non2xx };
}

const stable = { name: 'bench', servers: [`${n1}:9200`, `${n2}:9200`] };
const results = [];
edit((d) => {
  d.site.upstreams = [stable];
  delete d.site.gray;
});
await apply();
results.push(await rps('static upstream (baseline)'));
edit((d) => {
  d.site.upstreams = [
    { ...stable, discovery: { consul: { address: `http://${n1}:8500`, service: 'bench', interval: 1 } } },
  ];
});
await apply();
results.push(await rps('peers from Consul (balancer_by_lua)'));
edit((d) => {
  d.site.upstreams = [stable, { name: 'canary', servers: [`${n1}:9201`, `${n2}:9201`] }];
  d.site.gray = { redis: { address: `${n1}:6380` }, stable: 'bench', canary: 'canary', refresh: 1 };
});
await apply();
results.push(await rps('gray release, no rule (access_by_lua)'));
if ((await cli(['gray', file, 'percent', '50'])) !== 0) throw new Error('gray percent failed');
results.push(await rps('gray release, 50% to canary'));

const base = results[0].value;
console.log(
  `\nrequests per second through node1 (ab -k -c 32 -t ${seconds} from node2; both nodes share this machine's cores)`,
);
for (const r of results) {
  console.log(
    `  ${r.label.padEnd(40)} ${r.value.toFixed(0).padStart(8)} req/s   ${((r.value / base) * 100).toFixed(0).padStart(4)}% of baseline   ${r.failed} failed`,
  );
}

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
for (const i of [0, 1]) await ssh(i, 'rm -f /usr/local/nginx/conf/conf.d/bench-backend.conf && systemctl reload nginx');
await ssh(0, 'systemctl stop bench-redis bench-consul');
