import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decide, fingerprintPlan } from '../../src/engine/decide.js';
import { executeSteps } from '../../src/engine/executor.js';
import { assumedFacts } from '../../src/engine/facts.js';
import { resolveNodes } from '../../src/engine/nodes.js';
import type { NodeHandle } from '../../src/engine/session.js';
import type { ExecOptions, ExecResult, Transport, WriteFileOptions, WriteResult } from '../../src/engine/transport.js';
import { emptyPlan, type Step } from '../../src/engine/types.js';
import { loadRunbook } from '../../src/runbook/io.js';

// A fake host for ordering and dependency logic only: it keeps a journal file and records commands.
class FakeTransport implements Transport {
  files = new Map<string, string>();
  commands: string[] = [];
  failOn?: string;
  constructor(readonly label: string) {}
  async exec(script: string, opts: ExecOptions = {}): Promise<ExecResult> {
    if (script.includes('/var/lib/ha-setup/journal.json.tmp')) {
      this.files.set('/var/lib/ha-setup/journal.json', opts.stdin ?? '');
      return { code: 0, stdout: '', stderr: '' };
    }
    this.commands.push(script);
    // Checks here are the scripts `true` and `false`, alone or batched (one status line each).
    if (script.includes('ha-setup-check')) {
      const lines = [...script.matchAll(/\(\n(.*?)\n\) [^\n]*echo 'ha-setup-check (\S+)' \$\?/g)].map(
        ([, check, id]) => `ha-setup-check ${id} ${check === 'true' ? 0 : 1}`,
      );
      return { code: 0, stdout: `${lines.join('\n')}\n`, stderr: '' };
    }
    if (script === 'false') return { code: 1, stdout: '', stderr: '' };
    if (this.failOn && script.includes(this.failOn)) return { code: 7, stdout: 'boom\n', stderr: 'it broke' };
    return { code: 0, stdout: '', stderr: '' };
  }
  async writeFile(path: string, content: string | Buffer, _o: WriteFileOptions): Promise<WriteResult> {
    this.files.set(path, String(content));
    return { changed: true };
  }
  async upload(): Promise<WriteResult> {
    return { changed: true };
  }
  async close(): Promise<void> {}
}

const step = (id: string, dependsOn: string[] = [], extra: Partial<Step> = {}): Step => ({
  id,
  title: id,
  appliesTo: 'all',
  dependsOn,
  plan: () => ({ ...emptyPlan(), commands: [`do ${id}`] }),
  check: () => 'true',
  ...extra,
});

function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'ha-setup-engine-'));
  const { runbook } = loadRunbook(join(import.meta.dirname, '..', 'fixtures', 'valid.yaml'));
  const handles: NodeHandle[] = resolveNodes(runbook).map((node) => ({
    node,
    t: new FakeTransport(node.name),
    facts: assumedFacts('debian12'),
    logPath: join(dir, `${node.name}.log`),
  }));
  const run = async (steps: Step[], rb = runbook) => {
    for (const h of handles)
      h.facts = { ...h.facts, journal: (h.t as FakeTransport).files.get('/var/lib/ha-setup/journal.json') ?? '' };
    return executeSteps({
      runbook: rb,
      runbookPath: join(dir, 'rb.yaml'),
      handles,
      steps,
      sources: {},
      secrets: {},
      concurrency: 2,
      renderer: 'silent',
      runId: 'test',
    });
  };
  return { runbook, handles, run, dir, fake: (i: number) => handles[i].t as FakeTransport };
}

const ran = (outcome: { steps: Array<{ id: string; action: string }> }) =>
  outcome.steps.filter((s) => s.action === 'ran').map((s) => s.id);

