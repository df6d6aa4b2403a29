import { existsSync, readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { parse } from 'yaml';
import { main } from '../../src/cli/main.js';
import { labPaths } from '../../src/lab/config.js';
import { labDown, labLeftovers, labSsh, readState } from '../../src/lab/lab.js';
import { runLocal } from '../../src/local.js';
import { validateRunbook } from '../../src/runbook/validate.js';

const paths = labPaths();

/** What of the lab is still on this machine, checked right after a command returns. */
const leftovers = async () => (await labLeftovers(paths)).map((l) => l.what);

async function cli(argv: string[], cwd: string) {
  let out = '';
  let err = '';
  const code = await main(argv, {
    cwd,
    interactive: false,
    stdout: (s) => {
      out += s;
    },
    stderr: (s) => {
      err += s;
    },
  });
  return { code, out, err };
}

describe.skipIf(!inject('labAvailable'))('lab lifecycle on this machine', () => {
  const cwd = mkdtempSync(join(tmpdir(), 'ha-setup-lab-'));
  // The host's own setting, read once no lab is up (a lab left running would have changed it).
  let forwardingBefore = '';

  it('lab up brings up 2 booted Debian nodes and writes a valid runbook', async () => {
    await labDown(() => {});
    forwardingBefore = readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim();
    const r = await cli(['lab', 'up', '--no-download'], cwd);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const doc = parse(readFileSync(join(cwd, 'runbooks', 'lab.yaml'), 'utf8'));
    const v = validateRunbook(doc);
    expect(v.problems).toEqual([]);
    expect(doc.build).toMatchObject({ flavor: 'nginx', version: '1.22.1', modules: ['fancyindex', 'lua'] });
    expect(doc.keepalived.version).toBe('2.2.7');
    expect(doc.nodes.map((n: { host: string }) => n.host)).toEqual(['10.213.0.11', '10.213.0.12']);
  });

  it('nodes answer SSH with host-key checking on, run systemd, reach each other and the package archive', async () => {
    const state = readState(paths)!;
    for (const [i, node] of state.nodes.entries()) {
      const r = await labSsh(
        paths,
        node.ip,
        'hostname; systemctl is-system-running; cat /etc/os-release | grep ^VERSION_CODENAME',
      );
      expect(r.stdout).toContain(node.name);
      expect(r.stdout).toMatch(/running|degraded/);
      expect(r.stdout).toContain('VERSION_CODENAME=bookworm');
      const peer = state.nodes[(i + 1) % state.nodes.length];
      const ping = await labSsh(paths, node.ip, `ping -c1 -W2 ${peer.ip}`, { allowFailure: true });
      expect(ping.code, ping.stdout + ping.stderr).toBe(0);
    }
    const apt = await labSsh(paths, state.nodes[0].ip, 'apt-get update -q 2>&1 | tail -3', { timeoutMs: 300_000 });
    expect(apt.stdout).toMatch(/Reading package lists/);
    expect(apt.stdout).not.toMatch(/Failed to fetch|Could not resolve/);
  });

  it('refuses an unknown host key (checking is really on)', async () => {
    const state = readState(paths)!;
    const emptyKnownHosts = join(cwd, 'empty_known_hosts');
    writeFileSync(emptyKnownHosts, '');
    const r = await runLocal(
      'ssh',
      [
        '-i',
        paths.key,
        '-o',
        `UserKnownHostsFile=${emptyKnownHosts}`,
        '-o',
        'StrictHostKeyChecking=yes',
        '-o',
        'BatchMode=yes',
        `root@${state.nodes[0].ip}`,
        'true',
      ],
      { allowFailure: true },
    );
    expect(r.code).toBe(255);
    expect(r.stderr).toMatch(/Host key verification failed/);
  });

  it(
    "init --lookup-interface reads the first node's interfaces over SSH and takes the one in the VIP's subnet; " +
      'an unknown host key is refused without --accept-new-host-keys',
    async () => {
      const state = readState(paths)!;
      const dir = mkdtempSync(join(tmpdir(), 'ha-setup-lookup-'));
      const args = [
        'init',
        '--hosts',
        state.nodes.map((n) => n.ip).join(','),
        '--vip',
        `${state.vip}/24`,
        '--identity-file',
        paths.key,
        '--lookup-interface',
        '--yes',
        '--name',
        'looked-up',
      ];
      const refused = await cli(args, dir);
      expect(refused.code).toBe(2);
      expect(refused.out + refused.err).toMatch(/could not look up the interfaces on 10\.213\.0\.11: .*host key/i);
      expect(refused.err).toContain('--interface');
      expect(existsSync(join(dir, 'runbooks', 'looked-up.known_hosts'))).toBe(false);

      const r = await cli([...args, '--accept-new-host-keys'], dir);
      expect(r.code, r.out + r.err).toBe(0);
      const doc = parse(readFileSync(join(dir, 'runbooks', 'looked-up.yaml'), 'utf8'));
      expect(doc.vrrp.interface).toBe('host0');
      // the key was recorded beside the runbook, where apply looks for it
      expect(readFileSync(join(dir, 'runbooks', 'looked-up.known_hosts'), 'utf8')).toContain('10.213.0.11');
    },
  );

  it('a non-root user with sudo works on the nodes', async () => {
    const state = readState(paths)!;
    const r = await labSsh(paths, state.nodes[1].ip, 'id -un; sudo -n id -u', { user: 'hauser' });
    expect(r.stdout.split('\n').slice(0, 2)).toEqual(['hauser', '0']);
  });

  it('nodes compile through the compiler cache they share: what node1 compiled is a hit on node2', async () => {
    const state = readState(paths)!;
    // A source nothing else compiles, so the first compile is a miss whatever the cache holds.
    const src = `int ha_setup_lab_probe_${Date.now()}(void) { return 42; }`;
    const compile =
      `echo ${JSON.stringify(src)} > /tmp/probe.c && ccache -z >/dev/null && cc -c /tmp/probe.c -o ` +
      `/tmp/probe.o && ccache --print-stats`;
    // build-essential is not in the base image (apply installs it); the probe needs a compiler.
    for (const node of state.nodes) {
      const gcc = await labSsh(
        paths,
        node.ip,
        'command -v x86_64-linux-gnu-gcc-12 >/dev/null || (apt-get update -q && apt-get install -y -q ' +
          '--no-install-recommends gcc) >/dev/null 2>&1; readlink /usr/local/bin/cc',
        { timeoutMs: 300_000 },
      );
      expect(gcc.stdout.trim()).toBe('/usr/bin/ccache');
    }
    const stat = (out: string, key: string) => Number(new RegExp(`^${key}\\t(\\d+)$`, 'm').exec(out)?.[1]);
    const first = await labSsh(paths, state.nodes[0].ip, compile);
    expect(stat(first.stdout, 'cache_miss')).toBe(1);
    const second = await labSsh(paths, state.nodes[1].ip, compile);
    expect(stat(second.stdout, 'direct_cache_hit') + stat(second.stdout, 'preprocessed_cache_hit')).toBe(1);
  });

  it('lab up again on a live lab changes nothing', async () => {
    const before = readFileSync(paths.stateFile, 'utf8');
    const r = await cli(['lab', 'up', '--no-download'], cwd);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/already up \(nothing changed\)/);
    expect(readFileSync(paths.stateFile, 'utf8')).toBe(before);
  });

  it('lab status reports every node', async () => {
    const r = await cli(['lab', 'status', '--json'], cwd);
    expect(r.code).toBe(0);
    const s = JSON.parse(r.out);
    expect(s.nodes).toHaveLength(2);
    expect(s.nodes.every((n: { ssh: boolean }) => n.ssh)).toBe(true);
  });

  it('recovers from a lab whose processes were killed', async () => {
    const state = readState(paths)!;
    for (const n of state.nodes) process.kill(n.pid!, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 500));
    const r = await cli(['lab', 'up', '--no-download'], cwd);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/lab is up in/);
    const again = readState(paths)!;
    expect((await labSsh(paths, again.nodes[0].ip, 'true', { allowFailure: true })).code).toBe(0);
  });

  // A newcomer's trial found, right after `lab down` returned, once a NAT rule and once an nspawn
  // process that vanished a moment later: it returns only when nothing is left, every time.
  it('lab down leaves nothing behind, checked the moment it returns, three times in a row', async () => {
    for (let round = 1; round <= 2; round++) {
      expect((await cli(['lab', 'down'], cwd)).code).toBe(0);
      expect(await leftovers(), `round ${round}`).toEqual([]);
      expect((await cli(['lab', 'up', '--no-download'], cwd)).code).toBe(0);
    }
    const r = await cli(['lab', 'down'], cwd);
    expect(r.code).toBe(0);
    expect(await leftovers()).toEqual([]);
    expect(readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim()).toBe(forwardingBefore);
    const twice = await cli(['lab', 'down'], cwd);
    expect(twice.code).toBe(0);
    expect(twice.out).toMatch(/no lab was up/);
  });
});
