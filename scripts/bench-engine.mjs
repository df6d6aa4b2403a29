#!/usr/bin/env node
// Engine overhead on the lab (printed, not asserted): wall time of a no-op re-run of the full plan on
// 2 nodes (target under 3 s) and SSH round trips per step. Needs an installed lab cluster
// (ha-setup lab up && ha-setup apply runbooks/lab.yaml) and a built dist/.   npm run bench:engine
import { SshTransport } from '../dist/engine/transport.js';
import { INSTALL_STEPS } from '../dist/steps/index.js';
import { cli, labRunbookFile } from './lib.mjs';

const { file: rb, state } = await labRunbookFile();
if ((await cli(['apply', rb, '--renderer', 'silent', '--no-verify'])) !== 0) throw new Error('apply failed');

const walls = [];
let trips = 0;
for (let i = 0; i < 5; i++) {
  const before = SshTransport.roundTrips;
  const t = performance.now();
  await cli(['apply', rb, '--renderer', 'silent', '--no-verify']);
  walls.push((performance.now() - t) / 1000);
  trips = SshTransport.roundTrips - before;
}
walls.sort((a, b) => a - b);
const steps = INSTALL_STEPS.length + 1; // + preflight
console.log(
  `no-op apply of the full plan on ${state.nodes.length} nodes: median ${walls[2].toFixed(2)} s, min ${walls[0].toFixed(2)} s, max ${walls[4].toFixed(2)} s (target < 3 s)`,
);
console.log(
  `SSH round trips per no-op run: ${trips} (${(trips / state.nodes.length).toFixed(0)} per node, ${(trips / state.nodes.length / steps).toFixed(1)} per step incl. facts, preflight and the VIP check)`,
);
