#!/usr/bin/env node
// Host loss against false failovers, and failover under load, on the lab (printed, not asserted).
// Needs root on Linux; builds dist first. Issue 21.
//   npm run bench:faults [-- --runs 5 --stress-minutes 2 --settings 0.1,0.05,0.03,0.03@rt]
// Per setting, a VRRPv3 advert interval (0.1 s is today's default), `@rt` for keepalived.rtPriority 50
// (the VRRP process scheduled realtime):
//   1. node-down N times (the holder's link taken down from the lab host): client-observed downtime
//      (a request every 50 ms) and failed requests;
//   2. the master under stress for M minutes: stress-ng on its CPUs, memory and disk, a wrk flood of
//      300 connections through the VIP and a ping flood at the node, all from outside keepalived;
//      every VRRP transition the backup logs meanwhile is a false failover.
// Then, at the default interval, 300 keep-alive connections (wrk from the lab host) through each
// scenario: socket errors, non-2xx answers and p99 latency.
// The lab's two nodes share this machine's cores, so stress on the master also starves the backup:
// harsher than two real hosts.
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { cli, labRunbookFile, median, paths } from './lib.mjs';
import { labSsh } from '../dist/lab/lab.js';
import { ensureWrk, runWrk } from '../dist/lab/load.js';

const arg = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const runs = Number(arg('--runs', 5));
const stressMinutes = Number(arg('--stress-minutes', 2));
const settings = String(arg('--settings', '0.1,0.03,0.05@rt,0.03@rt'))
  .split(',')
  .map((s) => ({ label: s, advert: Number(s.split('@')[0]), rt: s.endsWith('@rt') ? 50 : 0 }));

const { file, dir, state } = await labRunbookFile();
const ssh = (i, cmd) =>
  labSsh(paths, state.nodes[i].ip, cmd, { allowFailure: true, timeoutMs: (stressMinutes + 5) * 60_000 });
const last = () => JSON.parse(readFileSync(join(dir, 'runbooks', 'records', 'lab', 'last-verify.json'), 'utf8'));

const wrk = (connections, seconds) => runWrk(`http://${state.vip}/`, connections, seconds);

async function use(setting) {
  const doc = parse(readFileSync(file, 'utf8'));
  doc.vrrp.advertInt = setting.advert;
  doc.keepalived.rtPriority = setting.rt;
  writeFileSync(file, stringify(doc));
  if ((await cli(['apply', file, '--renderer', 'silent', '--no-verify'])) !== 0)
    throw new Error(`apply with ${setting.label} failed`);
  if ((await cli(['failover', file, '--to', 'node1'])) !== 0) throw new Error('the VIP could not be put on node1');
}

async function nodeDown() {
  const downs = [];
  const fails = [];
  for (let i = 0; i < runs; i++) {
    await cli(['verify', file, '--scenario', 'node-down', '--yes']);
    const r = last();
    if (!r.failover.moved) throw new Error(`node-down run ${i + 1}: the VIP did not move`);
    downs.push(r.failover.downtimeMs);
    fails.push(r.failover.failedRequests);
  }
  return { median: median(downs), max: Math.max(...downs), failed: fails.join('/') };
}

async function falseFailovers() {
  const seconds = Math.round(stressMinutes * 60);
  const since = Math.floor(Date.now() / 1000);
  const flood = spawn('ping', ['-f', '-q', '-s', '1400', '-w', String(seconds), state.nodes[0].ip], {
    stdio: 'ignore',
  });
  flood.on('error', (e) => console.error(`ping flood: ${e.message}`));
  const [stress, load] = await Promise.all([
    ssh(0, `stress-ng --cpu 0 --vm 1 --vm-bytes 20% --hdd 1 --timeout ${seconds}s --metrics-brief 2>&1 | tail -n 3`),
    wrk(300, seconds),
  ]);
  flood.kill();
  if (stress.code !== 0) throw new Error(`stress-ng failed on node1: ${stress.stdout}${stress.stderr}`);
  const j = await ssh(1, `journalctl -t keepalived-notify --since @${since} --no-pager -q -o cat`);
  const transitions = [...j.stdout.matchAll(/is now (\w+)/g)].map((m) => m[1]);
  return { transitions, requests: load.requests, errors: load.socketErrors + load.non2xx };
}

if ((await cli(['apply', file, '--renderer', 'silent', '--no-verify'])) !== 0) throw new Error('apply failed');
const install =
  'command -v stress-ng >/dev/null || { apt-get update -q >/dev/null; DEBIAN_FRONTEND=noninteractive apt-get ' +
  'install -y -q stress-ng >/dev/null; }';
if ((await ssh(0, install)).code !== 0) throw new Error('could not install stress-ng on node1');
await ensureWrk();

console.log(
  `host loss and false failovers on the lab: ${runs} node-down runs, ` +
    `${stressMinutes} min of stress per advert interval`,
);
console.log(
  'setting   node-down median   max      failed (per run)   false failovers under stress   wrk requests / errors',
);
const rows = [];
for (const setting of settings) {
  await use(setting);
  const down = await nodeDown();
  console.log(`  ${setting.label}: node-down ${down.median} ms median, ${down.max} ms max, failed ${down.failed}`);
  await cli(['failover', file, '--to', 'node1']);
  const ff = await falseFailovers();
  const row = {
    setting: setting.label,
    ...down,
    falseFailovers: ff.transitions.filter((t) => t === 'MASTER').length,
    ff,
  };
  rows.push(row);
  console.log(
    `${setting.label.padEnd(9)} ${`${down.median} ms`.padStart(10)}   ${`${down.max} ms`.padStart(8)}   ` +
      `${down.failed.padEnd(18)} ${String(row.falseFailovers).padStart(3)} ` +
      `(${ff.transitions.join(' ') || 'no transitions'})   ${ff.requests} / ${ff.errors}`,
  );
}
const ok = rows.filter((r) => r.falseFailovers === 0 && r.median < 150);
console.log(
  ok.length
    ? `host loss under 150 ms median without false failovers: ${ok.map((r) => r.setting).join(', ')}`
    : 'no advert interval met both goals (under 150 ms median, 0 false failovers) on this machine',
);

const dflt = settings[0];
await use(dflt);
console.log(`\n300 keep-alive connections (wrk) through each scenario, ${dflt.label}`);
for (const scenario of ['planned', 'nginx-crash', 'keepalived-stop', 'node-down']) {
  await cli(['failover', file, '--to', 'node1']);
  const load = wrk(300, 12);
  await new Promise((r) => setTimeout(r, 3000));
  await cli(['verify', file, '--scenario', scenario, '--yes']);
  const w = await load;
  const v = last();
  console.log(
    `${scenario.padEnd(16)} wrk: ${w.requests} requests, ${w.socketErrors} socket errors, ${w.non2xx} non-2xx, ` +
      `p99 ${w.p99Ms} ms; prober: downtime ${v.failover.downtimeMs} ms, ${v.failover.failedRequests} failed`,
  );
}
