#!/usr/bin/env node
// Cold and no-op apply on fresh lab nodes (printed, not asserted), same run:
//   1. the nginx flavor (the lab runbook), one node and two nodes, per step: nodes run in parallel
//      (target: two nodes take at most 1.2x one node);
//   2. OpenResty 1.27.1.2 with the articles' modules (upstream-check, auth-ldap, cache-purge,
//      fancyindex; git modules from bare mirrors of ../shared/git through sources.gitRewrite),
//      cold and no-op, next to the nginx flavor's.
// Needs root on Linux and a built dist/ (npm run build).   npm run bench:apply [-- --skip-openresty]
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { labOpenrestyTarball, labRunbook } from '../dist/lab/runbook.js';
import { runbookToYaml } from '../dist/runbook/io.js';
import { cli, labRunbookFile, paths } from './lib.mjs';

const shared = resolve(import.meta.dirname, '..', '..', 'shared');

async function coldApply(limit, edit) {
  const { file: rb, dir, state } = await labRunbookFile({ fresh: true });
  if (edit) writeFileSync(rb, runbookToYaml(edit(state)));
  const t = performance.now();
  const code = await cli(['apply', rb, '--renderer', 'silent', '--no-verify', ...(limit ? ['--limit', limit] : [])]);
  const wall = (performance.now() - t) / 1000;
  if (code !== 0) throw new Error('apply failed (its output is above)');
  const rec = JSON.parse(readFileSync(join(dir, 'runbooks', 'records', 'lab', 'last-run.json'), 'utf8'));
  const t2 = performance.now();
  if ((await cli(['apply', rb, '--renderer', 'silent', '--no-verify', ...(limit ? ['--limit', limit] : [])])) !== 0)
    throw new Error('no-op apply failed');
  return { wall, noop: (performance.now() - t2) / 1000, nodes: rec.nodes };
}

const one = await coldApply('node1');
const two = await coldApply(undefined);
console.log('cold apply on fresh lab nodes (seconds per step), nginx flavor (the lab runbook)');
const ids = one.nodes[0].steps.map((s) => s.id);
console.log(`${'step'.padEnd(20)}${'1 node'.padStart(10)}${'2 nodes: node1'.padStart(18)}${'node2'.padStart(10)}`);
for (const id of ids) {
  const d = (n) => ((n.steps.find((s) => s.id === id)?.durationMs ?? 0) / 1000).toFixed(1);
  console.log(
    `${id.padEnd(20)}${d(one.nodes[0]).padStart(10)}${d(two.nodes[0]).padStart(18)}${d(two.nodes[1]).padStart(10)}`,
  );
}
console.log(`${'wall'.padEnd(20)}${one.wall.toFixed(1).padStart(10)}${two.wall.toFixed(1).padStart(18)}`);
console.log(`2 nodes / 1 node: ${(two.wall / one.wall).toFixed(2)}x (target <= 1.2x)`);

if (!process.argv.includes('--skip-openresty')) {
  const tarball = labOpenrestyTarball();
  // The git modules from bare mirrors of the bundles, as a git server would serve them.
  const mirrors = mkdtempSync(join(tmpdir(), 'ha-setup-bench-git-'));
  for (const f of readdirSync(join(shared, 'git')).filter((x) => x.endsWith('.bundle'))) {
    const [owner, repo] = f.replace(/\.bundle$/, '').split('--');
    mkdirSync(join(mirrors, owner), { recursive: true });
    execFileSync('git', [
      'clone',
      '--quiet',
      '--mirror',
      '--',
      join(shared, 'git', f),
      join(mirrors, owner, `${repo}.git`),
    ]);
  }
  const nginx = two;
  const or = await coldApply(undefined, (state) => {
    const doc = labRunbook(state, paths, { openrestyTarball: tarball });
    doc.build.modules = ['upstream-check', 'auth-ldap', 'cache-purge', 'fancyindex'];
    doc.sources.gitRewrite = { 'https://github.com/': `file://${mirrors}/` };
    return doc;
  });
  console.log('');
  console.log('two fresh nodes, same run:                 cold apply   no-op re-apply');
  console.log(
    `nginx 1.22.1 + fancyindex, lua         ` +
      `   ${nginx.wall.toFixed(1).padStart(8)} s   ${nginx.noop.toFixed(2).padStart(8)} s`,
  );
  console.log(
    `OpenResty 1.27.1.2 + the articles' ` +
      `modules ${or.wall.toFixed(1).padStart(7)} s   ${or.noop.toFixed(2).padStart(8)} s`,
  );
  const slowest = or.nodes[0].steps
    .filter((x) => x.durationMs > 5000)
    .map((x) => `${x.id} ${(x.durationMs / 1000).toFixed(0)} s`);
  console.log(`OpenResty's longest steps on node1: ${slowest.join(', ')}`);
}
