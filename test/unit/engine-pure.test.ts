import { describe, expect, it } from 'vitest';
import { decide, describeChange, digestPlan, fingerprintPlan } from '../../src/engine/decide.js';
import { assumedFacts, factsScript, parseFacts, parseLiveVrrp } from '../../src/engine/facts.js';
import { slots } from '../../src/engine/executor.js';
import { parseJournal } from '../../src/engine/journal.js';
import type { Step, StepPlan } from '../../src/engine/types.js';
import { gatePassed, rollOrder } from '../../src/orchestrate/roll.js';
import { vipProbeVerdict, vrrpIdentityProblems } from '../../src/steps/preflight.js';
import { resolveNodes } from '../../src/engine/nodes.js';
import { batchedChecksScript, parseBatchedChecks } from '../../src/engine/checks.js';
import { execFileSync } from 'node:child_process';
import { loadRunbook } from '../../src/runbook/io.js';
import { join } from 'node:path';
import { pollUntil, sleep } from '../../src/poll.js';

// The engine's pure parts, which otherwise run only on the lab: facts parsing, the journal, why a
// step re-runs, the roll's health gate and order, and waiting.

const b64 = (s: string) => Buffer.from(s).toString('base64');

describe('facts', () => {
  it('parses what the facts script prints: OS family and release, interfaces, firewall, versions, journal', () => {
    const f = parseFacts(
      [
        'os_id=rocky',
        'os_version=9.3',
        'os_like=rhel centos fedora',
        'arch=x86_64',
        'cores=4',
        'mem_kb=8000000',
        'free_kb=2097152',
        'ifaces=lo=127.0.0.1/8 eth0=10.0.0.11/24 eth0=10.0.0.100/24 ',
        'links=lo eth0 eth1 ',
        'macs=52:54:00:AB:cd:01 52:54:00:ab:cd:02 ',
        'systemd=1',
        'selinux=Enforcing',
        'firewall=firewalld',
        'firewall_chain=',
        'pm=dnf',
        `nginx_v=${b64('nginx version: openresty/1.27.1.2\nbuilt by gcc')}`,
        `keepalived_v=${b64('Keepalived v2.3.4 (01/01,2026)')}`,
        'hostname=gw1',
        'epoch_ms=1764633600000',
        `journal=${b64('{"version":1}')}`,
      ].join('\n'),
    );
    expect(f).toMatchObject({
      family: 'el',
      release: 'el9',
      packageManager: 'dnf',
      cores: 4,
      memoryMb: 7813,
      freeDiskMb: 2048,
      systemd: true,
      firewall: 'firewalld',
      interfaces: { lo: ['127.0.0.1/8'], eth0: ['10.0.0.11/24', '10.0.0.100/24'], eth1: [] },
      macs: ['52:54:00:ab:cd:01', '52:54:00:ab:cd:02'],
      nginxVersionOutput: 'nginx version: openresty/1.27.1.2\nbuilt by gcc',
      keepalivedVersionOutput: 'Keepalived v2.3.4 (01/01,2026)',
      journal: '{"version":1}',
    });
    const deb = parseFacts(
      `os_id=debian\nos_version=12\npm=apt\nnginx_v=\nkeepalived_v=${b64('bash: keepalived: command not found')}`,
    );
    expect(deb).toMatchObject({
      family: 'debian',
      release: 'debian12',
      nginxVersionOutput: '',
      keepalivedVersionOutput: '',
    });
  });

  it('the facts script asks the real binaries (OpenResty keeps nginx under <prefix>/nginx)', () => {
    expect(
      factsScript(
        '/usr/local/src/ha-setup',
        '/usr/local/openresty/nginx/sbin/nginx',
        '/usr/local/keepalived/sbin/keepalived',
        '/etc/keepalived/keepalived.conf',
      ),
    ).toContain('/usr/local/openresty/nginx/sbin/nginx -V');
  });
});

describe('journal', () => {
  it('parses a journal, and starts afresh on anything else (a password line in front of it included)', () => {
    expect(parseJournal('{"version":1,"runbook":"x","steps":{"a":{"status":"done"}}}', 'x').steps).toEqual({
      a: { status: 'done' },
    });
    expect(parseJournal('hunter2\n{"version":1,"runbook":"x","steps":{}}', 'x')).toEqual({
      version: 1,
      runbook: 'x',
      steps: {},
    });
    expect(parseJournal('', 'y')).toEqual({ version: 1, runbook: 'y', steps: {} });
    expect(parseJournal('{"version":2}', 'y').steps).toEqual({});
  });
});

