#!/usr/bin/env node
// Start-up cost of the CLI (printed, not asserted): wall and CPU time of `ha-setup --version`,
// `--help` and `validate <example>` as whole processes, next to `node -e 0` measured in the same run,
// alternated so drift hits both alike. Goal: --help under 0.3 s.   npm run bench:startup
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');
const bin = join(root, 'bin', 'ha-setup.js');
const runs = Number(process.env.RUNS ?? 11);
const commands = {
  'node -e 0 (baseline)': ['-e', '0'],
  'ha-setup --version': [bin, '--version'],
  'ha-setup --help': [bin, '--help'],
  'ha-setup validate example': [bin, 'validate', join(root, 'runbooks', 'example-openresty.yaml')],
};

/** Wall and CPU (user + system) seconds of one process, from /usr/bin/time (the kernel's accounting). */
function once(args) {
  const r = spawnSync('/usr/bin/time', ['-f', '%e %U %S', process.execPath, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  const [wall, user, sys] = r.stderr.trim().split('\n').pop().split(' ').map(Number);
  return { wall, cpu: user + sys };
}

const samples = Object.fromEntries(Object.keys(commands).map((k) => [k, { wall: [], cpu: [] }]));
for (let i = 0; i < runs; i++) {
  for (const [name, args] of Object.entries(commands)) {
    const { wall, cpu } = once(args);
    samples[name].wall.push(wall);
    samples[name].cpu.push(cpu);
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const base = samples['node -e 0 (baseline)'];
for (const [name, s] of Object.entries(samples)) {
  const w = median(s.wall);
  const c = median(s.cpu);
  console.log(
    `${name.padEnd(28)} wall median ${w.toFixed(3)} s (${(w / median(base.wall)).toFixed(1)}x node -e 0), CPU ` +
      `median ${c.toFixed(2)} s, over ${runs} runs`,
  );
}
