#!/usr/bin/env node
// Engine overhead on the lab (printed, not asserted). Needs root on Linux and a built dist/.
//   npm run bench:engine
// 1. the lab cluster installed (apply), then a no-op re-apply of the full plan 5 times: wall time
//    (target under 1 s) and SSH round trips per node; then the same as a command of its own (what a
//    user waits for: Node's start and module loading included)
// 2. the same steps' checks on the same hosts, in the same run, three ways: one SSH exec per check
//    (how apply asked until 0.x), all of a node's checks in one exec with each file hashed by its own
//    sha256sum (how it asked until this release), and in one exec with every planned file hashed by
//    one sha256sum up front (how it asks now)
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { runCheck, runChecks, stepCheck } from '../dist/engine/checks.js';
import { appliesTo, resolveNodes } from '../dist/engine/nodes.js';
import { offlineSources } from '../dist/engine/plan-view.js';
import { loadSecrets, newRunId, openSession } from '../dist/engine/session.js';
import { SshTransport } from '../dist/engine/transport.js';
import { loadRunbook } from '../dist/runbook/io.js';
import { readSiteFiles } from '../dist/runbook/site-files.js';
import { INSTALL_STEPS } from '../dist/steps/index.js';
import { cli, labRunbookFile, median } from './lib.mjs';

const { file: rb, state } = await labRunbookFile();
if ((await cli(['apply', rb, '--renderer', 'silent', '--no-verify'])) !== 0) throw new Error('apply failed');

const walls = [];
let trips = 0;
for (let i = 0; i < 5; i++) {
  const before = SshTransport.roundTrips;
  const t = performance.now();
  if ((await cli(['apply', rb, '--renderer', 'silent', '--no-verify'])) !== 0) throw new Error('no-op apply failed');
  walls.push((performance.now() - t) / 1000);
  trips = SshTransport.roundTrips - before;
}
console.log(
  `no-op apply of the full plan on ${state.nodes.length} nodes: median ${median(walls).toFixed(2)} s, ` +
    `min ${Math.min(...walls).toFixed(2)} s, max ${Math.max(...walls).toFixed(2)} s (target < 1 s); ` +
    `${(trips / state.nodes.length).toFixed(0)} SSH round trips per node`,
);
const bin = join(import.meta.dirname, '..', 'bin', 'ha-setup.js');
const commandWalls = [];
for (let i = 0; i < 5; i++) {
  const t = performance.now();
  execFileSync(process.execPath, [bin, 'apply', rb, '--renderer', 'silent', '--no-verify'], { stdio: 'ignore' });
  commandWalls.push((performance.now() - t) / 1000);
}
console.log(
  `the same as \`ha-setup apply\` run from the shell: median ${median(commandWalls).toFixed(2)} s, ` +
    `min ${Math.min(...commandWalls).toFixed(2)} s, max ${Math.max(...commandWalls).toFixed(2)} s`,
);

// The checks alone, both ways, on the same connections.
const { runbook } = loadRunbook(rb);
const secrets = loadSecrets(runbook, rb);
const handles = await openSession({ runbookPath: rb, runbook, acceptNewHostKeys: false, runId: newRunId() }, secrets);
try {
  const sources = offlineSources(runbook, { useCache: true, families: handles.map((h) => h.facts.family) });
  const siteFiles = readSiteFiles(runbook, dirname(rb));
  const clusterFacts = Object.fromEntries(handles.map((h) => [h.node.name, h.facts]));
  const checksOf = (h) =>
    INSTALL_STEPS.filter((s) => appliesTo(s, h.node)).map((step) => {
      const pc = {
        runbook,
        node: h.node,
        cluster: resolveNodes(runbook),
        facts: h.facts,
        sources,
        clusterFacts,
        siteFiles,
      };
      return stepCheck(step, { ...pc, plan: step.plan(pc), secrets });
    });
  const checks = new Map(handles.map((h) => [h, checksOf(h)]));
  const oneByOne = [];
  const batchedFileByFile = [];
  const batched = [];
  const batch = async (withFiles) => {
    const t = performance.now();
    const results = await Promise.all(
      handles.map((h) =>
        runChecks(
          h.t,
          checks.get(h).map((c) => (withFiles ? c : { ...c, files: [] })),
        ),
      ),
    );
    if (results.some((r, k) => r.size !== checks.get(handles[k]).length)) throw new Error('a batch lost checks');
    if (results.some((r) => [...r.values()].some((ok) => !ok))) throw new Error('a check failed on the installed lab');
    return performance.now() - t;
  };
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    await Promise.all(
      handles.map(async (h) => {
        for (const c of checks.get(h)) await runCheck(h.t, c);
      }),
    );
    oneByOne.push(performance.now() - t);
    batchedFileByFile.push(await batch(false));
    batched.push(await batch(true));
  }
  const n = checks.get(handles[0]).length;
  console.log(`the ${n} checks per node, both nodes at once, 5 runs each (median):`);
  console.log(`  one SSH exec per check:                        ${median(oneByOne).toFixed(0)} ms`);
  console.log(`  one SSH exec per node, one sha256sum per file: ${median(batchedFileByFile).toFixed(0)} ms`);
  console.log(`  one SSH exec per node, one sha256sum (now):    ${median(batched).toFixed(0)} ms`);
} finally {
  for (const h of handles) await h.t.close();
}
