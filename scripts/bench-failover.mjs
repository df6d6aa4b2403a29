#!/usr/bin/env node
// Failover figures on the lab (printed, not asserted). Needs root on Linux; builds dist first (npm run build).
//   npm run bench:failover [-- --runs 5]
// 1. lab up + apply of the lab runbook (ha-setup defaults: VRRPv3, advert 0.1 s, track file on the nginx unit)
// 2. nginx-crash, nginx-stop and planned, N times each: median and max downtime, failed requests
// 3. the same lab with the reference articles' settings (VRRPv2, advert_int 1, check every 2 s with
//    weight 2, priorities 100/99, no track file): nginx-stop N times, and the ratio to the defaults
// 4. re-apply the defaults
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { applyVrrpChange, cli, labRunbookFile, median } from './lib.mjs';

const runs = Number(process.argv[process.argv.indexOf('--runs') + 1]) || 5;
const { file: defaults, dir, state } = await labRunbookFile();
const reference = join(dir, 'runbooks', 'reference.yaml');
const ref = parse(readFileSync(defaults, 'utf8'));
ref.vrrp = { ...ref.vrrp, version: 2, advertInt: 1 };
ref.nodes[1].priority = 99;
ref.keepalived.check = { interval: 2, fall: 1, rise: 1, weight: 2 };
ref.keepalived.trackNginx = false;
writeFileSync(reference, stringify(ref));

const last = () => JSON.parse(readFileSync(join(dir, 'runbooks', 'records', 'lab', 'last-verify.json'), 'utf8'));

async function series(runbook, scenario) {
  const downs = [];
  const fails = [];
  for (let i = 0; i < runs; i++) {
    const code = await cli(['verify', runbook, '--scenario', scenario, '--yes']);
    const r = last();
    if (code !== 0 && !r.failover.moved) throw new Error(`${scenario} run ${i + 1}: the VIP did not move`);
    downs.push(r.failover.downtimeMs);
    fails.push(r.failover.failedRequests);
  }
  return {
    scenario,
    median: median(downs),
    max: Math.max(...downs),
    failedMedian: median(fails),
    failedMax: Math.max(...fails),
  };
}

const print = (label, s) =>
  console.log(
    `${label.padEnd(34)} median ${String(s.median).padStart(5)} ms   max ${String(s.max).padStart(5)} ms   failed ` +
      `requests median ${s.failedMedian}, max ${s.failedMax}`,
  );

if ((await cli(['apply', defaults, '--renderer', 'silent', '--no-verify'])) !== 0)
  throw new Error('apply (defaults) failed');
console.log(`failover on the lab, ${runs} runs each (probe every 50 ms from the lab host)`);
const results = {};
for (const scenario of ['nginx-crash', 'nginx-stop', 'planned']) {
  results[scenario] = await series(defaults, scenario);
  print(`ha-setup defaults, ${scenario}`, results[scenario]);
}
// VRRPv3 -> v2 cannot roll node by node (apply refuses it): the maintenance path, as documented.
if ((await applyVrrpChange(state, reference)) !== 0) throw new Error('apply (reference settings) failed');
const refStop = await series(reference, 'nginx-stop');
print('reference settings, nginx-stop', refStop);
const ratio = refStop.median / Math.max(1, results['nginx-stop'].median);
console.log(`reference / defaults (nginx-stop median): ${ratio.toFixed(1)}x`);
console.log(
  `targets: crash median < 200 ms: ${results['nginx-crash'].median < 200 ? 'met' : 'NOT met'}; planned with 0 ` +
    `failed requests: ${results.planned.failedMax === 0 ? 'met' : 'NOT met'}`,
);
await applyVrrpChange(state, defaults);
