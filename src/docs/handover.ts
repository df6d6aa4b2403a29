import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative } from 'node:path';
import { nginxCoreVersion } from '../catalog.js';
import { localJournalPath } from '../engine/executor.js';
import { assumedFacts } from '../engine/facts.js';
import { readLocalJournal } from '../engine/journal.js';
import { resolveNodes } from '../engine/nodes.js';
import { offlineSources } from '../engine/plan-view.js';
import type { LocalSource } from '../engine/types.js';
import { runbookDir } from '../engine/session.js';
import { render } from '../render.js';
import { secretsPathFor, writeFileAtomic } from '../runbook/io.js';
import type { Runbook } from '../runbook/schema.js';
import { layout } from '../runbook/layout.js';
import { selectedModules } from '../steps/common.js';
import { configureSpec } from '../steps/configure.js';
import { ACME_UNIT, TICKET_UNIT } from '../steps/tls.js';
import { acmeDirectoryLabel, acmeDirectoryUrl, certificateNames } from '../runbook/tls-settings.js';
import type { VerifyResult } from '../verify/verify.js';

interface RunRecordNode {
  name: string;
  facts?: { os?: string; release?: string };
}

function readJson<T>(file: string): T | undefined {
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as T) : undefined;
}

export function docsPathFor(runbookPath: string, rb: Runbook): string {
  return join(runbookDir(runbookPath), `${rb.name}.handover.md`);
}

/** The handover document, from the runbook and the records next to it (no host contact). */
export function renderHandover(runbookPath: string, rb: Runbook, toolVersion: string): string {
  const records = join(runbookDir(runbookPath), 'records', rb.name);
  const lastRun = readJson<{ nodes: RunRecordNode[]; sources?: LocalSource[] }>(join(records, 'last-run.json'));
  const lastVerify = readJson<VerifyResult>(join(records, 'last-verify.json'));
  const nodes = resolveNodes(rb).map((n, i) => {
    const rec = lastRun?.nodes.find((x) => x.name === n.name);
    const journal = readLocalJournal(localJournalPath(runbookPath, rb, n), rb.name);
    const steps = Object.entries(journal?.steps ?? {}).map(([id, e]) => ({
      id,
      status: e.status,
      endedAt: e.endedAt,
      durationMs: e.durationMs,
      commands: e.commands ?? [],
      files: e.files ?? [],
    }));
    return {
      ...n,
      id: `n${i}`,
      os: rec?.facts?.os ?? 'unknown (no apply recorded yet)',
      release: rec?.facts?.release,
      steps,
    };
  });
  const release = nodes.find((n) => n.release)?.release ?? 'debian12';
  const node0 = resolveNodes(rb)[0];
  const facts = assumedFacts(release);
  const spec = configureSpec({
    runbook: rb,
    node: node0,
    cluster: resolveNodes(rb),
    facts,
    sources: offlineSources(rb, { families: [facts.family] }),
    clusterFacts: {},
  });
  // The document travels (wiki, ticket): no path of this machine in it. Inside the working
  // directory the path as typed from there; otherwise the file name, which sits next to the document.
  const rel = relative(process.cwd(), runbookPath) || basename(runbookPath);
  const runbookFile = rel.startsWith('..') || isAbsolute(rel) ? basename(runbookPath) : rel;
  return render('handover.md.njk', {
    rb,
    nodes,
    lastVerify: lastVerify ?? null,
    L: layout(rb),
    toolVersion,
    generatedAt: new Date().toISOString(),
    runbookFile,
    flavorTitle: rb.build.flavor === 'openresty' ? 'OpenResty' : 'nginx',
    nginxCore: nginxCoreVersion(rb.build.flavor, rb.build.version),
    keepalivedVersion: rb.keepalived.install === 'source' ? rb.keepalived.version : 'distribution package',
    modules: selectedModules(rb),
    // What the last apply really built (resolved commits); before any apply, what the runbook pins.
    sources: lastRun?.sources ?? Object.values(offlineSources(rb)),
    configureArgs: spec.args.join(' \\\n  '),
    secretsFile: join(dirname(runbookFile), basename(secretsPathFor(runbookPath, rb.name))),
    certNames: certificateNames(rb.site),
    acmeLabel: rb.site.tls?.acme ? acmeDirectoryLabel(rb.site.tls.acme.directory) : '',
    acmeUrl: rb.site.tls?.acme ? acmeDirectoryUrl(rb.site.tls.acme.directory) : '',
    acmeUnit: ACME_UNIT,
    ticketUnit: TICKET_UNIT,
  });
}

export function writeHandover(runbookPath: string, rb: Runbook, toolVersion: string): string {
  const file = docsPathFor(runbookPath, rb);
  writeFileAtomic(file, renderHandover(runbookPath, rb, toolVersion));
  return file;
}
