import type { Command } from 'commander';
import { runCheck, runChecks, stepCheck } from '../engine/checks.js';
import { decide } from '../engine/decide.js';
import { appliesTo } from '../engine/nodes.js';
import chalk from 'chalk';
import {
  offlinePlan,
  offlineSources,
  planJson,
  renderPlanReview,
  type PlannedStep,
  type StepStatus,
} from '../engine/plan-view.js';
import { limitToIndexes } from './apply.js';
import { resolveNodes } from '../engine/nodes.js';
import { parseJournal } from '../engine/journal.js';
import { loadSecrets, newRunId, openSession } from '../engine/session.js';
import { ConnectError } from '../engine/transport.js';
import type { PlanContext } from '../engine/types.js';
import { InvalidInputError, RunbookInvalidError } from '../errors.js';
import { releaseProblems, RELEASES } from '../runbook/release-rules.js';
import { loadRunbook } from '../runbook/io.js';
import { readSiteFiles } from '../runbook/site-files.js';
import { dirname } from 'node:path';
import { INSTALL_STEPS } from '../steps/index.js';
import { terminalConfirm, type CliContext } from './context.js';

// chalk is off without a terminal, with --no-color and with NO_COLOR.
const statusColour = (label: StepStatus['label'], text: string) =>
  label === 'done' ? chalk.dim(text) : label === 'will re-run' ? chalk.yellow(text) : chalk.cyan(text);

export function registerPlan(program: Command, ctx: CliContext): void {
  program
    .command('plan')
    .description('dry run: per node, each step with its status and the exact commands and files; changes nothing')
    .argument('<runbook>', 'runbook file')
    .option('--offline', 'never connect: assume a fresh host of --os')
    .option('--os <release>', `with --offline: ${RELEASES.join(', ')} (default debian12)`)
    .option('--contents', 'print the full content of every file (default: the key values of each)')
    .option('--limit <nodes>', 'these nodes only (names or addresses, comma-separated)')
    .option('--json', 'machine-readable plan on stdout')
    .option('--accept-new-host-keys', 'trust and record host keys not seen before')
    .action(
      async (
        file: string,
        opts: {
          offline?: boolean;
          os?: string;
          contents?: boolean;
          limit?: string;
          json?: boolean;
          acceptNewHostKeys?: boolean;
        },
      ) => {
        // --os describes hosts that are not asked; connected, the hosts say what they are.
        if (opts.os !== undefined && !opts.offline)
          throw new InvalidInputError('--os only applies with --offline (connected, each node reports its own OS)', [
            'ha-setup plan <runbook> --offline --os el9',
          ]);
        const { path, runbook } = loadRunbook(file);
        const only = opts.limit ? limitToIndexes(runbook, opts.limit) : undefined;
        const show = (nodes: Array<{ pc: PlanContext; steps: PlannedStep[] }>, osSource: 'observed' | 'assumed') => {
          if (opts.json) ctx.print(JSON.stringify(planJson(nodes, osSource, file), null, 2));
          else
            ctx.print(
              renderPlanReview(nodes, {
                fileContents: opts.contents === true,
                osSource,
                runbookPath: file,
                colour: statusColour,
                width: process.stdout.columns || 120,
              }),
            );
        };
        if (opts.offline) {
          const os = opts.os ?? 'debian12';
          if (!(RELEASES as readonly string[]).includes(os))
            throw new InvalidInputError(`--os ${os}: choose one of ${RELEASES.join(', ')}`);
          // What apply's preflight would refuse on such nodes is refused here too.
          const problems = releaseProblems(runbook, os);
          if (problems.length > 0) throw new RunbookInvalidError(`${file} on ${os}`, problems);
          const wanted = only
            ? new Set(
                resolveNodes(runbook)
                  .filter((n) => only.includes(n.index))
                  .map((n) => n.name),
              )
            : undefined;
          show(
            offlinePlan(runbook, INSTALL_STEPS, os, readSiteFiles(runbook, dirname(path))).filter(
              (n) => !wanted || wanted.has(n.pc.node.name),
            ),
            'assumed',
          );
          ctx.result = 0;
          return;
        }
        const secrets = loadSecrets(runbook, path);
        const handles = await openSession(
          {
            runbookPath: path,
            runbook,
            acceptNewHostKeys: opts.acceptNewHostKeys === true,
            confirmHostKey: terminalConfirm(ctx),
            runId: newRunId(),
            only,
          },
          secrets,
        ).catch((e: unknown) => {
          // A review does not need the hosts: say how to make one without them.
          if (e instanceof ConnectError && e.unreachable)
            e.details.push(
              `to review the plan without contacting the hosts: ` +
                `ha-setup plan ${file} --offline --os <${RELEASES.join('|')}>`,
            );
          throw e;
        });
        try {
          const sources = offlineSources(runbook, { useCache: true, families: handles.map((h) => h.facts.family) });
          const siteFiles = readSiteFiles(runbook, dirname(path));
          const clusterFacts = Object.fromEntries(handles.map((h) => [h.node.name, h.facts]));
          const nodes = [];
          for (const h of handles) {
            const journal = parseJournal(h.facts.journal, runbook.name);
            const rerun = new Set<string>();
            const steps: PlannedStep[] = [];
            const pc = {
              runbook,
              node: h.node,
              cluster: handles.map((x) => x.node),
              facts: h.facts,
              sources,
              clusterFacts,
              siteFiles,
            };
            const mine = INSTALL_STEPS.filter((s) => appliesTo(s, h.node)).map((step) => ({
              step,
              plan: step.plan(pc),
            }));
            // The checks the journal leaves to the host, in one round trip (a later run only adds re-runs).
            const checked = await runChecks(
              h.t,
              mine
                .filter(({ step, plan }) => decide(step, plan, journal.steps[step.id], rerun).action === 'check')
                .map(({ step, plan }) => stepCheck(step, { ...pc, plan, secrets })),
            );
            for (const { step, plan } of mine) {
              let d = decide(step, plan, journal.steps[step.id], rerun);
              if (d.action === 'check') {
                d =
                  (checked.get(step.id) ?? (await runCheck(h.t, stepCheck(step, { ...pc, plan, secrets }))))
                    ? { action: 'skip', reason: 'done' }
                    : { action: 'run', reason: 'the host no longer matches' };
              }
              if (d.action === 'skip') steps.push({ step, plan, status: { label: 'done' } });
              else {
                rerun.add(step.id);
                const entry = journal.steps[step.id];
                steps.push({
                  step,
                  plan,
                  status: entry ? { label: 'will re-run', why: d.reason } : { label: 'will run' },
                });
              }
            }
            nodes.push({ pc, steps });
          }
          show(nodes, 'observed');
          ctx.result = 0;
        } finally {
          await Promise.all(handles.map((h) => h.t.close()));
        }
      },
    );
}