describe('why a step runs', () => {
  const plan = (cmd: string, content = 'a'): StepPlan => ({
    commands: [cmd],
    files: [{ path: '/etc/x', content, mode: 0o644 }],
    uploads: [],
    notes: [],
  });
  const step = (dependsOn: string[] = []): Step => ({
    id: 's',
    title: 's',
    appliesTo: 'all',
    dependsOn,
    plan: () => plan('x'),
    check: async () => true,
  });
  const entry = (p: StepPlan, extra = {}) => ({
    fingerprint: fingerprintPlan(p),
    status: 'done' as const,
    startedAt: '',
    digest: digestPlan(p),
    ...extra,
  });

  it('names what changed', () => {
    expect(describeChange(digestPlan(plan('a')), digestPlan(plan('b')))).toBe('commands changed');
    expect(describeChange(digestPlan(plan('a', 'x')), digestPlan(plan('a', 'y')))).toBe('/etc/x changed');
    expect(describeChange(undefined, digestPlan(plan('a')))).toBe('its input changed');
  });

  it(
    'checks the host only when the fingerprint matches; a dependency that ran, ' +
      'or one the step did not have, runs it',
    () => {
      const p = plan('a');
      expect(decide(step(), p, entry(p), new Set())).toEqual({ action: 'check', reason: 'fingerprint matches' });
      expect(decide(step(), plan('b'), entry(p), new Set())).toEqual({ action: 'run', reason: 'commands changed' });
      expect(decide(step(['install']), p, entry(p), new Set(['install']))).toEqual({
        action: 'run',
        reason: 'install re-ran',
      });
      expect(decide(step(['install']), p, entry(p, { dependsOn: [] }), new Set())).toEqual({
        action: 'run',
        reason: 'it now depends on install',
      });
      // A journal from before dependencies were recorded: no mass re-run.
      expect(decide(step(['install']), p, entry(p), new Set()).action).toBe('check');
      expect(decide(step(), p, { ...entry(p), status: 'running' }, new Set())).toEqual({
        action: 'run',
        reason: 'it was interrupted',
      });
    },
  );
});

describe('roll', () => {
  it("health gate: nginx answers with this node's name and keepalived is BACKUP or MASTER", () => {
    expect(gatePassed('node1', 'nginx: node1\nkeepalived: active\nvrrp: BACKUP\n')).toBe(true);
    expect(gatePassed('node1', 'nginx: node1\nkeepalived: active\nvrrp: MASTER')).toBe(true);
    expect(gatePassed('node1', 'nginx: node11\nkeepalived: active\nvrrp: MASTER')).toBe(false);
    expect(gatePassed('node1', 'nginx: curl: (7) Failed to connect\nkeepalived: active\nvrrp: BACKUP')).toBe(false);
    expect(gatePassed('node1', 'nginx: node1\nkeepalived: inactive\nvrrp: BACKUP')).toBe(false);
    expect(gatePassed('node1', 'nginx: node1\nkeepalived: active\nvrrp: FAULT')).toBe(false);
  });

  it('order: nodes without the VIP first, lowest priority first, the holder last', () => {
    expect(
      rollOrder(
        [
          { name: 'a', priority: 100 },
          { name: 'b', priority: 90 },
          { name: 'c', priority: 80 },
        ],
        'a',
      ),
    ).toEqual(['c', 'b', 'a']);
    expect(rollOrder([{ name: 'b', priority: 90 }], 'a')).toEqual(['b']);
  });
});

describe('pollUntil', () => {
  it('returns once the check is done, else after the budget with the last value; an abort ends it early', async () => {
    let n = 0;
    expect(await pollUntil(async () => ({ done: ++n === 3, value: n }), { budgetMs: 5000, intervalMs: 1 })).toEqual({
      done: true,
      last: 3,
    });
    const t = Date.now();
    expect(await pollUntil(async () => ({ done: false, value: 'x' }), { budgetMs: 100, intervalMs: 20 })).toEqual({
      done: false,
      last: 'x',
    });
    expect(Date.now() - t).toBeLessThan(1000);
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 50);
    const t2 = Date.now();
    expect(
      (
        await pollUntil(async () => ({ done: false, value: 0 }), {
          budgetMs: 60_000,
          intervalMs: 10_000,
          signal: ac.signal,
        })
      ).done,
    ).toBe(false);
    expect(Date.now() - t2).toBeLessThan(5000);
    const t3 = Date.now();
    await sleep(10_000, AbortSignal.abort());
    expect(Date.now() - t3).toBeLessThan(100);
  });
});