describe('engine ordering and dependencies (fake transport)', () => {
  const steps = [step('a'), step('b', ['a']), step('c', ['b']), step('d')];

  it('runs steps in array order on every node, then skips them all', async () => {
    const { run, fake } = setup();
    const first = await run(steps);
    expect(first.map(ran)).toEqual([
      ['a', 'b', 'c', 'd'],
      ['a', 'b', 'c', 'd'],
    ]);
    expect(fake(0).commands).toEqual(['do a', 'do b', 'do c', 'do d']);
    const second = await run(steps);
    expect(second.map(ran)).toEqual([[], []]);
  });

  it('a changed input re-runs that step and its dependents, nothing else', async () => {
    const { run, runbook } = setup();
    const s = [
      step('a'),
      step('b', ['a']),
      step('c', ['b']),
      step('d'),
      step('configure', [], {
        plan: (pc) => ({ ...emptyPlan(), commands: [`configure ${pc.runbook.build.configureArgs.join(' ')}`] }),
      }),
      step('build', ['configure']),
      step('install', ['build']),
      step('restart', ['install']),
    ];
    await run(s);
    const changed = { ...runbook, build: { ...runbook.build, configureArgs: ['--with-http_sub_module'] } };
    const again = await run(s, changed);
    expect(again.map(ran)).toEqual([
      ['configure', 'build', 'install', 'restart'],
      ['configure', 'build', 'install', 'restart'],
    ]);
  });

  it('a failed check re-runs the step even with a matching fingerprint', async () => {
    const { run } = setup();
    await run(steps);
    const again = await run([step('a', [], { check: () => 'false' }), step('b', ['a']), step('c', ['b']), step('d')]);
    expect(again.map(ran)).toEqual([
      ['a', 'b', 'c'],
      ['a', 'b', 'c'],
    ]);
  });

  it('a re-run that finds everything done asks each host once for all checks, and runs nothing', async () => {
    const { run, fake } = setup();
    await run(steps);
    for (const i of [0, 1]) fake(i).commands = [];
    const again = await run(steps);
    expect(again.map(ran)).toEqual([[], []]);
    for (const i of [0, 1]) {
      expect(fake(i).commands).toHaveLength(1);
      expect(fake(i).commands[0].match(/ha-setup-check/g)).toHaveLength(steps.length);
    }
  });

  it('once a step ran on a node, the later checks look at the host again', async () => {
    const { run, fake } = setup();
    await run(steps);
    for (const i of [0, 1]) fake(i).commands = [];
    const again = await run([step('a', [], { check: () => 'false' }), step('b'), step('c'), step('d')]);
    expect(again.map(ran)).toEqual([['a'], ['a']]);
    // One batch (a, b, c, d), a's command, then one more batch for the checks after it (b, c, d).
    const batches = fake(0).commands.filter((c) => c.includes('ha-setup-check'));
    const ids = (batch: string) => [...batch.matchAll(/echo 'ha-setup-check (\S+)'/g)].map((m) => m[1]);
    expect(batches.map(ids)).toEqual([
      ['a', 'b', 'c', 'd'],
      ['b', 'c', 'd'],
    ]);
    expect(fake(0).commands.filter((c) => !c.includes('ha-setup-check'))).toEqual(['do a']);
  });

  it("a run where no step runs still leaves the local mirror of each node's journal (what docs lists)", async () => {
    const { run, runbook, handles, dir } = setup();
    await run(steps);
    const mirror = join(dir, 'records', runbook.name, `${handles[0].node.name}.journal.json`);
    rmSync(join(dir, 'records'), { recursive: true });
    const again = await run(steps);
    expect(again.map(ran)).toEqual([[], []]);
    expect(Object.keys(JSON.parse(readFileSync(mirror, 'utf8')).steps)).toEqual(['a', 'b', 'c', 'd']);
  });

  it('a failing node stops its own later steps; the other node finishes', async () => {
    const { run, fake } = setup();
    fake(1).failOn = 'do b';
    const out = await run(steps);
    expect(out[0].ok).toBe(true);
    expect(ran(out[0])).toEqual(['a', 'b', 'c', 'd']);
    expect(out[1].ok).toBe(false);
    expect(out[1].steps.map((s) => `${s.id}:${s.action}`)).toEqual([
      'a:ran',
      'b:failed',
      'c:not reached',
      'd:not reached',
    ]);
    const report = out[1].failure!.report('rb.yaml').join('\n');
    expect(report).toMatch(/step:\s+b/);
    expect(report).toMatch(/exit code: 7/);
    expect(report).toMatch(/\| it broke/);
    expect(report).toMatch(/run `ha-setup apply rb.yaml` again; it resumes/);
    // After the fix, the failed step and the rest run; the done one does not.
    fake(1).failOn = undefined;
    const again = await run(steps);
    expect(again.map(ran)).toEqual([[], ['b', 'c', 'd']]);
  });

  it('a step interrupted half-way (journal says running) is re-run', () => {
    const s = step('x');
    const plan = s.plan({} as never);
    expect(
      decide(s, plan, { fingerprint: fingerprintPlan(plan), status: 'running', startedAt: '' }, new Set()),
    ).toEqual({ action: 'run', reason: 'it was interrupted' });
    expect(decide(s, plan, { fingerprint: fingerprintPlan(plan), status: 'done', startedAt: '' }, new Set())).toEqual({
      action: 'check',
      reason: 'fingerprint matches',
    });
    expect(
      decide(s, plan, { fingerprint: fingerprintPlan(plan), status: 'done', startedAt: '' }, new Set(['y'])).action,
    ).toBe('check');
    expect(
      decide(
        step('z', ['y']),
        plan,
        { fingerprint: fingerprintPlan(plan), status: 'done', startedAt: '' },
        new Set(['y']),
      ),
    ).toEqual({ action: 'run', reason: 'y re-ran' });
  });

  it('master-only and backup-only steps run where they apply', async () => {
    const { run } = setup();
    const out = await run([
      step('all'),
      step('m', [], { appliesTo: 'master' }),
      step('b', [], { appliesTo: 'backups' }),
    ]);
    expect(out.map(ran)).toEqual([
      ['all', 'm'],
      ['all', 'b'],
    ]);
  });
});

