import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { parse } from 'yaml';
import { cli, ranSteps } from './helpers/cli.js';
import { withLab } from './helpers/with-lab.js';

// The same runbook builds the next cluster: a fresh pair of lab nodes on another subnet.
describe.skipIf(!inject('labAvailable'))('replay a runbook on new hosts', () => {
  it('apply --hosts --vip writes a runbook for the new cluster and builds it', async () => {
    const old = await withLab();
    // The new pair: a fresh lab on 10.214.0.0/24 (the old runbook still names 10.213.0.x).
    const lab = await withLab({ fresh: true, subnet: '10.214.0.0/24' });
    const r = await cli([
      'apply',
      old.runbookPath,
      '--hosts',
      '10.214.0.11,10.214.0.12',
      '--vip',
      '10.214.0.100/24',
      '--name',
      'lab-two',
      '--renderer',
      'silent',
      '--no-verify',
    ]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const file = join(old.runbookPath, '..', 'lab-two.yaml');
    expect(existsSync(file)).toBe(true);
    const doc = parse(readFileSync(file, 'utf8'));
    expect(
      doc.nodes.map((n: { host: string; role: string; priority: number }) => [n.host, n.role, n.priority]),
    ).toEqual([
      ['10.214.0.11', 'master', 100],
      ['10.214.0.12', 'backup', 90],
    ]);
    expect(doc.vrrp.vip).toBe('10.214.0.100/24');
    expect(ranSteps(file, 'lab-two').node1).toContain('build');
    const health = await fetch('http://10.214.0.100/ha-health', { signal: AbortSignal.timeout(3000) });
    expect((await health.text()).trim()).toBe('node1');
    expect(lab.state.nodes[0].ip).toBe('10.214.0.11');
  });
});
