import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_LAB, labPaths, type LabOptions } from '../../../src/lab/config.js';
import { labDown, labSsh, labUp, type LabState } from '../../../src/lab/lab.js';
import { LAB_SOURCES, labRunbook } from '../../../src/lab/runbook.js';
import { runbookToYaml, writeFileAtomic } from '../../../src/runbook/io.js';
import { fillMirror } from '../../../src/sources/mirror.js';

export interface Lab {
  state: LabState;
  paths: ReturnType<typeof labPaths>;
  /** A fresh copy of the lab runbook in a temp dir (so tests never share records or logs). */
  runbookPath: string;
  ssh: (node: number, command: string, user?: string) => Promise<{ code: number; stdout: string; stderr: string }>;
}

/** Shared fixture for end-to-end suites: reuses a live lab (labUp is idempotent), else builds one. */
export async function withLab(opts: Partial<LabOptions> & { fresh?: boolean } = {}): Promise<Lab> {
  const paths = labPaths();
  // A fresh lab gives nodes with nothing installed (for cold applies); otherwise a live lab is reused.
  if (opts.fresh) await labDown(() => {}, paths, { quiet: true });
  const { fresh: _fresh, ...shape } = opts;
  const { state } = await labUp({ ...DEFAULT_LAB, ...shape }, (l) => console.log(`[lab] ${l}`), paths);
  await fillMirror(paths.sourcesDir, LAB_SOURCES, { download: false });
  const dir = mkdtempSync(join(tmpdir(), 'ha-setup-e2e-'));
  const runbookPath = join(dir, 'runbooks', 'lab.yaml');
  writeFileAtomic(runbookPath, runbookToYaml(labRunbook(state, paths)));
  return {
    state,
    paths,
    runbookPath,
    ssh: (node, command, user) => labSsh(paths, state.nodes[node].ip, command, { user, allowFailure: true }),
  };
}
