import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { startProber } from '../../src/verify/probe.js';
import { cli, ranSteps } from './helpers/cli.js';
import { withLab, type Lab } from './helpers/with-lab.js';

// Day 2 on a serving cluster: every change through apply, a client requesting the VIP every 20 ms.
// Failed requests are facts and are asserted; durations are printed, not asserted.
describe.skipIf(!inject('labAvailable'))('changing a serving cluster without dropping a request', () => {
  let lab: Lab;
  const masterPid = (i: number) => lab.ssh(i, 'cat /usr/local/nginx/logs/nginx.pid').then((r) => r.stdout.trim());

  /** Runs apply with a 20 ms prober through the VIP; returns the result, the failed requests and where the VIP was. */
  async function applyUnderLoad(extra: string[] = []) {
    const prober = startProber(lab.state.vip, 80, 20, 500);
    const started = Date.now();
    const r = await cli(['apply', lab.runbookPath, '--renderer', 'silent', ...extra]);
    const samples = await prober.stop();
    const failed = samples.filter((s) => !s.ok);
    console.log(`apply ${extra.join(' ')}: ${Date.now() - started} ms, ${samples.length} requests, ${failed.length} failed`);
    return { r, failed, samples, holders: [...new Set(samples.filter((s) => s.ok).map((s) => s.node))] };
  }

  beforeAll(async () => {
    // Whatever the previous suite left (or a fresh lab): converge to the lab runbook first.
    lab = await withLab();
    const r = await cli(['apply', lab.runbookPath, '--renderer', 'silent', '--no-verify']);
    expect(r.code, r.err).toBe(0);
  });

  it('a re-apply that changes nothing touches nothing: no failover test, same nginx master, VIP stays', async () => {
    const before = [await masterPid(0), await masterPid(1)];
    const { r, failed, holders } = await applyUnderLoad();
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain('nothing changed on any node: no failover test');
    expect(ranSteps(lab.runbookPath)).toEqual({ node1: [], node2: [] });
    expect(failed).toHaveLength(0);
    expect(holders).toEqual(['node1']);
    expect([await masterPid(0), await masterPid(1)]).toEqual(before);
  });

  it('removing a module rebuilds nginx only, rolls node2 then node1 with the VIP moved away first: 0 failed requests', async () => {
    const doc = parse(readFileSync(lab.runbookPath, 'utf8'));
    doc.build.modules = doc.build.modules.filter((m: string) => m !== 'fancyindex');
    writeFileSync(lab.runbookPath, stringify(doc));
    const { r, failed, holders } = await applyUnderLoad(['--no-verify']);
    expect(r.code, r.out + r.err).toBe(0);
    expect(failed).toHaveLength(0);
    expect(r.out).toMatch(/roll: disruptive steps run one node at a time: node2 -> node1 \(VIP on node1\)/);
    expect(r.out).toMatch(/roll: node2: health gate passed/);
    expect(r.out).toMatch(/roll: node1: VIP moved away before install: node1 -> node2/);
    expect(r.out).toMatch(/roll: cluster: roll finished; promotions cleared \(VIP on node1\)/);
    expect(holders.sort()).toEqual(['node1', 'node2']);
    const ran = ranSteps(lab.runbookPath);
    for (const node of ['node1', 'node2'] as const) {
      expect(ran[node]).toEqual(expect.arrayContaining(['configure', 'build', 'install', 'nginx-service']));
      expect(ran[node]).not.toContain('keepalived-build');
      expect(ran[node]).not.toContain('start');
    }
    for (const i of [0, 1]) expect((await lab.ssh(i, '/usr/local/nginx/sbin/nginx -V 2>&1')).stdout).not.toContain('ngx-fancyindex');
    const record = JSON.parse(readFileSync(join(lab.runbookPath, '..', 'records', 'lab', 'last-run.json'), 'utf8'));
    expect(record.serving).toBe(true);
    expect(record.roll.map((e: { node: string }) => e.node)).toEqual(['node2', 'node1', 'node1', 'cluster']);
  });

  it('a config-only change reloads nginx: only nginx-config runs, same master PID, 0 failed requests', async () => {
    const before = [await masterPid(0), await masterPid(1)];
    const doc = parse(readFileSync(lab.runbookPath, 'utf8'));
    doc.site.serverName = 'day2.example';
    writeFileSync(lab.runbookPath, stringify(doc));
    const { r, failed, holders } = await applyUnderLoad(['--no-verify']);
    expect(r.code, r.err).toBe(0);
    expect(failed).toHaveLength(0);
    expect(holders).toEqual(['node1']);
    expect(ranSteps(lab.runbookPath)).toEqual({ node1: ['nginx-config'], node2: ['nginx-config'] });
    expect([await masterPid(0), await masterPid(1)]).toEqual(before);
    expect((await lab.ssh(0, 'grep -c "server_name day2.example" /usr/local/nginx/conf/conf.d/ha-site.conf')).stdout.trim()).toBe('1');
  });

  it('a change to a serving cluster is verified with the zero-loss planned failover, never a crash', async () => {
    const doc = parse(readFileSync(lab.runbookPath, 'utf8'));
    doc.site.serverName = '_';
    writeFileSync(lab.runbookPath, stringify(doc));
    const { r, failed } = await applyUnderLoad();
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/scenario planned: PASSED/);
    expect(r.out).not.toMatch(/nginx-crash/);
    expect(failed).toHaveLength(0);
  });
});
