#!/usr/bin/env node
// Cold apply wall time on fresh lab nodes, per step, for one node and for two nodes (printed, not
// asserted): shows that nodes run in parallel (target: two nodes take at most 1.2x one node).
// Needs root on Linux and a built dist/ (npm run build).   npm run bench:apply
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cli, labRunbookFile } from './lib.mjs';

async function coldApply(limit) {
  const { file: rb, dir } = await labRunbookFile({ fresh: true });
  const t = performance.now();
  const code = await cli(['apply', rb, '--renderer', 'silent', '--no-verify', ...(limit ? ['--limit', limit] : [])]);
  const wall = (performance.now() - t) / 1000;
  if (code !== 0) throw new Error('apply failed');
  const rec = JSON.parse(readFileSync(join(dir, 'runbooks', 'records', 'lab', 'last-run.json'), 'utf8'));
  return { wall, nodes: rec.nodes };
}

const one = await coldApply('node1');
const two = await coldApply(undefined);
console.log('cold apply on fresh lab nodes (seconds per step)');
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
