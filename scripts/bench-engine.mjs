#!/usr/bin/env node
// Engine overhead on the lab (printed, not asserted): wall time of a no-op re-run of the full plan on
// 2 nodes (target under 3 s) and SSH round trips per step. Needs an installed lab cluster
// (ha-setup lab up && ha-setup apply runbooks/lab.yaml) and a built dist/.   npm run bench:engine
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../dist/cli/main.js';
import { SshTransport } from '../dist/engine/transport.js';
import { DEFAULT_LAB, labPaths } from '../dist/lab/config.js';
import { labUp } from '../dist/lab/lab.js';
import { LAB_SOURCES, labRunbook } from '../dist/lab/runbook.js';
import { fillMirror } from '../dist/sources/mirror.js';
import { runbookToYaml } from '../dist/runbook/io.js';
import { INSTALL_STEPS } from '../dist/steps/index.js';

const paths = labPaths();
const { state } = await labUp(DEFAULT_LAB, () => {}, paths);
await fillMirror(paths.sourcesDir, LAB_SOURCES, { download: false });
const dir = mkdtempSync(join(tmpdir(), 'ha-setup-bench-'));
mkdirSync(join(dir, 'runbooks'));
const rb = join(dir, 'runbooks', 'lab.yaml');
writeFileSync(rb, runbookToYaml(labRunbook(state, paths)));
const quiet = { interactive: false, stdout: () => {}, stderr: (s) => process.stderr.write(s) };
if ((await main(['apply', rb, '--renderer', 'silent', '--no-verify'], quiet)) !== 0) throw new Error('apply failed');

const walls = [];
let trips = 0;
for (let i = 0; i < 5; i++) {
  const before = SshTransport.roundTrips;
  const t = performance.now();
  await main(['apply', rb, '--renderer', 'silent', '--no-verify'], quiet);
  walls.push((performance.now() - t) / 1000);
  trips = SshTransport.roundTrips - before;
}
walls.sort((a, b) => a - b);
const steps = INSTALL_STEPS.length + 1; // + preflight
console.log(`no-op apply of the full plan on ${state.nodes.length} nodes: median ${walls[2].toFixed(2)} s, min ${walls[0].toFixed(2)} s, max ${walls[4].toFixed(2)} s (target < 3 s)`);
console.log(`SSH round trips per no-op run: ${trips} (${(trips / state.nodes.length).toFixed(0)} per node, ${(trips / state.nodes.length / steps).toFixed(1)} per step incl. facts, preflight and the VIP check)`);
