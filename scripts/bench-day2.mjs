#!/usr/bin/env node
// Day-2 changes on a serving lab cluster (printed, not asserted). Needs root on Linux; builds dist first.
//   npm run bench:day2 [-- --with-build]
// Each change is made twice under a 50 ms prober through the VIP: through `ha-setup apply` (rolling,
// reload, hot upgrade) and the way it is done by hand or by a restart-based installer (systemctl
// restart on both nodes at once). --with-build adds a module change (a real rebuild, minutes).
import { readFileSync, writeFileSync } from 'node:fs';
import { parse, stringify } from 'yaml';
import { labSsh } from '../dist/lab/lab.js';
import { startProber } from '../dist/verify/probe.js';
import { cli, labRunbookFile, paths } from './lib.mjs';

const withBuild = process.argv.includes('--with-build');
const { file, state } = await labRunbookFile();
const edit = (fn) => {
  const doc = parse(readFileSync(file, 'utf8'));
  fn(doc);
  writeFileSync(file, stringify(doc));
};
const onBoth = (command) => Promise.all(state.nodes.map((n) => labSsh(paths, n.ip, command)));

async function measured(label, fn) {
  const prober = startProber(state.vip, 80, 50, 500);
  const t0 = Date.now();
  const code = await fn();
  const wall = Date.now() - t0;
  // A restart's outage can outlast the command (keepalived re-electing): keep probing 3 s more.
  await new Promise((r) => setTimeout(r, 3000));
  const samples = await prober.stop();
  const failed = samples.filter((s) => !s.ok).length;
  console.log(
    `  ${label.padEnd(52)} ${String(wall).padStart(7)} ms   ${String(samples.length).padStart(5)} requests   ` +
      `${String(failed).padStart(3)} failed${code ? `   (exit ${code})` : ''}`,
  );
}

const apply = () => cli(['apply', file, '--renderer', 'silent', '--no-verify']);
if ((await apply()) !== 0) throw new Error('apply of the lab runbook failed');
console.log('day-2 changes through the VIP (probe every 50 ms from the lab host)');

console.log('no change, verify.failover: true');
await measured('ha-setup apply (nothing to do, no failover test)', () => cli(['apply', file, '--renderer', 'silent']));

console.log('config only (server_name)');
edit((d) => {
  d.site.serverName = 'bench-a.example';
});
await measured('ha-setup apply (nginx -t, reload)', apply);
await measured('by hand: systemctl restart nginx on both nodes', () => onBoth('systemctl restart nginx').then(() => 0));

console.log('keepalived setting (advert interval)');
edit((d) => {
  d.vrrp.advertInt = 2;
});
await measured('ha-setup apply (keepalived -t, reload)', apply);
await measured('by hand: systemctl restart keepalived on both nodes', () =>
  onBoth('systemctl restart keepalived').then(() => 0),
);
edit((d) => {
  d.vrrp.advertInt = 1;
});
await apply();

if (withBuild) {
  console.log('module change (fancyindex removed: rebuild, install)');
  edit((d) => {
    d.build.modules = d.build.modules.filter((m) => m !== 'fancyindex');
  });
  await measured('ha-setup apply (roll, hot upgrade)', apply);
}
console.log('nginx binary change (previous build <-> current build)');
const hasOld = (await onBoth('test -x /usr/local/nginx/sbin/nginx.old && echo yes || echo no')).every(
  (r) => r.stdout.trim() === 'yes',
);
if (hasOld) {
  await measured('ha-setup rollback (roll, hot upgrade)', () => cli(['rollback', file]));
  await measured('ha-setup rollback again (back to the newer build)', () => cli(['rollback', file]));
} else {
  console.log('  (no previous build on the nodes yet: run with --with-build once)');
}
await measured('by hand: systemctl restart nginx on both nodes', () => onBoth('systemctl restart nginx').then(() => 0));
