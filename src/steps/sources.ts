import { fileHoldsLine } from '../engine/checks.js';
import { emptyPlan, type PlanContext, type Step, type StepPlan } from '../engine/types.js';
import { RunFailedError } from '../errors.js';
import { shq } from '../shell.js';
import { layout, requiredSources } from './common.js';

const marker = (dir: string) => `${dir}/.ha-setup-source`;

/**
 * Two steps from one recipe: nginx's sources (core and modules) and keepalived's, so a module change
 * never rebuilds keepalived and a keepalived upgrade never rebuilds nginx.
 */
function sourcesStepFor(id: string, title: string, wanted: (sourceId: string) => boolean): Step {
  const refs = (pc: PlanContext) => requiredSources(pc.runbook, pc.facts.family).filter((r) => wanted(r.id));
  return {
    id,
    title,
    appliesTo: 'all',
    dependsOn: [],
    plan: (pc) => planFor(pc, refs(pc)),
    check(ctx) {
      const L = layout(ctx.runbook);
      const tests = refs(ctx).map((ref) =>
        fileHoldsLine(marker(L.srcDir(ref.id)), ctx.sources[ref.id]?.sha256 ?? 'missing'),
      );
      return tests.join(' && ') || 'true';
    },
  };
}

export const sourcesStep = sourcesStepFor(
  'sources',
  'Upload and unpack verified nginx sources',
  (id) => id !== 'keepalived',
);
export const keepalivedSourcesStep = sourcesStepFor(
  'keepalived-sources',
  'Upload and unpack the verified keepalived source',
  (id) => id === 'keepalived',
);

function planFor(pc: PlanContext, wanted: Array<{ id: string; version: string }>): StepPlan {
  const plan = emptyPlan();
  const L = layout(pc.runbook);
  for (const ref of wanted) {
    const src = pc.sources[ref.id];
    if (!src) throw new RunFailedError(`source ${ref.id} ${ref.version} was not prepared on the control machine`);
    // git sources arrive as plain tar (deterministic per commit), tarballs as published.
    const remote = `${L.downloads}/${ref.id}-${ref.version}${src.path.endsWith('.tar') ? '.tar' : '.tar.gz'}`;
    const dir = L.srcDir(ref.id);
    plan.uploads.push({ local: src.path, remote, sha256: src.sha256, mode: 0o644 });
    // Unpacked under a name of our own (--strip-components) so paths never depend on the tarball's top directory.
    plan.commands.push(
      `rm -rf ${shq(dir)} && mkdir -p ${shq(dir)} && tar -xf ${shq(remote)} -C ${shq(dir)} --strip-components=1 ` +
        `--no-same-owner && echo ${shq(src.sha256)} > ${shq(marker(dir))}`,
    );
    plan.notes.push(
      src.git
        ? `${ref.id} ${ref.version} git ${src.git.url} ${src.git.ref} = commit ${src.git.commit}`
        : `${ref.id} ${ref.version} sha256 ${src.sha256}`,
    );
  }
  return plan;
}
