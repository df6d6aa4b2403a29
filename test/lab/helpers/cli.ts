import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { main } from '../../../src/cli/main.js';

/**
 * Lab nodes share one compiler cache: compiling on one node at a time makes every build after the
 * first cache hits (on 2 cores, both nodes compiling at once would each miss). Applies in the lab
 * suites run with --build-concurrency 1 unless a test sets it.
 */
const LAB_APPLY_FLAGS = ['--build-concurrency', '1'];

export async function cli(argv: string[], cwd = process.cwd()) {
  if (argv[0] === 'apply' && !argv.includes('--build-concurrency')) argv = [...argv, ...LAB_APPLY_FLAGS];
  let out = '';
  let err = '';
  const code = await main(argv, {
    cwd,
    interactive: false,
    stdout: (s) => {
      out += s;
    },
    stderr: (s) => {
      err += s;
    },
  });
  return { code, out, err };
}

export interface RunRecord {
  nodes: Array<{
    name: string;
    ok: boolean;
    steps: Array<{ id: string; action: string; reason: string; durationMs: number }>;
  }>;
}

/** Steps that ran on each node in the last apply, from the run record next to the runbook. */
export function ranSteps(runbookPath: string, name = 'lab'): Record<string, string[]> {
  const rec = JSON.parse(readFileSync(join(runbookPath, '..', 'records', name, 'last-run.json'), 'utf8')) as RunRecord;
  return Object.fromEntries(rec.nodes.map((n) => [n.name, n.steps.filter((s) => s.action === 'ran').map((s) => s.id)]));
}
