import { fileHoldsLine } from '../engine/checks.js';
import { createHash } from 'node:crypto';
import { emptyPlan, type PlanContext, type Step, type StepPlan } from '../engine/types.js';
import { shq } from '../shell.js';
import { configureSpec, jobs } from './configure.js';

/** Identifies one configured build: a change of arguments is a different build. */
export function buildId(pc: PlanContext): string {
  return createHash('sha256')
    .update(JSON.stringify(configureSpec(pc)))
    .digest('hex')
    .slice(0, 16);
}

const builtMarker = (dir: string) => `${dir}/.ha-setup-built`;

export const buildStep: Step = {
  id: 'build',
  title: 'Compile (make)',
  appliesTo: 'all',
  dependsOn: ['configure'],
  compiles: true,
  plan(pc): StepPlan {
    const plan = emptyPlan();
    const { dir } = configureSpec(pc);
    plan.commands.push(
      `cd ${shq(dir)} && rm -f ${shq(builtMarker(dir))} && make -j${jobs(pc)} && ` +
        `echo ${shq(buildId(pc))} > ${shq(builtMarker(dir))}`,
    );
    return plan;
  },
  check(ctx) {
    const { dir } = configureSpec(ctx);
    return fileHoldsLine(builtMarker(dir), buildId(ctx));
  },
};
