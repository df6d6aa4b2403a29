import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { cli, ranSteps } from './helpers/cli.js';
import { withLab, type Lab } from './helpers/with-lab.js';

const ALL = [
  'packages',
  'sources',
  'patch',
  'configure',
  'build',
  'install',
  'gateway-libs',
  'tls',
  'nginx-config',
  'nginx-service',
  'keepalived-sources',
  'keepalived-build',
  'health-check',
  'keepalived-config',
  'logging',
  'firewall',
  'start',
  'split-watch',
  'acme',
];

// The whole install plan, for real: 2 bookworm nodes, nginx 1.22.1 with fancyindex and lua (+ ndk),
// keepalived 2.2.7 from source, sources from the pinned offline mirror, over real SSH.
describe.skipIf(!inject('labAvailable'))('install plan end to end on the lab', () => {
  let lab: Lab;

  beforeAll(async () => {
    lab = await withLab({ fresh: true });
    // Nodes as customers have them: without the tools preflight's network checks need.
    for (const i of [0, 1]) {
      const r = await lab.ssh(
        i,
        'DEBIAN_FRONTEND=noninteractive apt-get remove -y -q tcpdump iputils-arping >/dev/null',
      );
      expect(r.code, r.stderr).toBe(0);
    }
  });

  it('apply takes two bare hosts to a working HA pair', async () => {
    const r = await cli(['apply', lab.runbookPath, '--renderer', 'silent', '--no-verify']);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/VIP 10\.213\.0\.100\/24 is held by node1/);
    expect(ranSteps(lab.runbookPath)).toEqual({ node1: ALL, node2: ALL });
    // Preflight installed tcpdump and arping itself, so the VIP and VRID checks ran for real.
    expect(r.out).not.toMatch(/could not (install|check|listen)/);
    for (const i of [0, 1]) expect((await lab.ssh(i, 'command -v tcpdump && command -v arping')).code).toBe(0);
  });

  it('nginx -V lists the modules on both nodes and the lua location answers', async () => {
    for (const i of [0, 1]) {
      const v = await lab.ssh(i, '/usr/local/nginx/sbin/nginx -V 2>&1');
      expect(v.stdout).toMatch(/--add-module=\S*ngx-fancyindex/);
      expect(v.stdout).toMatch(/--add-module=\S*ngx_devel_kit/);
      expect(v.stdout).toMatch(/--add-module=\S*lua-nginx-module/);
      expect(v.stdout).toMatch(/-Wl,-rpath,\/usr\/lib\/x86_64-linux-gnu/);
      const lua = await lab.ssh(i, 'curl -fsS http://127.0.0.1/ha-lua');
      expect(lua.stdout.trim()).toBe(`lua ok on node${i + 1}`);
    }
  });

  it('the VIP serves the site from the master, exactly one node holds it', async () => {
    const res = await fetch('http://10.213.0.100/ha-health', { signal: AbortSignal.timeout(3000) });
    expect((await res.text()).trim()).toBe('node1');
    const holders = await Promise.all([0, 1].map((i) => lab.ssh(i, 'ip -o -4 addr show dev host0')));
    expect(holders.map((h) => h.stdout.includes('10.213.0.100/24'))).toEqual([true, false]);
  });

  it('keepalived -t passes and logs land in /var/log/keepalived.log, not in the general syslog', async () => {
    const t = await lab.ssh(0, '/usr/local/keepalived/sbin/keepalived -t -f /etc/keepalived/keepalived.conf');
    expect(t.code).toBe(0);
    const marker = `ha-setup-log-test-${Date.now()}`;
    await lab.ssh(0, `logger -p local0.notice -t Keepalived_vrrp ${marker}; sleep 1`);
    const own = await lab.ssh(0, `grep -c ${marker} /var/log/keepalived.log`);
    expect(own.stdout.trim()).toBe('1');
    const general = await lab.ssh(
      0,
      `grep -c ${marker} /var/log/syslog /var/log/messages 2>/dev/null | awk -F: '{s+=$2} END {print s+0}'`,
    );
    expect(general.stdout.trim()).toBe('0');
    const transitions = await lab.ssh(0, 'grep -c "Entering MASTER STATE" /var/log/keepalived.log');
    expect(Number(transitions.stdout.trim())).toBeGreaterThan(0);
  });

  it('a second apply runs no step', async () => {
    const r = await cli(['apply', lab.runbookPath, '--renderer', 'silent', '--no-verify']);
    expect(r.code, r.err).toBe(0);
    expect(ranSteps(lab.runbookPath)).toEqual({ node1: [], node2: [] });
  });

  // Nothing stopped two runs against one cluster from interleaving journal writes and VIP moves.
  it(
    'two applies at once: one runs, the other refuses naming the run that holds the cluster; ' +
      "a dead run's lock is taken over",
    async () => {
      const [a, b] = await Promise.all([
        cli(['apply', lab.runbookPath, '--renderer', 'silent', '--no-verify']),
        cli(['apply', lab.runbookPath, '--renderer', 'silent', '--no-verify']),
      ]);
      expect([a.code, b.code].sort()).toEqual([0, 1]);
      const refused = a.code === 1 ? a : b;
      expect(refused.err).toMatch(
        /node\d is locked by run \S+ \(`ha-setup apply` by \S+@\S+, pid \d+, started [\dT:.Z-]+, alive \d+ s ago\)/,
      );
      expect((await lab.ssh(0, 'ls /var/lib/ha-setup/lock.json 2>/dev/null || echo released')).stdout.trim()).toBe(
        'released',
      );
      // A run that died (its lock's heartbeat stopped a minute ago) does not block the next one.
      const dead = JSON.stringify({
        lockId: 'x',
        runId: 'dead',
        owner: 'op@gone',
        pid: 1,
        command: 'apply',
        startedAt: '2026-12-01T00:00:00Z',
      });
      for (const i of [0, 1])
        await lab.ssh(
          i,
          `printf '%s\\n' '${dead}' > /var/lib/ha-setup/lock.json && touch -d '-1 minute' /var/lib/ha-setup/lock.json`,
        );
      const c = await cli(['apply', lab.runbookPath, '--renderer', 'silent', '--no-verify']);
      expect(c.code, c.err).toBe(0);
      expect(c.out).toMatch(/node1: took over a stale lock \(.*"runId":"dead".* heartbeat \d+ s ago\)/);
    },
  );

  it('plan shows every step done on a finished cluster', async () => {
    const r = await cli(['plan', lab.runbookPath]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).not.toMatch(/\[will/);
    // Identical on both nodes: each step once, the summary per node, the OS as the host reported it.
    expect(new Set([...r.out.matchAll(/^-- \[done\] ([\w-]+):/gm)].map((m) => m[1]))).toEqual(new Set(ALL));
    // keepalived.conf differs per node (priority): that step is shown once per node, the rest once.
    expect(r.out).toMatch(/-- \[done\] keepalived-config: .*\[node1\]/);
    expect(r.out).toMatch(/-- \[done\] packages: .*\[every node\]/);
    for (const node of ['node1', 'node2'])
      expect(r.out).toContain(`  ${node}: 0 will run, ${ALL.length} done, 0 will re-run`);
    expect(r.out).toMatch(/node1 +10\.213\.0\.11 +master +priority 100 +debian12 \(observed on the host\)/);
    const json = JSON.parse((await cli(['plan', lab.runbookPath, '--json', '--limit', 'node2'])).out);
    expect(json.nodes.map((n: { name: string }) => n.name)).toEqual(['node2']);
    expect(json.nodes[0].steps.every((s: { status: string }) => s.status === 'done')).toBe(true);
  });

  it('a changed host key refuses to connect, loudly', async () => {
    const doc = parse(readFileSync(lab.runbookPath, 'utf8'));
    const forged = join(lab.runbookPath, '..', 'forged_known_hosts');
    // node1 listed with node2's key: the key node1 presents is "changed".
    const real = readFileSync(lab.paths.knownHosts, 'utf8').trim().split('\n');
    const node2Key = real
      .find((l) => l.startsWith('10.213.0.12 '))!
      .split(' ')
      .slice(1)
      .join(' ');
    writeFileSync(forged, `10.213.0.11 ${node2Key}\n${real.find((l) => l.startsWith('10.213.0.12 '))}\n`);
    doc.ssh.knownHostsFile = forged;
    const file = join(lab.runbookPath, '..', 'forged.yaml');
    writeFileSync(file, stringify(doc));
    const r = await cli(['apply', file, '--renderer', 'silent', '--no-verify', '--accept-new-host-keys']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/HOST KEY CHANGED for 10\.213\.0\.11:22: refusing to connect/);
    expect(r.err).toMatch(/forged_known_hosts:1 records a different ssh-ed25519 key/);
  });

  // The review: the check accepted any process whose command line says "nginx: master process" and
  // any answer on the port, so a local user could keep a dead node looking healthy.
  it('the health check is not fooled by an nginx systemd does not run', async () => {
    // A second nginx, started by hand: the same binary (so the same lua_package_path), its own prefix.
    const rogue = [
      'mkdir -p /tmp/rogue/logs',
      `{ echo 'pid /tmp/rogue/nginx.pid;'; echo 'error_log /tmp/rogue/logs/error.log;'; echo 'events {}'; echo ` +
        `'http { access_log off;';` +
        ` grep -h 'lua_package_c\\?path' /usr/local/nginx/conf/nginx.conf || true;` +
        ` echo 'server { listen 80; location /ha-health { return 200 "fake"; } } }'; } > /tmp/rogue/nginx.conf`,
    ].join(' && ');
    expect((await lab.ssh(1, rogue)).code).toBe(0);
    try {
      expect(
        (
          await lab.ssh(
            1,
            'systemctl stop nginx && /usr/local/nginx/sbin/nginx -p /tmp/rogue/ -c /tmp/rogue/nginx.conf',
          )
        ).code,
      ).toBe(0);
      // Something answers /ha-health on :80 and a process is called "nginx: master process"...
      expect((await lab.ssh(1, 'curl -fsS http://127.0.0.1/ha-health')).stdout.trim()).toBe('fake');
      expect((await lab.ssh(1, 'pgrep -f "nginx: master process" >/dev/null && echo yes')).stdout.trim()).toBe('yes');
      // ...but it is not the unit's nginx: the check fails.
      const check = await lab.ssh(1, '/etc/keepalived/scripts/check_nginx.sh; echo "exit $?"');
      expect(check.stdout.trim()).toBe('exit 1');
    } finally {
      await lab.ssh(
        1,
        'kill $(cat /tmp/rogue/nginx.pid) 2>/dev/null; sleep 0.5; systemctl start nginx; rm -rf /tmp/rogue',
      );
    }
    const ok = await lab.ssh(
      1,
      'for i in $(seq 1 50); do /etc/keepalived/scripts/check_nginx.sh && break; sleep 0.2; done; ' +
        '/etc/keepalived/scripts/check_nginx.sh; echo "exit $?"',
    );
    expect(ok.stdout.trim()).toBe('exit 0');
  });
});
