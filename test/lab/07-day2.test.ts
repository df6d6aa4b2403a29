import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
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
  async function applyUnderLoad(extra: string[] = [], command = 'apply') {
    const prober = startProber(lab.state.vip, 80, 20, 500);
    // node2 straight, not through the VIP: it rolls first while node1 holds the VIP, so only the
    // hot upgrade keeps its requests from failing.
    const direct = startProber(lab.state.nodes[1].ip, 80, 20, 500);
    const started = Date.now();
    const r = await cli([command, lab.runbookPath, ...(command === 'apply' ? ['--renderer', 'silent'] : []), ...extra]);
    const samples = await prober.stop();
    const directSamples = await direct.stop();
    const failed = samples.filter((s) => !s.ok);
    const failedDirect = directSamples.filter((s) => !s.ok);
    console.log(
      `${command} ${extra.join(' ')}: ${Date.now() - started} ms; ` +
        `VIP: ${samples.length} requests, ${failed.length} failed; node2 ` +
        `direct: ${directSamples.length} requests, ${failedDirect.length} failed`,
    );
    // Which request failed, when and how (a reset, a timeout): what tells a VIP flip from a restart.
    for (const f of [...failed, ...failedDirect])
      console.log(`  failed request sent at ${Math.round(f.sentAt)} ms: ${f.error}`);
    return { r, failed, failedDirect, samples, holders: [...new Set(samples.filter((s) => s.ok).map((s) => s.node))] };
  }
  /** Everything apply logged for a node on this machine (runbooks/logs/<run>/<node>.log). */
  const nodeLogs = (node: string) => {
    const dir = join(lab.runbookPath, '..', 'logs');
    return readdirSync(dir)
      .map((run) => join(dir, run, `${node}.log`))
      .filter((f) => existsSync(f))
      .map((f) => readFileSync(f, 'utf8'))
      .join('\n');
  };
  const systemdMainPid = (i: number) =>
    lab.ssh(i, 'systemctl show -p MainPID --value nginx').then((r) => r.stdout.trim());
  const nginxV = (i: number) => lab.ssh(i, '/usr/local/nginx/sbin/nginx -V 2>&1').then((r) => r.stdout);

  /** Sets build.modules, applies under load and checks the roll lost nothing; returns the apply. */
  async function changeModulesAndRoll(modules: (current: string[]) => string[]) {
    const doc = parse(readFileSync(lab.runbookPath, 'utf8'));
    doc.build.modules = modules(doc.build.modules);
    writeFileSync(lab.runbookPath, stringify(doc));
    const res = await applyUnderLoad(['--no-verify']);
    expect(res.r.code, res.r.out + res.r.err).toBe(0);
    expect(res.failed).toHaveLength(0);
    expect(res.failedDirect).toHaveLength(0);
    expect(res.r.out).toMatch(/roll: disruptive steps run one node at a time: node2 -> node1 \(VIP on node1\)/);
    return res;
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

  const luaStatus = (i: number) =>
    lab.ssh(i, 'curl -s -o /dev/null -w "%{http_code}" http://127.0.0.1/ha-lua').then((r) => r.stdout.trim());

  // Two modules out in one roll: fancyindex (nothing in the configuration uses it) and lua together
  // with the location that uses it (a binary without lua refuses the old configuration, so the new
  // binary waits for the new configuration and both go in together).
  it(
    'removing modules rebuilds nginx only, rolls node2 then node1 with the VIP moved away first, ' +
      'the new binary going in with its configuration: 0 failed requests',
    async () => {
      expect([await luaStatus(0), await luaStatus(1)]).toEqual(['200', '200']);
      const pidsBefore = [await masterPid(0), await masterPid(1)];
      const { r, holders } = await changeModulesAndRoll((m) => m.filter((x) => x !== 'fancyindex' && x !== 'lua'));
      expect(r.out).toMatch(/roll: node2: health gate passed/);
      expect(r.out).toMatch(/roll: node1: VIP moved away before install: node1 -> node2/);
      expect(r.out).toMatch(/roll: cluster: roll finished; promotions cleared \(VIP on node1\)/);
      expect(holders.sort()).toEqual(['node1', 'node2']);
      const ran = ranSteps(lab.runbookPath);
      for (const node of ['node1', 'node2'] as const) {
        expect(ran[node]).toEqual(
          expect.arrayContaining(['configure', 'build', 'install', 'nginx-config', 'nginx-service']),
        );
        expect(ran[node]).not.toContain('keepalived-build');
        expect(ran[node]).not.toContain('start');
      }
      for (const i of [0, 1]) {
        expect(await nginxV(i)).not.toContain('ngx-fancyindex');
        expect(await nginxV(i)).not.toContain('lua-nginx-module');
        expect(await luaStatus(i)).toBe('404');
        // Hot upgrade, not a restart: a new master, tracked by systemd, the old binary kept.
        const pid = await masterPid(i);
        expect(pid).not.toBe(pidsBefore[i]);
        expect(await systemdMainPid(i)).toBe(pid);
        expect(
          (
            await lab.ssh(
              i,
              'systemctl is-active nginx; /usr/local/nginx/sbin/nginx.old -V 2>&1 | grep -c ngx-fancyindex',
            )
          ).stdout
            .trim()
            .split('\n'),
        ).toEqual(['active', '1']);
        const log = nodeLogs(`node${i + 1}`);
        // the new binary waited for the configuration written for it (the old one has /ha-lua)
        expect(log).toContain(
          'the running nginx moves to the new binary once nginx-config has written the configuration for it',
        );
        expect(log).toContain(`hot upgrade: done: master ${pid} serves with the new binary; systemd MainPID ${pid}`);
        expect(
          (
            await lab.ssh(
              i,
              'ls -a /usr/local/nginx | grep -c "ha-setup-upgrade-pending\\|ha-setup-conf-before-upgrade"',
            )
          ).stdout.trim(),
        ).toBe('0');
      }
      const record = JSON.parse(readFileSync(join(lab.runbookPath, '..', 'records', 'lab', 'last-run.json'), 'utf8'));
      expect(record.serving).toBe(true);
      expect(record.roll.map((e: { node: string }) => e.node)).toEqual(['node2', 'node1', 'node1', 'cluster']);
    },
  );

  it(
    'rollback brings the previous build back with the configuration it ran with, node by node, ' +
      "and apply installs the runbook's build again: 0 failed requests",
    async () => {
      const back = await applyUnderLoad([], 'rollback');
      expect(back.r.code, back.r.out + back.r.err).toBe(0);
      expect(back.failed).toHaveLength(0);
      expect(back.failedDirect).toHaveLength(0);
      expect(back.r.out).toMatch(/rollback: one node at a time: node2 -> node1/);
      expect(back.r.out).toMatch(/roll: cluster: roll finished; promotions cleared \(VIP on node1\)/);
      for (const i of [0, 1]) {
        expect(await nginxV(i)).toContain('ngx-fancyindex');
        expect(await luaStatus(i)).toBe('200');
        expect(await systemdMainPid(i)).toBe(await masterPid(i));
      }
      // The runbook still says "neither": apply installs that build again (no rebuild), rolling.
      const forward = await applyUnderLoad(['--no-verify']);
      expect(forward.r.code, forward.r.out + forward.r.err).toBe(0);
      expect(forward.failed).toHaveLength(0);
      expect(forward.failedDirect).toHaveLength(0);
      const ran = ranSteps(lab.runbookPath);
      for (const node of ['node1', 'node2'] as const) {
        expect(ran[node]).toContain('install');
        expect(ran[node]).not.toContain('build');
      }
      for (const i of [0, 1]) {
        expect(await nginxV(i)).not.toContain('ngx-fancyindex');
        expect(await luaStatus(i)).toBe('404');
      }
    },
  );

  it(
    'adding the modules back rebuilds and rolls the same way, the module in every new master; ' +
      'rollback twice across it: 0 failed requests each',
    async () => {
      // A binary with lua does not even start without lua_package_path (resty.core), which only the
      // new configuration has; both go in together again.
      const { holders } = await changeModulesAndRoll((m) => [...m, 'lua', 'fancyindex']);
      expect(holders).toContain('node1');
      const ran = ranSteps(lab.runbookPath);
      for (const node of ['node1', 'node2'] as const) {
        expect(ran[node]).toEqual(expect.arrayContaining(['configure', 'build', 'install']));
        expect(ran[node]).not.toContain('keepalived-build');
      }
      for (const i of [0, 1]) {
        expect(await nginxV(i)).toContain('lua-nginx-module');
        expect(await nginxV(i)).toContain('ngx-fancyindex');
        expect(await luaStatus(i)).toBe('200');
        expect(await systemdMainPid(i)).toBe(await masterPid(i));
      }
      // Rollback across that change brings the previous binary back with the configuration it ran with
      // (it refused before: the binary without lua and a configuration with lua directives); twice is
      // the newer pair again.
      for (const [want, lua] of [
        ['404', false],
        ['200', true],
      ] as const) {
        const back = await applyUnderLoad([], 'rollback');
        expect(back.r.code, back.r.out + back.r.err).toBe(0);
        expect(back.failed).toHaveLength(0);
        for (const i of [0, 1]) {
          expect(await luaStatus(i)).toBe(want);
          expect((await nginxV(i)).includes('lua-nginx-module')).toBe(lua);
        }
      }
    },
  );

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
    expect(
      (await lab.ssh(0, 'grep -c "server_name day2.example" /usr/local/nginx/conf/conf.d/ha-site.conf')).stdout.trim(),
    ).toBe('1');
  });

  it(
    'a configuration nginx -t accepts but the master cannot load (init_by_lua fails at reload) fails the apply; ' +
      'the previous one keeps serving, 0 failed requests',
    async () => {
      const before = [await masterPid(0), await masterPid(1)];
      writeFileSync(join(lab.runbookPath, '..', 'boom.conf'), 'init_by_lua_block { error("boom at init") }\n');
      const doc = parse(readFileSync(lab.runbookPath, 'utf8'));
      doc.site.include = { ...(doc.site.include ?? {}), http: ['boom.conf'] };
      writeFileSync(lab.runbookPath, stringify(doc));
      const bad = await applyUnderLoad(['--no-verify']);
      expect(bad.r.code).toBe(1);
      expect(bad.r.out + bad.r.err).toMatch(/nginx did not take the new configuration/);
      expect(bad.r.out + bad.r.err).toMatch(/boom at init/);
      expect(bad.failed).toHaveLength(0);
      expect(bad.failedDirect).toHaveLength(0);
      expect([await masterPid(0), await masterPid(1)]).toEqual(before);
      // Taken out again: the apply converges (the stale include goes, the reload takes).
      doc.site.include.http = [];
      writeFileSync(lab.runbookPath, stringify(doc));
      const good = await applyUnderLoad(['--no-verify']);
      expect(good.r.code, good.r.out + good.r.err).toBe(0);
      expect(good.failed).toHaveLength(0);
      expect((await lab.ssh(0, 'ls /usr/local/nginx/conf/conf.d/')).stdout).not.toContain('boom');
    },
  );

  it(
    'a keepalived setting change (advert interval, check timing, realtime VRRP) reloads keepalived: same PID, ' +
      'VIP stays, 0 failed requests',
    async () => {
      const kaPid = (i: number) =>
        lab.ssh(i, 'systemctl show -p MainPID --value keepalived').then((r) => r.stdout.trim());
      const before = [await kaPid(0), await kaPid(1)];
      const doc = parse(readFileSync(lab.runbookPath, 'utf8'));
      doc.vrrp.advertInt = 2;
      doc.keepalived.check = { ...(doc.keepalived.check ?? {}), interval: 2, fall: 3 };
      doc.keepalived.rtPriority = 50;
      writeFileSync(lab.runbookPath, stringify(doc));
      const { r, failed, holders } = await applyUnderLoad(['--no-verify']);
      expect(r.code, r.out + r.err).toBe(0);
      expect(failed).toHaveLength(0);
      expect(holders).toEqual(['node1']);
      expect(ranSteps(lab.runbookPath)).toEqual({ node1: ['keepalived-config'], node2: ['keepalived-config'] });
      expect([await kaPid(0), await kaPid(1)]).toEqual(before);
      for (const i of [0, 1]) {
        const conf = (await lab.ssh(i, 'cat /etc/keepalived/keepalived.conf')).stdout;
        for (const line of [/^\s*advert_int 2$/m, /^\s*interval 2$/m, /^\s*fall 3$/m, /^\s*vrrp_rt_priority 50$/m])
          expect(conf).toMatch(line);
        // The VRRP process (a child of keepalived's main one) now runs realtime, without a restart.
        const sched = await lab.ssh(
          i,
          'for p in $(pgrep -P "$(systemctl show -p MainPID --value keepalived)"); do chrt -p "$p"; done',
        );
        // (SCHED_RESET_ON_FORK too: the check scripts it forks run at normal priority.)
        expect(sched.stdout).toMatch(/scheduling policy: SCHED_RR\b[^\n]*\n[^\n]*scheduling priority: 50\b/);
        // keepalived itself says it re-read the file (SIGHUP), in its own log.
        expect((await lab.ssh(i, 'grep -c "Reloading" /var/log/keepalived.log')).stdout.trim()).not.toBe('0');
      }
    },
  );

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

  // Ctrl-C mid-roll: no further node starts, the cluster keeps serving, and the output says where the
  // roll stopped; the next apply finishes it.
  it(
    'Ctrl-C during a roll stops before the next node with the cluster serving (exit 130, 0 failed requests); ' +
      'apply again finishes the roll',
    async () => {
      const { spawn } = await import('node:child_process');
      const doc = parse(readFileSync(lab.runbookPath, 'utf8'));
      doc.logging = { ...(doc.logging ?? {}), facility: doc.logging?.facility === 'local1' ? 'local2' : 'local1' };
      writeFileSync(lab.runbookPath, stringify(doc));
      const prober = startProber(lab.state.vip, 80, 20, 500);
      const bin = join(import.meta.dirname, '..', '..', 'bin', 'ha-setup.js');
      const child = spawn(process.execPath, [bin, 'apply', lab.runbookPath, '--renderer', 'simple', '--no-verify'], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, CI: 'true' },
      });
      let output = '';
      let interrupted = false;
      const onData = (d: Buffer) => {
        output += d;
        // The first node passed its gate: interrupt before the second one starts.
        if (!interrupted && /roll: node2: health gate passed/.test(output)) {
          interrupted = true;
          child.kill('SIGINT');
        }
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      const code = await new Promise<number | null>((res) => child.on('close', res));
      const failed = (await prober.stop()).filter((x) => !x.ok);
      expect(interrupted, output.slice(-2000)).toBe(true);
      expect(code, output.slice(-2000)).toBe(130);
      expect(failed).toHaveLength(0);
      // The signal meets the roll at one of two safe points (it races the roll's next check): before
      // node1 (the VIP goes home to node1), or at a step boundary inside node1 (node1 has not passed its
      // gate, so the VIP stays on node2). Either way the output says which, and the cluster serves.
      const before = /interrupted: the roll stopped before node1; the cluster serves from node1/.test(output);
      const during = /interrupted: the roll stopped during node1's steps; the cluster serves from node2/.test(output);
      expect(before || during, output.slice(-2000)).toBe(true);
      const holderIp = lab.state.nodes[before ? 0 : 1].ip;
      expect((await lab.ssh(before ? 0 : 1, 'ip -4 -o addr show dev host0')).stdout, holderIp).toContain(
        `${lab.state.vip}/`,
      );
      const again = await applyUnderLoad(['--no-verify']);
      expect(again.r.code, again.r.out + again.r.err).toBe(0);
      expect(again.failed).toHaveLength(0);
      expect(ranSteps(lab.runbookPath).node2).toEqual([]);
      for (const i of [0, 1])
        expect((await lab.ssh(i, 'cat /etc/rsyslog.d/01-ha-setup-keepalived.conf')).stdout).toContain(
          doc.logging.facility,
        );
    },
  );

  it(
    'a new binary that refuses the config stops the roll at the first node: the old binary serves there, exit 1, ' +
      '0 failed requests',
    async () => {
      const pidsBefore = [await masterPid(0), await masterPid(1)];
      const doc = parse(readFileSync(lab.runbookPath, 'utf8'));
      // nginx.conf says "gzip on": a build without the gzip module refuses it.
      doc.build.configureArgs = ['--without-http_gzip_module'];
      writeFileSync(lab.runbookPath, stringify(doc));
      const { r, failed, failedDirect, holders } = await applyUnderLoad(['--no-verify']);
      expect(r.code).toBe(1);
      expect(failed).toHaveLength(0);
      expect(failedDirect).toHaveLength(0);
      expect(holders).toEqual(['node1']);
      // install leaves the new binary waiting for the new configuration; nginx-config finds it refuses that too
      expect(r.err).toMatch(
        /the roll stopped at node2: step nginx-config failed; the cluster keeps serving from node1/,
      );
      expect(r.out + r.err).toMatch(
        /the new binary refuses the new .*nginx\.conf; master \d+ keeps serving with the old binary/,
      );
      expect(r.err).toMatch(/nodes not rolled yet: node1/);
      // node2: same master, the working binary back on disk, the failed one kept for inspection.
      expect([await masterPid(0), await masterPid(1)]).toEqual(pidsBefore);
      expect(
        (
          await lab.ssh(
            1,
            '/usr/local/nginx/sbin/nginx -t -q && /usr/local/nginx/sbin/nginx -V 2>&1 | grep -c ' +
              'without-http_gzip_module; ls /usr/local/nginx/sbin/nginx.failed',
          )
        ).stdout
          .trim()
          .split('\n'),
      ).toEqual(['0', '/usr/local/nginx/sbin/nginx.failed']);
      expect(ranSteps(lab.runbookPath).node1).not.toContain('install');
    },
  );
});
