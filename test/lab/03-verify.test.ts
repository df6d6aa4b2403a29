import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { execFile } from 'node:child_process';
import { startProber } from '../../src/verify/probe.js';
import { cli, ranSteps, type RunRecord } from './helpers/cli.js';
import { withLab, type Lab } from './helpers/with-lab.js';
import { labSsh } from '../../src/lab/lab.js';
import { ensureWrk, runWrk } from '../../src/lab/load.js';

const records = (lab: Lab) => join(lab.runbookPath, '..', 'records', 'lab');

describe.skipIf(!inject('labAvailable'))('measured failover, planned failover, status and docs on the lab', () => {
  let lab: Lab;
  /** `status --json` with its exit code, and the nodes holding the VIP by it. */
  const status = async () => {
    const r = await cli(['status', lab.runbookPath, '--json']);
    return { code: r.code, ...JSON.parse(r.out) };
  };
  const holders = async () =>
    (await status()).nodes.filter((n: { holdsVip: boolean }) => n.holdsVip).map((n: { name: string }) => n.name);
  /** What node i's notify script last wrote (MASTER, BACKUP, FAULT). */
  const vrrpState = (i: number) => lab.ssh(i, 'cat /run/ha-setup-vrrp-state').then((r) => r.stdout.trim());
  /** The VRRP states node i's notify script logged since `since` (ms since the epoch), in order. */
  const transitions = async (i: number, since: number) =>
    [
      ...(
        await lab.ssh(i, `journalctl -t keepalived-notify --since @${Math.floor(since / 1000)} --no-pager -q -o cat`)
      ).stdout.matchAll(/is now (\w+)/g),
    ].map((m) => m[1]);

  beforeAll(async () => {
    lab = await withLab();
    // Installs the cluster when the lab is fresh; a no-op when an earlier suite already did.
    const r = await cli(['apply', lab.runbookPath, '--renderer', 'silent', '--no-verify']);
    expect(r.code, r.err).toBe(0);
  });

  for (const scenario of ['nginx-crash', 'nginx-stop', 'keepalived-stop', 'node-down'] as const) {
    it(`verify --scenario ${scenario}: the VIP moves, no split brain, downtime and failback measured`, async () => {
      const r = await cli(['verify', lab.runbookPath, '--scenario', scenario, '--yes']);
      expect(r.err).toBe('');
      expect(r.code).toBe(0);
      const res = JSON.parse(readFileSync(join(records(lab), 'last-verify.json'), 'utf8'));
      expect(res.scenario).toBe(scenario);
      expect(res.failover).toMatchObject({ from: 'node1', to: 'node2', moved: true, splitBrain: false });
      expect(typeof res.failover.downtimeMs).toBe('number');
      expect(res.failover.totalRequests).toBeGreaterThan(5);
      expect(res.failback).toMatchObject({
        expected: 'back to the old master',
        to: 'node1',
        moved: true,
        splitBrain: false,
      });
      expect(r.out).toMatch(new RegExp(`scenario ${scenario}: PASSED`));
      expect(r.out).toMatch(/downtime \d+ ms/);
    });
  }

  it('verify --scenario planned moves the VIP with zero failed probe requests', async () => {
    const r = await cli(['verify', lab.runbookPath, '--scenario', 'planned']);
    expect(r.code, r.err).toBe(0);
    const res = JSON.parse(readFileSync(join(records(lab), 'last-verify.json'), 'utf8'));
    expect(res.failover).toMatchObject({
      moved: true,
      to: 'node2',
      failedRequests: 0,
      downtimeMs: 0,
      splitBrain: false,
    });
  });

  it('verify --probe-from probes the VIP from a node and still measures the failover', async () => {
    const r = await cli(['verify', lab.runbookPath, '--scenario', 'nginx-stop', '--probe-from', 'node2', '--yes']);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/PASSED \(probed from node node2\)/);
    const res = JSON.parse(readFileSync(join(records(lab), 'last-verify.json'), 'utf8'));
    expect(res.probedFrom).toBe('node node2');
    expect(res.failover).toMatchObject({ moved: true, to: 'node2', splitBrain: false });
    expect(res.failover.totalRequests).toBeGreaterThan(5);
  });

  it('failover moves the VIP for maintenance and back', async () => {
    const home = await cli(['failover', lab.runbookPath, '--to', 'node1']);
    expect(home.code, home.err).toBe(0);
    const away = await cli(['failover', lab.runbookPath]);
    expect(away.code, away.err).toBe(0);
    expect(away.out).toMatch(/moved from node1 to node2; it is now safe to stop nginx or keepalived on node1/);
    const health = await fetch('http://10.213.0.100/ha-health', { signal: AbortSignal.timeout(3000) });
    expect((await health.text()).trim()).toBe('node2');
    const back = await cli(['failover', lab.runbookPath, '--to', 'node1']);
    expect(back.code, back.err).toBe(0);
    expect(back.out).toMatch(/moved from node2 to node1/);
  });

  describe('connection handoff at planned VIP moves', () => {
    // 32 MiB read at 4 MiB/s: one connection for eight seconds, far more than the socket buffers
    // hold, so the old holder is still sending when the VIP moves.
    const download = () =>
      new Promise<{ code: number; out: string }>((resolve) => {
        execFile(
          'curl',
          [
            '-sS',
            '--limit-rate',
            '4M',
            '--max-time',
            '40',
            '-o',
            '/dev/null',
            '-w',
            '%{size_download}',
            '--',
            `http://${lab.state.vip}/handoff.bin`,
          ],
          (err, stdout, stderr) =>
            resolve({
              code: err ? Number((err as { code?: number }).code ?? 1) : 0,
              out: `${stdout} ${stderr}`.trim(),
            }),
        );
      });
    const leftovers = async (i: number) =>
      (
        await lab.ssh(
          i,
          `nft list tables 2>/dev/null | grep -c ha_setup_handoff; ip -4 -o addr show dev lo | grep ` +
            `-c ' ${lab.state.vip}/32'; ` +
            'cat /proc/sys/net/ipv4/conf/host0/arp_ignore /proc/sys/net/ipv4/conf/host0/arp_announce; ' +
            'systemctl is-active ha-setup-handoff-end.timer; ls /run/ha-setup/handoff.state 2>&1 | grep -c "No such"',
        )
      ).stdout
        .trim()
        .split('\n');

    beforeAll(async () => {
      await Promise.all(
        [0, 1].map((i) => lab.ssh(i, 'head -c 33554432 /dev/zero > /usr/local/nginx/html/handoff.bin')),
      );
      const home = await cli(['failover', lab.runbookPath, '--to', 'node1']);
      expect(home.code, home.err).toBe(0);
    });

    it(
      'a download in flight when the VIP moves completes; a prober every 2 ms loses nothing over four moves; ' +
        'nothing is left on either node',
      async () => {
        const inFlight = download();
        await new Promise((r) => setTimeout(r, 1000));
        const away = await cli(['failover', lab.runbookPath, '--to', 'node2']);
        expect(away.code, away.err).toBe(0);
        expect(away.out).not.toMatch(/handoff unavailable/);
        const got = await inFlight;
        expect(got).toEqual({ code: 0, out: '33554432' });

        const prober = startProber(lab.state.vip, 80, 2, 1000);
        for (const to of ['node1', 'node2', 'node1', 'node2']) {
          const r = await cli(['failover', lab.runbookPath, '--to', to]);
          expect(r.code, r.err).toBe(0);
        }
        const samples = await prober.stop();
        const failed = samples.filter((s) => !s.ok);
        console.log(
          `four planned moves: ${samples.length} requests, ${failed.length} failed`,
          failed.map((f) => `${f.sentAt.toFixed(0)} ms: ${f.error}`),
        );
        expect(samples.length).toBeGreaterThan(1000);
        expect(failed).toEqual([]);
        expect(new Set(samples.map((s) => s.node))).toEqual(new Set(['node1', 'node2']));
        // table, lo address, sysctls (0 0 as the lab starts), timer, state file
        for (const i of [0, 1]) expect(await leftovers(i)).toEqual(['0', '0', '0', '0', 'inactive', '1']);
      },
    );

    // issue 21, test 5: a real front end carries hundreds of keep-alive connections when it moves.
    it('300 keep-alive connections (wrk from the lab host) through a planned failover and back: 0 errors', async () => {
      await ensureWrk();
      const load = runWrk(`http://${lab.state.vip}/`, 300, 16);
      await new Promise((r) => setTimeout(r, 4000));
      const away = await cli(['failover', lab.runbookPath]);
      expect(away.code, away.err).toBe(0);
      await new Promise((r) => setTimeout(r, 4000));
      const back = await cli(['failover', lab.runbookPath, '--to', 'node1']);
      expect(back.code, back.err).toBe(0);
      const w = await load;
      console.log(
        `wrk, 300 keep-alive connections, two planned moves: ${w.requests} requests, ${w.socketErrors} socket ` +
          `errors, ${w.non2xx} non-2xx, p99 ${w.p99Ms} ms`,
      );
      expect(w.requests).toBeGreaterThan(1000);
      expect({ socketErrors: w.socketErrors, non2xx: w.non2xx }).toEqual({ socketErrors: 0, non2xx: 0 });
    });

    it(
      'without nft on the node taking over, the move still happens, apply says why, ' +
        'and the same download is reset (what the handoff prevents)',
      async () => {
        // node1 is about to take the VIP over, without nft.
        const away = await cli(['failover', lab.runbookPath, '--to', 'node2']);
        expect(away.code, away.err).toBe(0);
        await lab.ssh(0, 'mv /usr/sbin/nft /usr/sbin/nft.hidden');
        try {
          const inFlight = download();
          await new Promise((r) => setTimeout(r, 1000));
          const back = await cli(['failover', lab.runbookPath, '--to', 'node1']);
          expect(back.code, back.err).toBe(0);
          expect(back.out).toMatch(
            new RegExp(
              String.raw`connection handoff unavailable \(node1: .*nft.*\): ` +
                'connections open at the instant the VIP moves may be reset',
            ),
          );
          const got = await inFlight;
          expect(got.code).not.toBe(0);
          for (const i of [0, 1]) expect(await leftovers(i)).toEqual(['0', '0', '0', '0', 'inactive', '1']);
        } finally {
          await lab.ssh(0, 'mv /usr/sbin/nft.hidden /usr/sbin/nft');
        }
      },
    );
  });

  it('a failover that exceeds maxDowntimeMs fails the verification with exit 1', async () => {
    const { readFileSync: read, writeFileSync } = await import('node:fs');
    const strict = join(lab.runbookPath, '..', 'strict.yaml');
    writeFileSync(
      strict,
      read(lab.runbookPath, 'utf8')
        .replace(/maxDowntimeMs: \d+/, 'maxDowntimeMs: 1')
        .replace('name: lab', 'name: lab'),
    );
    const r = await cli(['verify', strict, '--scenario', 'node-down', '--yes']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/downtime \d+ ms exceeds verify\.maxDowntimeMs 1/);
  });

  it('status reports every node, the VIP holder and the last verification (--json)', async () => {
    const r = await cli(['status', lab.runbookPath, '--json']);
    expect(r.code, r.err).toBe(0);
    const s = JSON.parse(r.out);
    expect(
      s.nodes.map((n: { name: string; holdsVip: boolean; vrrpState: string; nginx: string; keepalived: string }) => [
        n.name,
        n.holdsVip,
        n.vrrpState,
        n.nginx,
        n.keepalived,
      ]),
    ).toEqual([
      ['node1', true, 'MASTER', 'active', 'active'],
      ['node2', false, 'BACKUP', 'active', 'active'],
    ]);
    expect(s.nodes[0].nginxVersion).toMatch(/nginx\/1\.22\.1/);
    expect(s.lastVerify.passed).toBeTypeOf('boolean');
    // --debug shows the remote commands (read-only probes included) on stderr; without it, none.
    expect(r.err).not.toMatch(/\] \$ /);
    const dbg = await cli(['status', lab.runbookPath, '--json', '--debug']);
    expect(dbg.code, dbg.err).toBe(0);
    expect(dbg.err).toMatch(/^\[10\.213\.0\.11[^\]]*\] \$ .*systemctl is-active nginx/m);
    expect(JSON.parse(dbg.out).nodes).toHaveLength(2);
  });

  // A newcomer's trial: the first unreachable node aborted status, the one command you run when a
  // node died (and the hint blamed the key file for a routing error).
  it(
    'status with a node down shows every node, the unreachable one as such, and the VIP holder; ' +
      'plan suggests --offline',
    async () => {
      const { runLocal } = await import('../../src/local.js');
      const veth = `vb-${lab.state.nodes[1].machine}`;
      await runLocal('ip', ['link', 'set', veth, 'down']);
      try {
        const r = await cli(['status', lab.runbookPath]);
        expect(r.code).toBe(1);
        expect(r.out).toMatch(/node1 +10\.213\.0\.11 .*VRRP:MASTER +holds the VIP/);
        expect(r.out).toMatch(/node2 +10\.213\.0\.12 +backup\/\d+ +UNREACHABLE/);
        expect(r.out).toMatch(/VIP holder: node1/);
        expect(r.out).not.toMatch(/key:/);
        const json = JSON.parse((await cli(['status', lab.runbookPath, '--json'])).out);
        expect(json.nodes.map((n: { name: string; reachable: boolean }) => [n.name, n.reachable])).toEqual([
          ['node1', true],
          ['node2', false],
        ]);
        const plan = await cli(['plan', lab.runbookPath]);
        expect(plan.code).toBe(1);
        expect(plan.err).toMatch(/10\.213\.0\.12 does not answer on port 22/);
        expect(plan.err).toMatch(/ha-setup plan \S+ --offline --os/);
      } finally {
        await runLocal('ip', ['link', 'set', veth, 'up']);
      }
      // Back: the node answers again and the cluster is whole.
      for (let k = 0; k < 50; k++) {
        if ((await cli(['status', lab.runbookPath])).code === 0) break;
        await new Promise((res) => setTimeout(res, 500));
      }
      expect((await cli(['status', lab.runbookPath])).code).toBe(0);
    },
  );

  it('docs writes the handover with every section and the executed commands', async () => {
    const r = await cli(['docs', lab.runbookPath]);
    expect(r.code, r.err).toBe(0);
    const file = join(lab.runbookPath, '..', 'lab.handover.md');
    expect(existsSync(file)).toBe(true);
    const md = readFileSync(file, 'utf8');
    for (const section of [
      '## Summary',
      '## Topology',
      '## Hosts',
      '## VRRP',
      '## Build',
      '## File locations',
      '## Day-2 operations',
      '## Last verification',
      '## Troubleshooting',
      '## Commands executed per node',
    ])
      expect(md).toContain(section);
    expect(md).toMatch(/```mermaid\nflowchart TB/);
    // The document travels: no path of this machine in it.
    expect(md).not.toContain(join(lab.runbookPath, '..'));
    expect(md).toMatch(/\| node1 \| master \| 100 \| 10\.213\.0\.11 \| host0 \| debian 12 \|/);
    expect(md).toMatch(/client-observed downtime \| \d+ ms/);
    for (const fault of [
      'VRID collision',
      'protocol 112',
      'Multicast blocked',
      'auth_pass longer than 8',
      'Script security',
      'vrrp_strict',
    ])
      expect(md).toContain(fault);
    expect(md).toMatch(
      /### node2 \(10\.213\.0\.12\)[\s\S]*\*\*configure\*\*[\s\S]*\.\/configure --prefix=\/usr\/local\/nginx/,
    );
  });

  it('split brain (VRRP dropped on one node) is reported by status and refused by verify', async () => {
    await lab.ssh(
      1,
      'DEBIAN_FRONTEND=noninteractive apt-get install -y -q iptables >/dev/null 2>&1; ' +
        'iptables -I INPUT -p vrrp -j DROP',
    );
    try {
      await new Promise((r) => setTimeout(r, 2000));
      const st = await cli(['status', lab.runbookPath, '--json']);
      expect(st.code).toBe(1);
      expect(JSON.parse(st.out).nodes.filter((n: { holdsVip: boolean }) => n.holdsVip)).toHaveLength(2);
      const v = await cli(['verify', lab.runbookPath]);
      expect(v.code).toBe(1);
      expect(v.err).toMatch(/before the test 2 nodes hold the VIP/);
    } finally {
      await lab.ssh(1, 'iptables -D INPUT -p vrrp -j DROP');
    }
    // Healed: one holder at once; the holder's split-brain watch calls the split over after two
    // unanswered probes (a second each), then status is clean.
    let code = 1;
    for (let k = 0; k < 20 && code !== 0; k++) {
      await new Promise((r) => setTimeout(r, 500));
      code = (await cli(['status', lab.runbookPath])).code;
    }
    expect(code).toBe(0);
  });

  // issue 21: a node cut off from the clients' side must not hold the VIP. The witness is the lab
  // host (the nodes' gateway, where the prober runs); only node1's pings to it are dropped, so the
  // move itself is what the prober sees.
  it(
    'vrrp.witness: the holder that cannot reach the witness gives up the VIP to node2, ' +
      'and takes it back once it can',
    async () => {
      const doc = parse(readFileSync(lab.runbookPath, 'utf8'));
      const witness = lab.state.nodes[0].ip.replace(/\.\d+$/, '.1');
      doc.vrrp = { ...doc.vrrp, witness: { address: witness, interval: 1, fall: 2, rise: 2 } };
      writeFileSync(lab.runbookPath, stringify(doc));
      const applied = await cli(['apply', lab.runbookPath, '--renderer', 'silent', '--no-verify']);
      expect(applied.code, applied.err).toBe(0);
      expect(ranSteps(lab.runbookPath).node1).toEqual(['health-check', 'keepalived-config']);
      expect(await holders()).toEqual(['node1']);
      const block =
        "nft add table inet ha_witness_test; nft add chain inet ha_witness_test out '{ type filter hook output " +
        "priority 0; }'; " +
        `nft add rule inet ha_witness_test out ip daddr ${witness} icmp type echo-request drop`;
      const prober = startProber(lab.state.vip, 80, 20, 500);
      let cutAt = 0;
      try {
        expect((await lab.ssh(0, block)).code).toBe(0);
        cutAt = Date.now();
        let moved = false;
        for (let k = 0; k < 40 && !moved; k++) {
          await new Promise((r) => setTimeout(r, 250));
          moved = (await holders()).join() === 'node2';
        }
        expect(moved).toBe(true);
        console.log(`witness unreachable from node1: the VIP on node2 after ${Date.now() - cutAt} ms`);
        expect(await vrrpState(0)).toBe('FAULT');
      } finally {
        await lab.ssh(0, 'nft delete table inet ha_witness_test');
      }
      let back = false;
      for (let k = 0; k < 40 && !back; k++) {
        await new Promise((r) => setTimeout(r, 250));
        back = (await holders()).join() === 'node1';
      }
      const samples = await prober.stop();
      const failed = samples.filter((x) => !x.ok);
      console.log(`witness test: ${samples.length} requests through the VIP, ${failed.length} failed (two moves)`);
      expect(back).toBe(true);
      expect(await vrrpState(0)).toBe('MASTER');
      // Back to the lab runbook for the tests after this one: the witness goes, its script too (once
      // keepalived has re-read its configuration), and no node changes VRRP state on the way.
      delete doc.vrrp.witness;
      writeFileSync(lab.runbookPath, stringify(doc));
      // transitions() counts whole seconds: node1's move back to MASTER must fall before them.
      await new Promise((r) => setTimeout(r, 1100));
      const removingAt = Date.now();
      const restored = await cli(['apply', lab.runbookPath, '--renderer', 'silent', '--no-verify']);
      expect(restored.code, restored.err).toBe(0);
      // The script went once the VRRP process logged its reload, not by the 10 s fallback (no journal).
      const rec = JSON.parse(readFileSync(join(lab.runbookPath, '..', 'records', 'lab', 'last-run.json'), 'utf8'));
      for (const n of rec.nodes as RunRecord['nodes']) {
        const step = n.steps.find((x) => x.id === 'keepalived-config');
        expect(step?.action, n.name).toBe('ran');
        expect(step?.durationMs, n.name).toBeLessThan(8000);
      }
      for (const i of [0, 1]) {
        expect((await lab.ssh(i, 'test -e /etc/keepalived/scripts/check_witness.sh')).code, `node${i + 1}`).toBe(1);
        expect(await transitions(i, removingAt), `node${i + 1}`).toEqual([]);
      }
      expect(await holders()).toEqual(['node1']);
    },
  );

  // issue 21, test 4: VRRP blocked between the nodes (nft on node2), clients reaching both.
  it(
    'split: the witness keeps the VIP on the side that reaches it; both sides reaching it is reported within 5 s ' +
      '(journal, notify hook, status); healing leaves one MASTER; no request fails but one in flight as the VIP moves',
    async () => {
      const doc = parse(readFileSync(lab.runbookPath, 'utf8'));
      const witness = lab.state.nodes[0].ip.replace(/\.\d+$/, '.1');
      const hook = '/usr/local/bin/ha-test-notify-hook';
      const hookLog = '/var/log/ha-test-notify-hook.log';
      const installHook =
        `printf '%s\\n' '#!/bin/sh' 'echo "$(date +%s.%N) $*" >> ${hookLog}' > ${hook} && chmod ` +
        `755 ${hook} && rm -f ${hookLog}`;
      await Promise.all([lab.ssh(0, installHook), lab.ssh(1, installHook)]);
      doc.vrrp = { ...doc.vrrp, witness: { address: witness, interval: 1, fall: 2, rise: 2 } };
      doc.keepalived = { ...doc.keepalived, notifyHook: hook };
      writeFileSync(lab.runbookPath, stringify(doc));
      const applied = await cli(['apply', lab.runbookPath, '--renderer', 'silent', '--no-verify']);
      expect(applied.code, applied.err).toBe(0);
      const until = async (what: string, ok: () => Promise<boolean>, budgetMs = 15_000) => {
        const t0 = Date.now();
        while (!(await ok())) {
          if (Date.now() - t0 > budgetMs) throw new Error(`not within ${budgetMs} ms: ${what}`);
          await new Promise((r) => setTimeout(r, 200));
        }
        return Date.now() - t0;
      };
      const nft = (table: string, rules: string[]) =>
        [`nft add table inet ${table}`, ...rules.map((r) => `nft add ${r.replace('@', `inet ${table} `)}`)].join('; ');
      const cutWitness = nft('ha_split_witness', [
        "chain @out '{ type filter hook output priority 0; }'",
        `rule @out ip daddr ${witness} icmp type echo-request drop`,
      ]);
      const cutVrrp = nft('ha_split_vrrp', [
        "chain @in '{ type filter hook input priority 0; }'",
        "chain @out '{ type filter hook output priority 0; }'",
        'rule @in ip protocol 112 drop',
        'rule @out ip protocol 112 drop',
      ]);
      expect(await holders()).toEqual(['node1']);
      const prober = startProber(lab.state.vip, 80, 20, 500);
      try {
        // 1. node2 is cut off from the clients' side (the witness) and from node1's adverts.
        expect((await lab.ssh(1, cutWitness)).code).toBe(0);
        await until('node2 in FAULT', async () => (await vrrpState(1)) === 'FAULT');
        expect((await lab.ssh(1, cutVrrp)).code).toBe(0);
        for (let k = 0; k < 5; k++) {
          await new Promise((r) => setTimeout(r, 600));
          expect(await holders()).toEqual(['node1']);
        }
        // 2. node2 reaches the witness again while VRRP stays blocked: both are MASTER.
        expect((await lab.ssh(1, 'nft delete table inet ha_split_witness')).code).toBe(0);
        await until('both nodes hold the VIP', async () => (await holders()).length === 2);
        const reportedIn = await until(
          'the split reported',
          async () => {
            const j = await lab.ssh(0, 'journalctl -t ha-setup-split-brain --no-pager -q -o cat');
            return /SPLIT BRAIN: node1 holds/.test(j.stdout);
          },
          10_000,
        );
        console.log(`split brain: reported by node1 ${reportedIn} ms after status saw both holders`);
        expect(reportedIn).toBeLessThan(5000);
        const st = await status();
        expect(st.code).toBe(1);
        expect(st.splitBrain).toBe(true);
        // The flag is written with the report above; status reads it a moment later.
        await until('status shows the node that saw the split', async () =>
          (await status()).nodes.some((n: { splitBrainSeen: string | null }) => n.splitBrainSeen !== null),
        );
        const text = await cli(['status', lab.runbookPath]);
        expect(text.out).toMatch(/VIP holders: node1, node2 \(SPLIT BRAIN/);
        expect(text.out).toMatch(/problem: node2 holds the VIP but node1 should/);
        await until('the notify hook called with SPLIT-BRAIN', async () =>
          (await lab.ssh(0, `cat ${hookLog}`)).stdout.includes(`SPLIT-BRAIN node1 ${lab.state.vip}`),
        );
        // 3. Healed: the higher priority keeps the VIP, the other steps down.
      } finally {
        await lab.ssh(1, 'nft delete table inet ha_split_vrrp; nft delete table inet ha_split_witness 2>/dev/null');
      }
      await until('one MASTER again', async () => (await holders()).join() === 'node1');
      await until('node2 BACKUP', async () => (await vrrpState(1)) === 'BACKUP');
      await until('the split over, seen by node1', async () =>
        (await lab.ssh(0, `cat ${hookLog}`)).stdout.includes(`SPLIT-BRAIN-OVER node1 ${lab.state.vip} kept`),
      );
      await new Promise((r) => setTimeout(r, 1000));
      const samples = await prober.stop();
      const failed = samples.filter((x) => !x.ok);
      // The split moves the lab host's ARP entry for the VIP twice (to node2 when it takes the VIP, back
      // to node1 at the heal): a request in flight at a move can be reset by the node that never saw
      // its connection. That is the split itself; every other request must be answered.
      const atMove = (f: (typeof samples)[number]) => {
        const i = samples.indexOf(f);
        const before = samples
          .slice(0, i)
          .reverse()
          .find((x) => x.ok);
        const after = samples.slice(i + 1).find((x) => x.ok);
        return before !== undefined && after !== undefined && before.node !== after.node;
      };
      console.log(
        `split test: ${samples.length} requests through the VIP from the lab host, ${failed.length} failed` +
          failed.map((f) => ` (at ${f.sentAt} ms: ${f.error}${atMove(f) ? ', as the VIP moved' : ''})`).join(''),
      );
      expect(failed.filter((f) => !atMove(f))).toEqual([]);
      expect(failed.length).toBeLessThanOrEqual(2);
      expect((await status()).code).toBe(0);
      const hooked = (await lab.ssh(0, `cat ${hookLog}`)).stdout;
      expect(hooked).toMatch(/ SPLIT-BRAIN node1 \S+ ([0-9a-f]{2}:){5}[0-9a-f]{2}/i);
      // Back to the lab runbook for the tests after this one.
      delete doc.vrrp.witness;
      delete doc.keepalived.notifyHook;
      writeFileSync(lab.runbookPath, stringify(doc));
      const restored = await cli(['apply', lab.runbookPath, '--renderer', 'silent', '--no-verify']);
      expect(restored.code, restored.err).toBe(0);
    },
  );

  // issue 21, test 3: a rebooted node comes back as the runbook says (units enabled, nginx and
  // keepalived running, the VIP where the priorities and the track files put it), and nothing moves
  // twice on the way.
  describe('reboots', () => {
    /** Reboot node i from inside, wait until it is booted again; the holders seen meanwhile, in order. */
    const reboot = async (i: number, command = 'systemctl reboot') => {
      const seen: string[] = [];
      const note = async () => {
        const h = (await holders().catch(() => ['?'])).join('+') || 'none';
        if (seen.at(-1) !== h) seen.push(h);
      };
      await note();
      const before = Number((await lab.ssh(i, 'ps -o etimes= -p 1')).stdout.trim());
      await lab.ssh(i, `${command} >/dev/null 2>&1 &`);
      const t0 = Date.now();
      for (;;) {
        if (Date.now() - t0 > 120_000) throw new Error(`node${i + 1} did not come back within 120 s`);
        await note();
        const r = await labSsh(
          lab.paths,
          lab.state.nodes[i].ip,
          'systemctl is-system-running --wait; ps -o etimes= -p 1',
          {
            allowFailure: true,
            timeoutMs: 20_000,
          },
        );
        const [state, up] = r.stdout.trim().split('\n');
        if (r.code === 0 || /running|degraded/.test(state ?? '')) if (Number(up) < before) break;
        await new Promise((res) => setTimeout(res, 300));
      }
      // Settled: keepalived's health check rises and a preempting node takes the VIP back.
      await new Promise((res) => setTimeout(res, 5000));
      await note();
      // "?": status could not answer while the node was going down or coming up (not a holder change).
      const known = seen.filter((h) => h !== '?');
      return { seen, holders: known.filter((h, k) => h !== known[k - 1]), downFor: Date.now() - t0 };
    };
    const expectAsTheRunbookSays = async (holder: string) => {
      // A node just booted may still be starting a unit or rising in its health check: up to 30 s.
      let st = await status();
      for (let k = 0; k < 30 && (st.code !== 0 || st.expectedHolder !== holder); k++) {
        await new Promise((res) => setTimeout(res, 1000));
        st = await status();
      }
      if (st.code !== 0) console.log(`status after the reboot: ${JSON.stringify(st, null, 2)}`);
      expect(st.problems).toEqual([]);
      expect(
        st.nodes.map(
          (n: { name: string; nginx: string; keepalived: string; vrrpState: string; expectedState: string }) => [
            n.name,
            n.nginx,
            n.keepalived,
            n.vrrpState === n.expectedState,
          ],
        ),
      ).toEqual([
        ['node1', 'active', 'active', true],
        ['node2', 'active', 'active', true],
      ]);
      expect(st.expectedHolder).toBe(holder);
      expect(st.code).toBe(0);
      for (const i of [0, 1]) {
        const units = await lab.ssh(i, 'systemctl is-enabled nginx keepalived ha-setup-split-watch');
        expect(units.stdout.trim().split('\n')).toEqual(['enabled', 'enabled', 'enabled']);
      }
    };

    // Each reboot starts from the VIP on node1, whatever the one before left.
    beforeEach(async () => {
      const home = await cli(['failover', lab.runbookPath, '--to', 'node1']);
      expect(home.code, home.err).toBe(0);
    });

    it('the backup reboots: 0 failed requests, the VIP never moves, node2 back as BACKUP, fresh uptime', async () => {
      const since = Date.now();
      const prober = startProber(lab.state.vip, 80, 20, 500);
      const r = await reboot(1);
      const samples = await prober.stop();
      const failed = samples.filter((x) => !x.ok);
      console.log(
        `backup reboot: node2 back after ${r.downFor} ms; holders ` +
          `seen ${r.seen.join(' -> ')}; ${failed.length} of ${samples.length} failed`,
      );
      expect(failed).toHaveLength(0);
      expect(r.holders).toEqual(['node1']);
      expect(await transitions(0, since)).toEqual([]);
      await expectAsTheRunbookSays('node1');
      expect((await status()).nodes[1].uptimeS).toBeLessThan(r.downFor / 1000 + 10);
    });

    it('the master reboots after a planned failover: 0 failed; the VIP stays on node2 until moved back', async () => {
      const since = Date.now();
      const prober = startProber(lab.state.vip, 80, 20, 500);
      const away = await cli(['failover', lab.runbookPath]);
      expect(away.code, away.err).toBe(0);
      const r = await reboot(0);
      // The planned failover's boost keeps node2 the holder: no second move when node1 returns.
      expect(r.holders, r.seen.join(' -> ')).toEqual(['node2']);
      await expectAsTheRunbookSays('node2');
      const back = await cli(['failover', lab.runbookPath, '--to', 'node1']);
      expect(back.code, back.err).toBe(0);
      const samples = await prober.stop();
      const failed = samples.filter((x) => !x.ok);
      console.log(
        `planned master reboot: node1 back after ${r.downFor} ms; ${failed.length} of ${samples.length} failed`,
      );
      expect(failed).toHaveLength(0);
      // node2 took the VIP once (the planned move) and gave it back once (the move back).
      expect(await transitions(1, since)).toEqual(['MASTER', 'BACKUP']);
      await expectAsTheRunbookSays('node1');
    });

    it('the master crash-reboots (reboot -ff): requests fail only while the VIP moves; one preemption', async () => {
      const since = Date.now();
      const prober = startProber(lab.state.vip, 80, 20, 500);
      const r = await reboot(0, 'systemctl reboot --force --force');
      const samples = await prober.stop();
      const failed = samples.filter((x) => !x.ok);
      // One outage at most: consecutive failed requests, nothing failing before or after it.
      const runs = samples.reduce((n, x, k) => n + (!x.ok && (k === 0 || samples[k - 1].ok) ? 1 : 0), 0);
      console.log(
        `master crash-reboot: holders ${r.seen.join(' -> ')}; ${failed.length} of ${samples.length} failed ` +
          `in ${runs} outage(s)`,
      );
      expect(runs).toBeLessThanOrEqual(1);
      expect(r.holders).not.toContain('node1+node2');
      // node2 took the VIP when node1 died and gave it back once node1 returned (preemption).
      expect(await transitions(1, since)).toEqual(['MASTER', 'BACKUP']);
      await expectAsTheRunbookSays('node1');
    });
  });

  // issue 21, tests 1 and 2: how fast a lost host is replaced is the bench's figure (npm run
  // bench:faults); that it is replaced every time, and that a busy master is never taken for a dead
  // one, are facts.
  describe('host loss and a busy master', () => {
    beforeAll(async () => {
      const home = await cli(['failover', lab.runbookPath, '--to', 'node1']);
      expect(home.code, home.err).toBe(0);
    });

    // The issue's figure is 10 minutes (HA_SETUP_STRESS_MINUTES=10). CI's hour has no room left for
    // it, so it runs when asked; `npm run bench:faults` prints the same count per advert setting.
    const stressMinutes = Number(process.env.HA_SETUP_STRESS_MINUTES ?? 0);

    it('node-down five times: the VIP moves to node2 and back every time; failed requests counted', async () => {
      const failed: number[] = [];
      const downtime: number[] = [];
      for (let k = 0; k < 5; k++) {
        const r = await cli(['verify', lab.runbookPath, '--scenario', 'node-down', '--yes']);
        expect(r.code, r.out + r.err).toBe(0);
        const res = JSON.parse(readFileSync(join(records(lab), 'last-verify.json'), 'utf8'));
        expect(res.failover).toMatchObject({ from: 'node1', to: 'node2', moved: true, splitBrain: false });
        expect(res.failback).toMatchObject({ to: 'node1', moved: true, splitBrain: false });
        failed.push(res.failover.failedRequests);
        downtime.push(res.failover.downtimeMs);
      }
      console.log(`node-down x5: failed requests ${failed.join('/')}, downtime ${downtime.join('/')} ms`);
      // A probe every 50 ms: the VIP is back within a second each time (the bench has the figure).
      expect(Math.max(...failed)).toBeLessThanOrEqual(20);
    });

    it.skipIf(stressMinutes <= 0)(
      `the master under stress-ng and a traffic flood from the lab host for ${stressMinutes} min: 0 VRRP transitions`,
      async () => {
        const seconds = Math.round(stressMinutes * 60);
        const install =
          'command -v stress-ng >/dev/null || { apt-get update -q >/dev/null; DEBIAN_FRONTEND=noninteractive ' +
          'apt-get install -y -q stress-ng >/dev/null; }';
        expect((await lab.ssh(0, install)).code).toBe(0);
        await ensureWrk();
        expect((await cli(['status', lab.runbookPath])).code).toBe(0);
        const since = Date.now();
        const flood = execFile('ping', ['-f', '-q', '-s', '1400', '-w', String(seconds), lab.state.nodes[0].ip]);
        const [stress, load] = await Promise.all([
          lab.ssh(0, `stress-ng --cpu 0 --vm 1 --vm-bytes 20% --hdd 1 --timeout ${seconds}s 2>&1 | tail -n 2`),
          runWrk(`http://${lab.state.vip}/`, 300, seconds),
        ]);
        flood.kill();
        console.log(
          `stress ${stressMinutes} min on node1: ${stress.stdout.trim().split('\n').at(-1)}; ` +
            `wrk ${load.requests} requests, ${load.socketErrors} socket errors, p99 ${load.p99Ms} ms`,
        );
        expect(stress.code, stress.stderr).toBe(0);
        expect({ node1: await transitions(0, since), node2: await transitions(1, since) }).toEqual({
          node1: [],
          node2: [],
        });
        expect((await cli(['status', lab.runbookPath])).code).toBe(0);
      },
      30 * 60_000,
    );
  });

  it('the firewall step opens VRRP and the site port under a restrictive iptables INPUT policy', async () => {
    const lockDown =
      'DEBIAN_FRONTEND=noninteractive apt-get install -y -q iptables >/dev/null 2>&1; ' +
      'iptables -A INPUT -i lo -j ACCEPT; iptables -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT; ' +
      'iptables -A INPUT -p tcp --dport 22 -j ACCEPT; iptables -P INPUT DROP';
    await Promise.all([lab.ssh(0, lockDown), lab.ssh(1, lockDown)]);
    try {
      await new Promise((r) => setTimeout(r, 2000));
      // VRRP adverts are dropped now: both nodes claim the VIP.
      const st = await cli(['status', lab.runbookPath, '--json']);
      expect(JSON.parse(st.out).nodes.filter((n: { holdsVip: boolean }) => n.holdsVip)).toHaveLength(2);
      const r = await cli(['apply', lab.runbookPath, '--renderer', 'silent', '--no-verify']);
      expect(r.code, r.err).toBe(0);
      expect(ranSteps(lab.runbookPath)).toEqual({ node1: ['firewall'], node2: ['firewall'] });
      const rules = await lab.ssh(0, 'iptables -S INPUT');
      expect(rules.stdout).toContain('-A INPUT -s 10.213.0.12/32 -p vrrp -j ACCEPT');
      expect(rules.stdout).toContain('-A INPUT -p tcp -m tcp --dport 80 -j ACCEPT');
      expect(rules.stdout).toContain('-P INPUT DROP');
      const health = await fetch('http://10.213.0.100/ha-health', { signal: AbortSignal.timeout(3000) });
      expect((await health.text()).trim()).toBe('node1');
    } finally {
      await Promise.all([0, 1].map((i) => lab.ssh(i, 'iptables -P INPUT ACCEPT; iptables -F INPUT')));
    }
  });

  it('planned failover works without preemption and without the nginx track file, and moves back', async () => {
    const doc = parse(readFileSync(lab.runbookPath, 'utf8'));
    doc.vrrp.preempt = false;
    doc.keepalived.trackNginx = false;
    writeFileSync(lab.runbookPath, stringify(doc));
    const applied = await cli(['apply', lab.runbookPath, '--renderer', 'silent', '--no-verify']);
    expect(applied.code, applied.err).toBe(0);
    const conf = await lab.ssh(0, 'cat /etc/keepalived/keepalived.conf');
    expect(conf.stdout).toContain('nopreempt');
    expect(conf.stdout).not.toContain('vrrp_track_file nginx_down');
    expect(conf.stdout).toContain('vrrp_track_file ha_maintenance');

    const r = await cli(['verify', lab.runbookPath, '--scenario', 'planned']);
    expect(r.code, r.out + r.err).toBe(0);
    const res = JSON.parse(readFileSync(join(records(lab), 'last-verify.json'), 'utf8'));
    expect(res.failover).toMatchObject({ moved: true, from: 'node1', to: 'node2', splitBrain: false });
    // nopreempt: the VIP stays on node2 after the test; node1 is a healthy standby again.
    const back = await cli(['failover', lab.runbookPath, '--to', 'node1']);
    expect(back.code, back.err).toBe(0);
    expect(back.out).toMatch(/the VIP moved from node2 to node1/);
    const standby = await lab.ssh(1, 'cat /etc/keepalived/track/maintenance');
    expect(standby.stdout.trim()).toBe('0');
    const health = await fetch('http://10.213.0.100/ha-health', { signal: AbortSignal.timeout(3000) });
    expect((await health.text()).trim()).toBe('node1');
  });
});
