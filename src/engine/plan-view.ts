import type { Runbook } from '../runbook/schema.js';
import { requiredSources } from '../steps/common.js';
import { mirrorFileName } from '../sources/mirror.js';
import { gitArchiveName, sourceCacheDir, sourceSpec } from '../sources/prepare.js';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { assumedFacts, type Facts } from './facts.js';
import { resolveNodes, appliesTo } from './nodes.js';
import type { LocalSource, PlanContext, ResolvedNode, Step, StepPlan } from './types.js';

export type StepStatus = { label: 'done' | 'will run' | 'will re-run'; why?: string };

export interface PlannedStep {
  step: Step;
  plan: StepPlan;
  status: StepStatus;
}

/** Sources as the plan sees them without fetching anything: pinned checksums only. */
export function offlineSources(rb: Runbook, opts: { useCache?: boolean; families?: string[] } = {}): Record<string, LocalSource> {
  const out: Record<string, LocalSource> = {};
  const refs = [requiredSources(rb), ...(opts.families ?? []).map((f) => requiredSources(rb, f))].flat();
  for (const ref of refs) {
    const spec = sourceSpec(rb, ref);
    if (spec.kind === 'git') {
      const commit = spec.commit ?? 'unpinned';
      // The archive of a pinned commit is in the cache after the first apply: its checksum is what
      // the nodes recorded, so a connected plan compares like with like.
      const cached = join(sourceCacheDir(rb), gitArchiveName(ref, commit));
      const sha256 = opts.useCache && spec.commit && existsSync(cached) ? createHash('sha256').update(readFileSync(cached)).digest('hex') : `git:${commit}`;
      out[ref.id] = {
        id: ref.id, version: ref.version, path: `(control machine)/${gitArchiveName(ref, commit)}`, sha256,
        git: { url: spec.url, fetchedFrom: spec.fetchFrom, ref: spec.ref, commit },
      };
    } else {
      out[ref.id] = { id: ref.id, version: ref.version, path: `(control machine)/${mirrorFileName(ref)}`, sha256: spec.sha256 ?? 'unpinned' };
    }
  }
  return out;
}

export function planContexts(rb: Runbook, factsFor: (n: ResolvedNode) => Facts, sources: Record<string, LocalSource>, siteFiles: Record<string, string> = {}): PlanContext[] {
  const nodes = resolveNodes(rb);
  const clusterFacts = Object.fromEntries(nodes.map((n) => [n.name, factsFor(n)]));
  return nodes.map((node) => ({ runbook: rb, node, cluster: nodes, facts: clusterFacts[node.name], sources, clusterFacts, siteFiles }));
}

export function offlinePlan(rb: Runbook, steps: Step[], release = 'debian12', siteFiles: Record<string, string> = {}): Array<{ pc: PlanContext; steps: PlannedStep[] }> {
  return planContexts(rb, () => assumedFacts(release), offlineSources(rb, { families: [assumedFacts(release).family] }), siteFiles).map((pc) => ({
    pc,
    steps: steps.filter((s) => appliesTo(s, pc.node)).map((step) => ({ step, plan: step.plan(pc), status: { label: 'will run' as const } })),
  }));
}

const indent = (text: string, prefix: string) => text.split('\n').map((l) => (l === '' ? prefix.trimEnd() : prefix + l)).join('\n');

/** Text form of a plan: used by `ha-setup plan` and by the golden-file tests. */
export function renderPlanText(nodes: Array<{ pc: PlanContext; steps: PlannedStep[] }>, opts: { fileContents: boolean }): string {
  const out: string[] = [];
  for (const { pc, steps } of nodes) {
    out.push(`== ${pc.node.name} (${pc.node.host}, ${pc.node.role}, priority ${pc.node.priority}, ${pc.facts.release})`);
    for (const { step, plan, status } of steps) {
      out.push(`-- [${status.label}] ${step.id}: ${step.title}${status.why ? ` (because ${status.why})` : ''}`);
      for (const n of plan.notes) out.push(`   # ${n}`);
      for (const u of plan.uploads) out.push(`   upload ${u.remote} (sha256 ${u.sha256})`);
      for (const f of plan.files) {
        out.push(`   file ${f.path} (mode ${f.mode.toString(8)}${f.owner ? `, owner ${f.owner}` : ''})`);
        if (opts.fileContents) out.push(indent(f.content.trimEnd(), '   | '));
      }
      for (const c of plan.commands) out.push(indent(c, '   $ '));
    }
    out.push('');
  }
  return out.join('\n');
}
