#!/usr/bin/env node
// Prints lab timings (not asserted): cold `lab up` (base image built from scratch), warm `lab up`
// (cached base image), and `lab down`. Needs root on Linux. Usage: npm run bench:lab [-- --skip-cold]
import { rmSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_LAB, labPaths } from '../dist/lab/config.js';
import { labDown, labUp } from '../dist/lab/lab.js';

const paths = labPaths();
const quiet = () => {};
const time = async (label, fn) => {
  const t = performance.now();
  await fn();
  const s = ((performance.now() - t) / 1000).toFixed(1);
  console.log(`${label.padEnd(28)} ${s} s`);
};

await labDown(quiet, paths, { quiet: true });
if (!process.argv.includes('--skip-cold')) {
  for (const f of readdirSync(paths.cacheDir, { withFileTypes: true }))
    if (f.name.startsWith('base-')) rmSync(join(paths.cacheDir, f.name));
  await time('lab up (cold, debootstrap)', () => labUp(DEFAULT_LAB, quiet, paths));
  await time('lab down', () => labDown(quiet, paths));
}
await time('lab up (warm, cached base)', () => labUp(DEFAULT_LAB, quiet, paths));
await time('lab up (again, no-op)', () => labUp(DEFAULT_LAB, quiet, paths));
await time('lab down', () => labDown(quiet, paths));
