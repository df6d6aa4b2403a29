// Shared by the benchmark scripts: a live lab and a fresh copy of its runbook in a temp dir.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../dist/cli/main.js';
import { DEFAULT_LAB, labPaths } from '../dist/lab/config.js';
import { labDown, labSsh, labUp } from '../dist/lab/lab.js';
import { LAB_SOURCES, labOpenrestyTarball, labRunbook } from '../dist/lab/runbook.js';
import { runbookToYaml } from '../dist/runbook/io.js';
import { fillMirror } from '../dist/sources/mirror.js';

export const paths = labPaths();

/** The value of `--flavor` (nginx or openresty) on this script's command line. */
export function flavorArg() {
  const i = process.argv.indexOf('--flavor');
  const flavor = i > 0 ? process.argv[i + 1] : 'nginx';
  if (flavor !== 'nginx' && flavor !== 'openresty') throw new Error(`--flavor: nginx or openresty, not ${flavor}`);
  return flavor;
}

/**
 * Brings the lab up (fresh: rebuilt from scratch) and returns the path of a new runbook copy (the
 * nginx flavor, or with `openresty` the wizard's default flavor built from the rebuilt tarball).
 */
export async function labRunbookFile({ fresh = false, openresty = false } = {}) {
  if (fresh) await labDown(() => {}, paths, { quiet: true });
  const { state } = await labUp(DEFAULT_LAB, () => {}, paths);
  await fillMirror(paths.sourcesDir, LAB_SOURCES, { download: false });
  const dir = mkdtempSync(join(tmpdir(), 'ha-setup-bench-'));
  mkdirSync(join(dir, 'runbooks'));
  const file = join(dir, 'runbooks', 'lab.yaml');
  const rb = labRunbook(state, paths, openresty ? { openrestyTarball: labOpenrestyTarball() } : {});
  writeFileSync(file, runbookToYaml(rb));
  return { file, dir, state };
}

/**
 * Runs the CLI in-process without its output (errors still go to stderr); returns the exit code.
 * When it fails, the last 40 lines it printed go to stderr too: a bench that stops says why.
 */
export async function cli(argv) {
  let out = '';
  const code = await main(argv, {
    interactive: false,
    stdout: (s) => {
      out += s;
    },
    stderr: (s) => process.stderr.write(s),
  });
  if (code !== 0) {
    const lines = out.trimEnd().split('\n').slice(-40);
    process.stderr.write(
      `ha-setup ${argv.join(' ')} exited ${code}; its last output:\n${lines.map((l) => `  | ${l}`).join('\n')}\n`,
    );
  }
  return code;
}

/**
 * The documented way to change VRRP settings every node must share (version, router id, password,
 * unicast) on a serving pair: stop keepalived everywhere except the VIP holder, then apply.
 */
export async function applyVrrpChange(state, runbookPath) {
  const holders = [];
  for (const n of state.nodes) {
    const r = await labSsh(paths, n.ip, `ip -o -4 addr show | grep -q ' ${state.vip}/' && echo yes || echo no`);
    if (r.stdout.trim() === 'yes') holders.push(n);
  }
  for (const n of state.nodes.filter((x) => !holders.includes(x)))
    await labSsh(paths, n.ip, 'systemctl stop keepalived');
  return cli(['apply', runbookPath, '--renderer', 'silent', '--no-verify']);
}

export { median, medianInterval } from './stats.mjs';
