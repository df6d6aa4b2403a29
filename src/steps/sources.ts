import { emptyPlan, type Step, type StepPlan } from '../engine/types.js';
import { RunFailedError } from '../errors.js';
import { shq } from '../shell.js';
import { layout, probe, requiredSources } from './common.js';

const marker = (dir: string) => `${dir}/.ha-setup-source`;

export const sourcesStep: Step = {
  id: 'sources',
  title: 'Upload and unpack verified sources',
  appliesTo: 'all',
  dependsOn: [],
  plan(pc): StepPlan {
    const plan = emptyPlan();
    const L = layout(pc.runbook);
    for (const ref of requiredSources(pc.runbook, pc.facts.family)) {
      const src = pc.sources[ref.id];
      if (!src) throw new RunFailedError(`source ${ref.id} ${ref.version} was not prepared on the control machine`);
      // git sources arrive as plain tar (deterministic per commit), tarballs as published.
      const remote = `${L.downloads}/${ref.id}-${ref.version}${src.path.endsWith('.tar') ? '.tar' : '.tar.gz'}`;
      const dir = L.srcDir(ref.id);
      plan.uploads.push({ local: src.path, remote, sha256: src.sha256, mode: 0o644 });
      // Unpacked under a name of our own (--strip-components) so paths never depend on the tarball's top directory.
      plan.commands.push(`rm -rf ${shq(dir)} && mkdir -p ${shq(dir)} && tar -xf ${shq(remote)} -C ${shq(dir)} --strip-components=1 --no-same-owner && echo ${shq(src.sha256)} > ${shq(marker(dir))}`);
      plan.notes.push(src.git
        ? `${ref.id} ${ref.version} git ${src.git.url} ${src.git.ref} = commit ${src.git.commit}`
        : `${ref.id} ${ref.version} sha256 ${src.sha256}`);
    }
    return plan;
  },
  async check(ctx) {
    const L = layout(ctx.runbook);
    const tests = requiredSources(ctx.runbook, ctx.facts.family).map((ref) =>
      `[ "$(cat ${shq(marker(L.srcDir(ref.id)))} 2>/dev/null)" = ${shq(ctx.sources[ref.id]?.sha256 ?? 'missing')} ]`);
    return probe(ctx, tests.join(' && ') || 'true');
  },
};
