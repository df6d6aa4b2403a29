import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { LabDistro } from '../../../src/lab/config.js';
import { LAB_OPENRESTY } from '../../../src/lab/runbook.js';
import { runbookToYaml } from '../../../src/runbook/io.js';
import { startProber } from '../../../src/verify/probe.js';
import { cli, ranSteps } from './cli.js';
import { startGitServer, type GitServer } from './git-server.js';
import { expectNoOrphanNginx, installModuleServices } from './services.js';
import { keptKeepalivedVersion, openrestyModulesRunbook } from './openresty-runbook.js';
import { withLab, type Lab } from './with-lab.js';

/**
 * The wizard's default, OpenResty 1.27.1.2 in /usr/local/openresty, with the articles' modules
 * configured from the runbook, end to end on lab nodes of `distro`:
 * - bookworm (10-openresty) starts from the serving nginx pair the earlier suites leave: switched to
 *   OpenResty node by node, then cache-purge added to the serving OpenResty pair (two builds; 10b
 *   and 11-tls start from the second), rolled back and forward again;
 * - trixie (13-openresty-trixie) installs on fresh Debian 13 nodes (one build, cache-purge in it).
 * Then on both: status, a no-op re-apply, resty, verified failover, each module answering requests.
 */
export function openrestySuite(distro: LabDistro): void {
  const switched = distro === 'bookworm';
  describe.skipIf(!inject('labAvailable'))(`OpenResty 1.27.1.2 with the articles' modules on ${distro}`, () => {
    let lab: Lab;
    let git: GitServer;
    let n1: string;
    let n2: string;
    let keepalivedVersion: string | undefined;
    const get = (node: number, args: string) => lab.ssh(node, `curl -sS -m 10 ${args}`);
    const home = '/usr/local/openresty/nginx';
    const sbin = `${home}/sbin`;
    const masterPid = (i: number) => lab.ssh(i, `cat ${home}/logs/nginx.pid`).then((r) => r.stdout.trim());
    const systemdMainPid = (i: number) =>
      lab.ssh(i, 'systemctl show -p MainPID --value nginx').then((r) => r.stdout.trim());
    const hasCachePurge = async (i: number) =>
      (await lab.ssh(i, `${sbin}/nginx -V 2>&1`)).stdout.includes('ngx_cache_purge');
    const writeRunbook = (cachePurge: boolean) =>
      writeFileSync(
        lab.runbookPath,
        runbookToYaml(openrestyModulesRunbook(lab, git.base, { cachePurge, keepalivedVersion })),
      );

    /** Runs `argv` with a 20 ms prober through the VIP; returns the result and the failed requests. */
    async function underLoad(argv: string[]) {
      const prober = startProber(lab.state.vip, 80, 20, 500);
      const started = Date.now();
      const r = await cli(argv);
      const samples = await prober.stop();
      const failed = samples.filter((s) => !s.ok);
      console.log(
        `${argv[0]}: ${Date.now() - started} ms; ${samples.length} requests through the VIP, ${failed.length} failed`,
      );
      for (const f of failed) console.log(`  failed request sent at ${Math.round(f.sentAt)} ms: ${f.error}`);
      return { r, failed };
    }

    beforeAll(async () => {
      lab = await withLab(switched ? {} : { fresh: true, distro });
      [n1, n2] = lab.state.nodes.map((n) => n.ip);
      // The earlier suites leave an nginx pair serving (09: nginx 1.26.3); alone, this suite installs the lab's first.
      if (switched && (await cli(['status', lab.runbookPath])).code !== 0) {
        const r = await cli(['apply', lab.runbookPath, '--renderer', 'silent', '--no-verify']);
        expect(r.code, r.out + r.err).toBe(0);
      }
      git = await startGitServer(lab.state.nodes[0].ip.replace(/\.\d+$/, '.1'));
      await installModuleServices(lab);
      for (const i of [0, 1]) {
        expect((await lab.ssh(i, 'mkdir -p /srv/lab-files && echo one > /srv/lab-files/alpha.txt')).code).toBe(0);
      }
      keepalivedVersion = switched ? await keptKeepalivedVersion(lab) : undefined;
      writeRunbook(!switched);
    });

    afterAll(async () => {
      await git?.stop();
    });

    it('plan shows the rebuilt tarball by path and its own pin (the official pin stays for users)', async () => {
      const r = await cli(['plan', lab.runbookPath, '--offline']);
      expect(r.code, r.err).toBe(0);
      expect(r.out).toContain(`sha256 ${LAB_OPENRESTY.sha256.slice(0, 12)}`);
      expect(r.out).not.toMatch(/warning: source openresty/);
    });

    if (switched) {
      it('a serving nginx pair switched to OpenResty node by node: 0 failed, the old prefix kept', async () => {
        const { r, failed } = await underLoad(['apply', lab.runbookPath, '--renderer', 'silent']);
        expect(r.code, r.out + r.err).toBe(0);
        expect(failed).toHaveLength(0);
        expect(r.out).toMatch(/roll: disruptive steps run one node at a time: node2 -> node1/);
        for (const i of [0, 1]) {
          // The nginx flavor's files stay, for going back.
          expect((await lab.ssh(i, 'test -x /usr/local/nginx/sbin/nginx && echo kept')).stdout.trim()).toBe('kept');
        }
      });
    } else {
      it('installs on fresh Debian 13 nodes: apply ends with a verified failover', async () => {
        const r = await cli(['apply', lab.runbookPath, '--renderer', 'silent']);
        expect(r.code, r.out + r.err).toBe(0);
        expect(r.out).toMatch(/scenario [a-z-]+: PASSED/);
        expect((await lab.ssh(0, '. /etc/os-release && echo $VERSION_CODENAME')).stdout.trim()).toBe('trixie');
      });
    }

    it('OpenResty serves through the VIP from its own prefix and unit', async () => {
      for (const i of [0, 1]) {
        expect((await lab.ssh(i, '/usr/local/openresty/nginx/sbin/nginx -v 2>&1')).stdout).toContain(
          'openresty/1.27.1.2',
        );
        expect((await lab.ssh(i, 'systemctl show -p ExecStart --value nginx')).stdout).toContain(
          '/usr/local/openresty/nginx/sbin/nginx',
        );
      }
      const head = await fetch(`http://${lab.state.vip}/ha-health`, { signal: AbortSignal.timeout(3000) });
      expect(head.headers.get('server')).toBe('openresty');
    });

    it("status finds OpenResty's binary; a re-apply changes nothing; resty and cjson run on the nodes", async () => {
      const s = JSON.parse((await cli(['status', lab.runbookPath, '--json'])).out);
      expect(s.nodes.map((n: { nginxVersion: string }) => n.nginxVersion)).toEqual([
        'nginx version: openresty/1.27.1.2',
        'nginx version: openresty/1.27.1.2',
      ]);
      const again = await cli(['apply', lab.runbookPath, '--renderer', 'silent']);
      expect(again.code, again.err).toBe(0);
      expect(ranSteps(lab.runbookPath)).toEqual({ node1: [], node2: [] });
      expect(again.out).toContain('nothing changed on any node: no failover test');
      const resty = await lab.ssh(
        0,
        `/usr/local/openresty/bin/resty -e 'print(require("cjson").encode({ok = require("resty.core") ~= nil}))'`,
      );
      expect(resty.stdout.trim()).toBe('{"ok":true}');
      // The handover doc names the binary where OpenResty keeps it.
      const doc = readFileSync(join(dirname(lab.runbookPath), 'lab.handover.md'), 'utf8');
      expect(doc).toContain('| nginx binary | `/usr/local/openresty/nginx/sbin/nginx` |');
    });

    it('failover verified on OpenResty: planned with 0 failed requests, and an nginx crash', async () => {
      const planned = await cli(['verify', lab.runbookPath]);
      expect(planned.code, planned.out + planned.err).toBe(0);
      expect(planned.out).toMatch(/scenario planned: PASSED[\s\S]*; 0 of \d+ probe requests failed/);
      const crash = await cli(['verify', lab.runbookPath, '--scenario', 'nginx-crash', '--yes']);
      expect(crash.code, crash.out + crash.err).toBe(0);
      await expectNoOrphanNginx(lab);
    });

    if (switched) {
      it('cache-purge added to the serving OpenResty pair: rebuilt, rolled node by node, 0 failed', async () => {
        const pidsBefore = [await masterPid(0), await masterPid(1)];
        writeRunbook(true);
        const { r, failed } = await underLoad(['apply', lab.runbookPath, '--renderer', 'silent']);
        expect(r.code, r.out + r.err).toBe(0);
        expect(failed).toHaveLength(0);
        expect(r.out).toMatch(/roll: disruptive steps run one node at a time: node2 -> node1/);
        const ran = ranSteps(lab.runbookPath);
        for (const node of ['node1', 'node2']) {
          expect(ran[node]).toEqual(expect.arrayContaining(['build', 'install']));
          // A module is nginx's business: keepalived is neither rebuilt nor restarted.
          expect(ran[node].filter((s) => /^keepalived-/.test(s))).toEqual([]);
        }
        for (const i of [0, 1]) {
          expect(await hasCachePurge(i)).toBe(true);
          // Hot upgrade in OpenResty's prefix: a new master that systemd tracks, the old binary kept.
          const pid = await masterPid(i);
          expect(pid).not.toBe(pidsBefore[i]);
          expect(await systemdMainPid(i)).toBe(pid);
          expect((await lab.ssh(i, `${sbin}/nginx.old -V 2>&1`)).stdout).not.toContain('ngx_cache_purge');
        }
      });

      it('rollback brings the build without cache-purge back, apply installs the new one again: 0 failed', async () => {
        const back = await underLoad(['rollback', lab.runbookPath]);
        expect(back.r.code, back.r.out + back.r.err).toBe(0);
        expect(back.failed).toHaveLength(0);
        expect(back.r.out).toMatch(/rollback: one node at a time: node2 -> node1/);
        for (const i of [0, 1]) {
          expect(await hasCachePurge(i)).toBe(false);
          expect(await systemdMainPid(i)).toBe(await masterPid(i));
          // ...with the configuration it ran with: no cache location.
          expect((await get(i, "-o /dev/null -w '%{http_code}' -X PURGE http://127.0.0.1/cached/p")).stdout).not.toBe(
            '200',
          );
        }
        const forward = await underLoad(['apply', lab.runbookPath, '--renderer', 'silent', '--no-verify']);
        expect(forward.r.code, forward.r.out + forward.r.err).toBe(0);
        expect(forward.failed).toHaveLength(0);
        const ran = ranSteps(lab.runbookPath);
        for (const node of ['node1', 'node2']) {
          expect(ran[node]).toContain('install');
          expect(ran[node]).not.toContain('build');
        }
        for (const i of [0, 1]) expect(await hasCachePurge(i)).toBe(true);
      });
    }

    it('modules in the OpenResty build work as configured: check, sticky, LDAP, listing, cache and PURGE', async () => {
      const status = async () =>
        JSON.parse((await get(0, "'http://127.0.0.1/check_status?format=json'")).stdout).servers.server as Array<{
          name: string;
          status: string;
        }>;
      expect((await status()).map((x) => x.status)).toEqual(['up', 'up']);
      await lab.ssh(1, 'systemctl stop lab-backend');
      try {
        await new Promise((res) => setTimeout(res, 2500));
        expect((await status()).find((x) => x.name.startsWith(n2))?.status).toBe('down');
        for (let k = 0; k < 5; k++) {
          expect((await get(0, 'http://127.0.0.1/')).stdout).toContain(`backend ${n1}:9001`);
        }
      } finally {
        await lab.ssh(1, 'systemctl start lab-backend');
      }
      await new Promise((res) => setTimeout(res, 1500));
      // Sticky on nginx >= 1.23: the cookie nginx sets, hashed consistently; the same client stays,
      // on this node and on the other (the VIP's next holder).
      const jar = await lab.ssh(
        0,
        'rm -f /tmp/jar; curl -sS -m 5 -c /tmp/jar http://127.0.0.1/ >/dev/null; ' +
          'awk \'$6 == "route" {print $7}\' /tmp/jar',
      );
      const route = jar.stdout.trim();
      expect(route).toMatch(/^[0-9a-f]{32}$/);
      const seen = new Set<string>();
      for (const i of [0, 1])
        for (let k = 0; k < 5; k++)
          seen.add((await get(i, `-H 'Cookie: route=${route}' http://127.0.0.1/`)).stdout.split(' ')[1]);
      expect(seen.size).toBe(1);
      const code = async (user: string) =>
        (await get(0, `-o /dev/null -w '%{http_code}' ${user} http://127.0.0.1/ldap/`)).stdout.trim();
      expect(await code('')).toBe('401');
      expect(await code('-u alice:wonderland')).toBe('200');
      expect((await get(0, 'http://127.0.0.1/files/')).stdout).toContain('alpha.txt');
      // cache-purge: site.cache keeps /cached/, PURGE from localhost removes an entry.
      const cache = async () =>
        (
          await get(0, "-D - -o /dev/null http://127.0.0.1/cached/p | grep -i '^x-cache-status' | tr -d '\\r'")
        ).stdout.trim();
      await cache();
      expect(await cache()).toMatch(/HIT/);
      expect((await get(0, "-o /dev/null -w '%{http_code}' -X PURGE http://127.0.0.1/cached/p")).stdout.trim()).toBe(
        '200',
      );
      expect(await cache()).toMatch(/MISS/);
    });
  });
}
