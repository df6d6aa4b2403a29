import { readFileSync, writeFileSync } from 'node:fs';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { fillMirror } from '../../src/sources/mirror.js';
import { startProber } from '../../src/verify/probe.js';
import { cli, ranSteps } from './helpers/cli.js';
import { withLab, type Lab } from './helpers/with-lab.js';

// Version upgrades of a serving cluster: nginx 1.22.1 -> 1.26.3 and keepalived 2.2.7 -> 2.3.3, the
// newer originals taken from Debian trixie's source archive (pinned like the others), a client
// requesting the VIP every 20 ms. lua stays out: lua-nginx-module 0.10.23 (the one bookworm's
// lua-resty-core fits) predates nginx 1.23's header API, so this cluster builds fancyindex only.
describe.skipIf(!inject('labAvailable'))('upgrading nginx and keepalived on a serving cluster', () => {
  let lab: Lab;
  const edit = (fn: (doc: any) => void) => {
    const doc = parse(readFileSync(lab.runbookPath, 'utf8'));
    fn(doc);
    writeFileSync(lab.runbookPath, stringify(doc));
  };
  const onBoth = (cmd: string) => Promise.all([0, 1].map(async (i) => (await lab.ssh(i, cmd)).stdout.trim()));

  async function applyUnderLoad() {
    const prober = startProber(lab.state.vip, 80, 20, 500);
    const direct = startProber(lab.state.nodes[1].ip, 80, 20, 500);
    const started = Date.now();
    const r = await cli(['apply', lab.runbookPath, '--renderer', 'silent', '--no-verify']);
    const samples = await prober.stop();
    const directSamples = await direct.stop();
    const failed = samples.filter((s) => !s.ok);
    console.log(
      `apply: ${Date.now() - started} ms; VIP: ${samples.length} requests, ${failed.length} failed; node2 ` +
        `direct: ${directSamples.length} requests, ${directSamples.filter((s) => !s.ok).length} failed`,
    );
    for (const f of [...failed, ...directSamples.filter((s) => !s.ok)])
      console.log(`  failed request sent at ${Math.round(f.sentAt)} ms: ${f.error}`);
    return {
      r,
      failed,
      failedDirect: directSamples.filter((s) => !s.ok),
      holders: [...new Set(samples.filter((s) => s.ok).map((s) => s.node))],
    };
  }
  const vipHolders = () => onBoth(`ip -4 addr show | grep -c ' ${lab.state.vip}/' || true`);

  beforeAll(async () => {
    // The cluster the gateway suite left serving: it converges to 1.22.1 with fancyindex only first.
    lab = await withLab();
    await fillMirror(
      lab.paths.sourcesDir,
      [
        { id: 'nginx', version: '1.26.3' },
        { id: 'keepalived', version: '2.3.3' },
      ],
      { download: false },
    );
    edit((d) => {
      d.build.modules = ['fancyindex'];
      delete d.sources.overrides['lua-nginx-module'];
      delete d.sources.overrides.ngx_devel_kit;
    });
    const r = await cli(['apply', lab.runbookPath, '--renderer', 'silent', '--no-verify']);
    expect(r.code, r.out + r.err).toBe(0);
    expect(await onBoth('/usr/local/nginx/sbin/nginx -v 2>&1')).toEqual([
      'nginx version: nginx/1.22.1',
      'nginx version: nginx/1.22.1',
    ]);
  });

  it('nginx 1.22.1 -> 1.26.3: rebuilt, hot-upgraded node by node, keepalived untouched, 0 failed', async () => {
    const kaPids = await onBoth('systemctl show -p MainPID --value keepalived');
    edit((d) => {
      d.build.version = '1.26.3';
    });
    const { r, failed, failedDirect, holders } = await applyUnderLoad();
    expect(r.code, r.out + r.err).toBe(0);
    expect(failed).toHaveLength(0);
    expect(failedDirect).toHaveLength(0);
    const ran = ranSteps(lab.runbookPath);
    for (const steps of Object.values(ran)) {
      expect(steps).toContain('install');
      expect(steps.filter((s) => s.startsWith('keepalived'))).toEqual([]);
    }
    expect(await onBoth('/usr/local/nginx/sbin/nginx -v 2>&1')).toEqual([
      'nginx version: nginx/1.26.3',
      'nginx version: nginx/1.26.3',
    ]);
    expect(await onBoth('/usr/local/nginx/sbin/nginx -V 2>&1 | grep -c ngx-fancyindex')).toEqual(['1', '1']);
    // Served by the new binary: systemd tracks the new master, the previous build is kept.
    expect(
      await onBoth(
        '[ "$(systemctl show -p MainPID --value nginx)" = "$(cat /usr/local/nginx/logs/nginx.pid)" ] && readlink ' +
          '-f /proc/$(cat /usr/local/nginx/logs/nginx.pid)/exe; /usr/local/nginx/sbin/nginx.old -v 2>&1',
      ),
    ).toEqual(Array(2).fill('/usr/local/nginx/sbin/nginx\nnginx version: nginx/1.22.1'));
    expect(await onBoth('systemctl show -p MainPID --value keepalived')).toEqual(kaPids);
    expect(holders).toContain('node1');
    expect(await vipHolders()).toEqual(['1', '0']);
  });

  it(
    'keepalived 2.2.7 -> 2.3.3: rebuilt, restarted node by node with the VIP moved away first, nginx untouched, ' +
      '0 failed requests',
    async () => {
      const nginxPids = await onBoth('cat /usr/local/nginx/logs/nginx.pid');
      edit((d) => {
        d.keepalived.version = '2.3.3';
      });
      const { r, failed, failedDirect } = await applyUnderLoad();
      expect(r.code, r.out + r.err).toBe(0);
      expect(failed).toHaveLength(0);
      expect(failedDirect).toHaveLength(0);
      for (const steps of Object.values(ranSteps(lab.runbookPath))) {
        expect(steps).toContain('keepalived-build');
        expect(steps).not.toContain('build');
        expect(steps).not.toContain('install');
      }
      expect(
        await onBoth('/usr/local/keepalived/sbin/keepalived --version 2>&1 | head -1 | grep -o "v[0-9][0-9.]*"'),
      ).toEqual(['v2.3.3', 'v2.3.3']);
      expect(await onBoth('systemctl is-active keepalived')).toEqual(['active', 'active']);
      expect(await onBoth('cat /usr/local/nginx/logs/nginx.pid')).toEqual(nginxPids);
      // Back where the priorities say: node1 (priority 100, preempt) holds the VIP.
      for (let k = 0; k < 20 && (await vipHolders()).join() !== '1,0'; k++)
        await new Promise((res) => setTimeout(res, 250));
      expect(await vipHolders()).toEqual(['1', '0']);
    },
  );

  it('a re-apply after the upgrades changes nothing', async () => {
    const { r, failed } = await applyUnderLoad();
    expect(r.code, r.err).toBe(0);
    expect(failed).toHaveLength(0);
    expect(ranSteps(lab.runbookPath)).toEqual({ node1: [], node2: [] });
  });
});