describe('serving cluster: disruptive steps are held back for the roll', () => {
  it(
    'stops each node before the first disruptive step that would run; ' +
      'a second call for one node carries on with what ran',
    async () => {
      const { runbook, handles, run } = setup();
      const steps = [
        step('a'),
        step('b', ['a']),
        step('restart', ['b'], { disruptive: true }),
        step('after', ['restart']),
      ];
      await run(steps);
      // Change a's input: b must re-run (dependency), and the disruptive restart too, but not yet.
      const changed = [step('a', [], { plan: () => ({ ...emptyPlan(), commands: ['do a v2'] }) }), ...steps.slice(1)];
      const rerun = new Map<string, Set<string>>();
      const journals = new Map();
      const base = {
        runbook,
        runbookPath: join(mkdtempSync(join(tmpdir(), 'ha-setup-roll-')), 'rb.yaml'),
        sources: {},
        secrets: {},
        concurrency: 2,
        renderer: 'silent' as const,
        runId: 't2',
      };
      for (const h of handles)
        h.facts = { ...h.facts, journal: (h.t as FakeTransport).files.get('/var/lib/ha-setup/journal.json') ?? '' };
      const first = await executeSteps({
        ...base,
        handles,
        steps: changed,
        stopBeforeDisruptive: true,
        rerun,
        journals,
      });
      expect(first.map((o) => [ran(o), o.pendingDisruptive])).toEqual([
        [['a', 'b'], 'restart'],
        [['a', 'b'], 'restart'],
      ]);
      const [second] = await executeSteps({ ...base, handles: [handles[1]], steps: changed, rerun, journals });
      // a and b are not run again (journal carried over); restart runs because b ran; after because restart did.
      expect(ran(second)).toEqual(['restart', 'after']);
    },
  );

  it('rolls the nodes that do not hold the VIP first, lowest priority first, the holder last', async () => {
    const { rollOrder } = await import('../../src/orchestrate/roll.js');
    const nodes = [
      { name: 'n1', priority: 100 },
      { name: 'n2', priority: 90 },
      { name: 'n3', priority: 80 },
    ];
    expect(rollOrder(nodes, 'n1')).toEqual(['n3', 'n2', 'n1']);
    expect(rollOrder(nodes, 'n2')).toEqual(['n3', 'n1', 'n2']);
    expect(rollOrder(nodes.slice(1), 'n1')).toEqual(['n3', 'n2']);
    expect(rollOrder(nodes, undefined)).toEqual(['n3', 'n2', 'n1']);
  });

  it('marks the steps that interrupt traffic on a serving node, and only those', async () => {
    const { INSTALL_STEPS } = await import('../../src/steps/index.js');
    const { isDisruptive } = await import('../../src/engine/executor.js');
    const { runbook } = loadRunbook(join(import.meta.dirname, '..', 'fixtures', 'valid.yaml'));
    const [node] = resolveNodes(runbook);
    const pc = { runbook, node, cluster: [node], facts: assumedFacts('debian12'), sources: {}, clusterFacts: {} };
    expect(INSTALL_STEPS.filter((s) => isDisruptive(s, pc)).map((s) => s.id)).toEqual([
      'install',
      'nginx-service',
      'logging',
      'start',
    ]);
    const pkg = { ...pc, runbook: { ...runbook, keepalived: { ...runbook.keepalived, install: 'package' as const } } };
    expect(INSTALL_STEPS.filter((s) => isDisruptive(s, pkg)).map((s) => s.id)).toContain('keepalived-build');
  });
});
