#!/usr/bin/env node
// Cold apply wall time on fresh lab nodes, per step, for one node and for two nodes (printed, not
// asserted): shows that nodes run in parallel (target: two nodes take at most 1.2x one node).
// Needs root on Linux and a built dist/ (npm run build).   npm run bench:apply
import { readFileSync, writeFileSync, mkdtempSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../dist/cli/main.js';
import { DEFAULT_LAB, labPaths } from '../dist/lab/config.js';
import { labDown, labUp } from '../dist/lab/lab.js';
import { LAB_SOURCES, labRunbook } from '../dist/lab/runbook.js';
import { fillMirror } from '../dist/sources/mirror.js';
import { runbookToYaml } from '../dist/runbook/io.js';

const paths = labPaths();
const quiet = { interactive: false, stdout: () => {}, stderr: (s) => process.stderr.write(s) };

async function coldApply(limit) {
  await labDown(() => {}, paths, { quiet: true });
  const { state } = await labUp(DEFAULT_LAB, () => {}, paths);
  await fillMirror(paths.sourcesDir, LAB_SOURCES, { download: false });
  const dir = mkdtempSync(join(tmpdir(), 'ha-setup-bench-'));
  mkdirSync(join(dir, 'runbooks'));
  const rb = join(dir, 'runbooks', 'lab.yaml');
  writeFileSync(rb, runbookToYaml(labRunbook(state, paths)));
  const t = performance.now();
  const code = await main(['apply', rb, '--renderer', 'silent', '--no-verify', ...(limit ? ['--limit', limit] : [])], quiet);
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
  console.log(`${id.padEnd(20)}${d(one.nodes[0]).padStart(10)}${d(two.nodes[0]).padStart(18)}${d(two.nodes[1]).padStart(10)}`);
}
console.log(`${'wall'.padEnd(20)}${one.wall.toFixed(1).padStart(10)}${two.wall.toFixed(1).padStart(18)}`);
console.log(`2 nodes / 1 node: ${(two.wall / one.wall).toFixed(2)}x (target <= 1.2x)`);