describe('status', () => {
  it('shows uptime the way an operator reads it', async () => {
    const { formatUptime } = await import('../../src/cli/verify.js');
    expect(formatUptime(93784)).toBe('1d 2h 3m');
    expect(formatUptime(3725)).toBe('1h 2m');
    expect(formatUptime(65)).toBe('1m 5s');
  });
});

describe('build slots (apply --build-concurrency)', () => {
  it('runs at most N at a time, in arrival order, and frees a slot when a run throws', async () => {
    const slot = slots(1);
    let running = 0;
    let most = 0;
    const order: number[] = [];
    const job = (n: number, fail = false) =>
      slot(async () => {
        running++;
        most = Math.max(most, running);
        order.push(n);
        await sleep(20);
        running--;
        if (fail) throw new Error(`job ${n}`);
        return n;
      });
    const results = await Promise.allSettled([job(1), job(2, true), job(3)]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(most).toBe(1);
    expect(order).toEqual([1, 2, 3]);
    const two = slots(2);
    running = 0;
    most = 0;
    await Promise.all(
      [1, 2, 3, 4].map((n) =>
        two(async () => {
          running++;
          most = Math.max(most, running);
          await sleep(20);
          running--;
          return n;
        }),
      ),
    );
    expect(most).toBe(2);
  });
});

// CI found it: a resumed apply gathered facts while the other node (finished by the interrupted run)
// was still BACKUP; it became MASTER a few adverts later and the probe took it for a foreign host.
describe('the VIP probe of preflight', () => {
  const reply = (mac: string) =>
    `arping\nARPING 10.0.0.100 from 10.0.0.11 eth0\nUnicast reply from 10.0.0.100 [${mac}]  ` +
    `0.569ms\nReceived 1 response(s)\n`;
  it('an answer from a node of this cluster is that node taking the VIP, not another host', () => {
    expect(vipProbeVerdict(reply('6A:31:68:9D:2C:FE'), ['ae:74:63:46:81:65', '6a:31:68:9d:2c:fe'])).toEqual({
      kind: 'cluster',
    });
  });
  it('an answer from any other address is another host, named by its MAC', () => {
    expect(vipProbeVerdict(reply('02:00:00:00:00:09'), ['6a:31:68:9d:2c:fe'])).toEqual({
      kind: 'foreign',
      macs: ['02:00:00:00:00:09'],
    });
  });
  it('no answer is a free VIP; without arping, ping cannot say who answered; without either, unknown', () => {
    expect(vipProbeVerdict('arping\nARPING 10.0.0.100 from 10.0.0.11 eth0\nReceived 0 response(s)\n', [])).toEqual({
      kind: 'silent',
    });
    expect(vipProbeVerdict('answered\n', ['6a:31:68:9d:2c:fe'])).toEqual({ kind: 'foreign', macs: [] });
    expect(vipProbeVerdict('silent\n', [])).toEqual({ kind: 'silent' });
    expect(vipProbeVerdict('unknown\n', [])).toEqual({ kind: 'unknown' });
  });
});

// issue 21: a reference runbook with VRRPv2 applied to a VRRPv3 pair rolled node2 onto v2; node2 no
// longer heard node1 and the roll's planned move waited in vain. Such a change is refused up front.
describe('VRRP settings a serving pair must share', () => {
  const { runbook } = loadRunbook(join(import.meta.dirname, '..', '..', 'runbooks', 'example-nginx-lua.yaml'));
  const nodes = resolveNodes(runbook);
  // The example is VRRPv2 with a password over unicast.
  const live = { vrid: runbook.vrrp.virtualRouterId, version: 2, auth: true, unicast: true };
  const facts = (active: boolean, liveVrrp: typeof live | undefined) => ({
    ...assumedFacts('debian12'),
    keepalivedActive: active,
    liveVrrp,
  });
  const both = (l: typeof live) => Object.fromEntries(nodes.map((n) => [n.name, facts(true, l)]));

  it('reads the live keepalived.conf lines the facts script prints', () => {
    expect(parseLiveVrrp('virtual_router_id=51 version=3 auth_type=PASS unicast_peer={ ')).toEqual({
      vrid: 51,
      version: 3,
      auth: true,
      unicast: true,
    });
    expect(parseLiveVrrp('virtual_router_id=7 ')).toEqual({ vrid: 7, version: 2, auth: false, unicast: false });
    expect(parseLiveVrrp('')).toBeUndefined();
  });

  it('the same settings, or a pair not serving yet, or one node serving alone: nothing to refuse', () => {
    expect(vrrpIdentityProblems(runbook, nodes, both(live))).toEqual([]);
    const changed = { ...runbook, vrrp: { ...runbook.vrrp, version: 3 as const } };
    expect(vrrpIdentityProblems(changed, nodes, {})).toEqual([]);
    expect(
      vrrpIdentityProblems(changed, nodes, { [nodes[0].name]: facts(true, live), [nodes[1].name]: facts(false, live) }),
    ).toEqual([]);
  });

  it('--limit: a node whose keepalived runs cannot change them alone; the nodes left out keep theirs', () => {
    const changed = { ...runbook, vrrp: { ...runbook.vrrp, virtualRouterId: runbook.vrrp.virtualRouterId + 1 } };
    const only = (active: boolean) => ({ [nodes[1].name]: facts(active, live) });
    expect(vrrpIdentityProblems(changed, nodes, only(true))).toEqual([
      `vrrp.virtualRouterId: ${live.vrid} on ${nodes[1].name}, ${live.vrid + 1} in the runbook: --limit leaves ` +
        `${nodes[0].name} on the settings it runs with, and nodes with different VRRP settings do not hear each ` +
        'other (both would hold the VIP). Change them on every node in one apply, without --limit.',
    ]);
    // Its keepalived not running yet (a new node), or the same settings: nothing to refuse.
    expect(vrrpIdentityProblems(changed, nodes, only(false))).toEqual([]);
    expect(vrrpIdentityProblems(runbook, nodes, only(true))).toEqual([]);
  });

  it(
    'version, router id, password on/off and unicast changed on a serving pair are refused by name, ' +
      'with the way to do it',
    () => {
      const changed = {
        ...runbook,
        vrrp: {
          ...runbook.vrrp,
          version: 3 as const,
          virtualRouterId: runbook.vrrp.virtualRouterId + 1,
          auth: undefined,
          unicast: false,
        },
      };
      const [problem, ...rest] = vrrpIdentityProblems(changed, nodes, both(live));
      expect(rest).toEqual([]);
      const on = `on ${nodes[0].name}, ${nodes[1].name}`;
      expect(problem).toContain(`vrrp.version: 2 ${on}, 3 in the runbook`);
      expect(problem).toContain(`vrrp.virtualRouterId: ${live.vrid} ${on}, ${live.vrid + 1} in the runbook`);
      expect(problem).toContain(`vrrp.auth: a password ${on}, none in the runbook`);
      expect(problem).toContain(`vrrp.unicast: true ${on}, false in the runbook`);
      expect(problem).toMatch(/cannot roll node by node/);
      expect(problem).toMatch(/stop keepalived on every node except the one holding the VIP/);
    },
  );
});

// The batch runs in a real shell here: an `exit` in one check ends only that check, every check
// reports, and output of the checks never reaches the parser.
describe('checks in one round trip', () => {
  it('runs each check in its own subshell and reads every status', async () => {
    const script = batchedChecksScript([
      { id: 'a', script: 'true' },
      { id: 'b', script: "echo 'ha-setup-check a 0'; exit 3" },
      { id: 'c', script: '[ -e /nonexistent/ha-setup ]' },
      { id: 'd', script: 'cat <<EOF\nhere\nEOF\ntrue' },
    ]);
    const out = execFileSync('bash', ['-c', script], { encoding: 'utf8' });
    expect([...parseBatchedChecks(out)]).toEqual([
      ['a', true],
      ['b', false],
      ['c', false],
      ['d', true],
    ]);
  });

  it('a batch cut short leaves the missing checks absent (they are asked one by one)', () => {
    expect([...parseBatchedChecks('ha-setup-check a 0\nha-setup-ch')]).toEqual([['a', true]]);
  });
});

describe('the failure report', () => {
  it('says a failed step resumes there, and that preflight stopped the run before any step', async () => {
    const { StepFailure } = await import('../../src/engine/executor.js');
    const build = new StepFailure('node1', 'build', new Error('make failed'), '/tmp/log').report('rb.yaml');
    expect(build.at(-1)).toBe(
      'next:      fix the cause, then run `ha-setup apply rb.yaml` again; it resumes at this step',
    );
    const pre = new StepFailure('node1', 'preflight', new Error('port 80 in use'), '/tmp/log').report('rb.yaml');
    expect(pre).toContain('error:     port 80 in use');
    expect(pre.at(-1)).toMatch(/again \(preflight stopped the run before any step\)$/);
  });
});
