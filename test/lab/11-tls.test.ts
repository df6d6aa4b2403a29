import { randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { runLocal } from '../../src/local.js';
import { runbookToYaml } from '../../src/runbook/io.js';
import { probeOnce, type ProbeTls, startProber } from '../../src/verify/probe.js';
import { cli } from './helpers/cli.js';
import { startGitServer, type GitServer } from './helpers/git-server.js';
import { keptKeepalivedVersion, openrestyModulesRunbook } from './helpers/openresty-runbook.js';
import { startPebble, type Pebble } from './helpers/pebble.js';
import { installModuleServices, expectNoOrphanNginx } from './helpers/services.js';
import { withLab, type Lab } from './helpers/with-lab.js';

// HTTPS on the VIP of the OpenResty pair 10-openresty leaves (configuration only: its build is
// reused). A certificate of our own (test/fixtures/tls), shared session tickets across a failover and
// a rotation, a replaced and an expired certificate, then certificates from a real ACME CA (pebble)
// validated through the VIP and renewed on each node, and finally site.tls taken out again.

const fixtures = join(import.meta.dirname, '..', 'fixtures', 'tls');
const NAME = 'www.example.test';
const CONF = '/usr/local/openresty/nginx/conf';
const TICKET_ENV = 'HA_SETUP_LAB_TLS_TICKET_SECRET';

describe.skipIf(!inject('labAvailable'))('HTTPS on the VIP of the lab pair', () => {
  let lab: Lab;
  let git: GitServer;
  let pebble: Pebble | undefined;
  let plain: ReturnType<typeof openrestyModulesRunbook>;
  let dir: string;
  let vip: string;
  const work = mkdtempSync(join(tmpdir(), 'ha-setup-tls-'));
  const caPem = readFileSync(join(fixtures, 'ca.crt'), 'utf8');
  const tlsTo = (ca?: string): ProbeTls => ({ servername: NAME, ca });

  const writeRunbook = (tls: unknown) =>
    writeFileSync(
      lab.runbookPath,
      runbookToYaml({ ...plain, site: { ...plain.site, serverName: `${NAME} example.test`, tls } }),
    );

  /** Runs the CLI (or a command on the nodes) with a 20 ms prober through the VIP; returns its failed requests. */
  async function underLoad<T>(what: string, run: () => Promise<T>, port = 80, tls?: ProbeTls) {
    const prober = startProber(vip, port, 20, 500, tls);
    const started = Date.now();
    const result = await run();
    const samples = await prober.stop();
    const failed = samples.filter((s) => !s.ok);
    console.log(
      `${what}: ${Date.now() - started} ms; ${samples.length} requests to ${vip}:${port}, ${failed.length} failed`,
    );
    for (const f of failed) console.log(`  failed request sent at ${Math.round(f.sentAt)} ms: ${f.error}`);
    return { result, failed };
  }
  const apply = () => cli(['apply', lab.runbookPath, '--renderer', 'silent', '--no-verify']);
  const status = async () => {
    const r = await cli(['status', lab.runbookPath, '--json']);
    return { code: r.code, report: JSON.parse(r.out) };
  };
  const fingerprints = async () =>
    (await status()).report.nodes.map((n: { tls: { fingerprint: string } }) => n.tls.fingerprint) as string[];

  /** A TLS handshake from the control machine to the VIP: resumed or new, and which node answered. */
  async function handshake(version: '1.2' | '1.3', session: string, resume: boolean) {
    const request = `GET /ha-health HTTP/1.1\r\nHost: ${NAME}\r\nConnection: close\r\n\r\n`;
    const r = await runLocal(
      'openssl',
      ['s_client', '-connect', `${vip}:443`, '-servername', NAME, `-tls${version.replace('.', '_')}`]
        .concat(['-CAfile', join(fixtures, 'ca.crt'), '-verify_return_error', '-ign_eof'])
        .concat(resume ? ['-sess_in', session] : ['-sess_out', session]),
      { input: request, allowFailure: true, timeoutMs: 10_000 },
    );
    const kind = /^(New|Reused), TLSv/m.exec(r.stdout)?.[1];
    // The body of /ha-health is the node's name.
    const node = /^(node\d+)\s*$/m.exec(r.stdout)?.[1];
    expect(kind, r.stdout + r.stderr).toBeDefined();
    return { kind, node };
  }
  // A reload's new workers take over the listening sockets within a moment.
  const settle = () => new Promise((r) => setTimeout(r, 1000));
  const rotate = (hoursAhead: number) =>
    Promise.all(
      [0, 1].map(async (i) => {
        const at = hoursAhead === 0 ? '' : ` --at $(( $(date +%s) + ${hoursAhead * 3600} ))`;
        const r = await lab.ssh(i, `/usr/local/share/ha-setup/tls-ticket-keys.sh${at}`);
        expect(r.code, r.stderr).toBe(0);
      }),
    ).then(settle);

  beforeAll(async () => {
    lab = await withLab();
    vip = lab.state.vip;
    dir = dirname(lab.runbookPath);
    const hostIp = lab.state.nodes[0].ip.replace(/\.\d+$/, '.1');
    git = await startGitServer(hostIp);
    await installModuleServices(lab);
    for (const i of [0, 1])
      expect((await lab.ssh(i, 'mkdir -p /srv/lab-files && echo one > /srv/lab-files/alpha.txt')).code).toBe(0);
    // The build 10-openresty ends with: only configuration changes from here on.
    plain = openrestyModulesRunbook(lab, git.base, {
      cachePurge: true,
      keepalivedVersion: await keptKeepalivedVersion(lab),
    });
    mkdirSync(join(dir, 'tls'), { recursive: true });
    copyFileSync(join(fixtures, 'chain.pem'), join(dir, 'tls', 'chain.pem'));
    copyFileSync(join(fixtures, 'leaf.key'), join(dir, 'tls', 'leaf.key'));
    chmodSync(join(dir, 'tls', 'leaf.key'), 0o600);
    process.env[TICKET_ENV] = randomBytes(32).toString('base64url');
    // 10's crash verification took its workers with it.
    await expectNoOrphanNginx(lab);
    // Alone, this suite installs the pair first (a build); after 10 this changes nothing.
    writeRunbook(undefined);
    const r = await apply();
    expect(r.code, r.out + r.err).toBe(0);
  });

  afterAll(async () => {
    await pebble?.stop();
    await git?.stop();
  });

  it(
    'your own certificate on the serving pair: 0 failed requests, the same certificate on both nodes, ' +
      'HTTP redirected, h2, verify over HTTPS',
    async () => {
      writeRunbook({
        certificate: { chain: 'tls/chain.pem', key: 'tls/leaf.key' },
        sessionTickets: { secretEnv: TICKET_ENV },
      });
      const { result: r, failed } = await underLoad('apply with site.tls', apply);
      expect(r.code, r.out + r.err).toBe(0);
      expect(failed).toHaveLength(0);
      for (const node of lab.state.nodes) {
        const answer = await probeOnce(node.ip, 443, 3000, tlsTo(caPem));
        expect(answer, `${node.name}: ${answer.error}`).toMatchObject({ ok: true, node: node.name });
      }
      const s = await status();
      expect(s.code).toBe(0);
      expect(s.report.certificates).toMatchObject({ same: true });
      for (const n of s.report.nodes) expect(n.tls).toMatchObject({ subject: `CN=${NAME}`, problems: [] });
      // The key went as a secret: 0600 on the nodes, never in the plan.
      expect((await lab.ssh(0, `stat -c %a ${CONF}/ha-tls/privkey.pem`)).stdout.trim()).toBe('600');
      const plan = await cli(['plan', lab.runbookPath, '--offline']);
      expect(plan.out).not.toContain(readFileSync(join(fixtures, 'leaf.key'), 'utf8').split('\n')[1]);
      const redirect = await lab.ssh(
        0,
        `curl -sS -o /dev/null -w '%{http_code} %{redirect_url}' -H 'Host: ${NAME}' http://127.0.0.1/x?y=1`,
      );
      expect(redirect.stdout).toBe(`301 https://${NAME}/x?y=1`);
      const h2 = await lab.ssh(
        1,
        `curl -sS -k --http2 -o /dev/null -w '%{http_version}' --resolve ${NAME}:443:127.0.0.1 https://${NAME}/`,
      );
      expect(h2.stdout).toBe('2');
      const v = await cli(['verify', lab.runbookPath]);
      expect(v.code, v.out + v.err).toBe(0);
    },
  );

  it('sessions resume on the other node after a failover, a reload, and one ticket rotation (not two)', async () => {
    for (const version of ['1.2', '1.3'] as const) {
      const session = join(work, `session-${version}`);
      const first = await handshake(version, session, false);
      expect(first.kind).toBe('New');
      const moved = await cli(['failover', lab.runbookPath]);
      expect(moved.code, moved.out + moved.err).toBe(0);
      const after = await handshake(version, session, true);
      expect(after, `TLS ${version}`).toEqual({ kind: 'Reused', node: expect.not.stringMatching(first.node!) });
      for (const i of [0, 1]) expect((await lab.ssh(i, 'systemctl reload nginx')).code).toBe(0);
      await settle();
      expect((await handshake(version, session, true)).kind).toBe('Reused');
    }
    // An nginx crash on the holder: the VIP moves (the unit's track file), the session resumes on the peer.
    const crashed = (await status()).report.nodes.findIndex((n: { holdsVip: boolean }) => n.holdsVip);
    const crashSession = join(work, 'session-crash');
    expect((await handshake('1.3', crashSession, false)).node).toBe(lab.state.nodes[crashed].name);
    // A crash of the master, as verify's nginx-crash does it.
    expect((await lab.ssh(crashed, 'kill -9 "$(systemctl show -p MainPID --value nginx)"')).code).toBe(0);
    let answered: string | undefined;
    for (let t = 0; t < 100 && answered !== lab.state.nodes[1 - crashed].name; t++) {
      answered = (await probeOnce(vip, 443, 500, tlsTo())).node;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(answered, 'the peer took the VIP after the crash').toBe(lab.state.nodes[1 - crashed].name);
    expect(await handshake('1.3', crashSession, true)).toEqual({
      kind: 'Reused',
      node: lab.state.nodes[1 - crashed].name,
    });
    // The unit restarts nginx (Restart=on-failure); wait until it serves again before going on.
    const back = await lab.ssh(
      crashed,
      'for i in $(seq 1 60); do curl -fsS -m 1 -o /dev/null http://127.0.0.1/ha-health && exit 0; ' +
        'sleep 0.5; done; exit 1',
    );
    expect(back.code, 'nginx back after the crash').toBe(0);
    await expectNoOrphanNginx(lab);

    const session = join(work, 'session-rotation');
    await handshake('1.3', session, false);
    await rotate(12);
    expect((await handshake('1.3', session, true)).kind, 'one window later: the previous key decrypts').toBe('Reused');
    await rotate(24);
    expect((await handshake('1.3', session, true)).kind, 'two windows later: the key is gone').toBe('New');
    await rotate(0);
  });

  it(
    'a replaced certificate ships to both nodes with 0 failed HTTPS requests; ' +
      'an expired one on a node fails status and verify by name, and apply repairs it',
    async () => {
      const before = await fingerprints();
      const openssl = (args: string[]) => runLocal('openssl', args, { cwd: work });
      copyFileSync(join(fixtures, 'int.key'), join(work, 'int.key'));
      const san = `subjectAltName=DNS:${NAME},DNS:example.test`;
      await openssl([
        'req',
        '-new',
        '-key',
        join(fixtures, 'leaf.key'),
        '-subj',
        `/CN=${NAME}`,
        '-addext',
        san,
        '-out',
        'new.csr',
      ]);
      writeFileSync(join(work, 'new.ext'), `${san}\nextendedKeyUsage=serverAuth\n`);
      await openssl(
        [
          'x509',
          '-req',
          '-in',
          'new.csr',
          '-CA',
          join(fixtures, 'int.crt'),
          '-CAkey',
          'int.key',
          // The serial file in the work dir, not beside the fixture CA (it would land in the repository).
          '-CAserial',
          join(work, 'int.srl'),
          '-CAcreateserial',
        ].concat(['-days', '400', '-extfile', 'new.ext', '-out', 'new.crt']),
      );
      writeFileSync(
        join(dir, 'tls', 'chain.pem'),
        readFileSync(join(work, 'new.crt'), 'utf8') + readFileSync(join(fixtures, 'int.crt'), 'utf8'),
      );
      const { result: r, failed } = await underLoad('apply with a new certificate', apply, 443, tlsTo(caPem));
      expect(r.code, r.out + r.err).toBe(0);
      expect(failed).toHaveLength(0);
      const after = await fingerprints();
      expect(new Set(after).size).toBe(1);
      expect(after[0]).not.toBe(before[0]);

      // An expired certificate (same key) put on node2 by hand, as a forgotten manual renewal would.
      mkdirSync(join(work, 'ca', 'new'), { recursive: true });
      writeFileSync(join(work, 'ca', 'index.txt'), '');
      writeFileSync(join(work, 'ca', 'serial'), '1000\n');
      writeFileSync(
        join(work, 'ca', 'ca.cnf'),
        [
          '[ca]',
          'default_ca=c',
          '[c]',
          `database=${work}/ca/index.txt`,
          `new_certs_dir=${work}/ca/new`,
          `serial=${work}/ca/serial`,
          'default_md=sha256',
          'policy=p',
          'copy_extensions=copy',
          '[p]',
          'commonName=supplied',
          '',
        ].join('\n'),
      );
      await openssl(
        [
          'ca',
          '-batch',
          '-config',
          'ca/ca.cnf',
          '-cert',
          join(fixtures, 'int.crt'),
          '-keyfile',
          'int.key',
          '-in',
          'new.csr',
        ].concat(['-startdate', '20200101000000Z', '-enddate', '20210101000000Z', '-notext', '-out', 'expired.crt']),
      );
      const expired = readFileSync(join(work, 'expired.crt'), 'utf8') + readFileSync(join(fixtures, 'int.crt'), 'utf8');
      const put = await lab.ssh(1, `cat > ${CONF}/ha-tls/fullchain.pem <<'PEM'\n${expired}PEM\nsystemctl reload nginx`);
      expect(put.code, put.stderr).toBe(0);
      await settle();
      const st = await cli(['status', lab.runbookPath]);
      expect(st.code).toBe(1);
      expect(st.out).toMatch(/DIFFERENT certificates/);
      expect(st.out).toMatch(/expired on 2021/);
      const v = await cli(['verify', lab.runbookPath]);
      expect(v.code).not.toBe(0);
      expect(v.out + v.err).toMatch(/node2: serves a certificate that expired/);
      const repaired = await apply();
      expect(repaired.code, repaired.out + repaired.err).toBe(0);
      expect(await fingerprints()).toEqual(after);

      // Bad files are refused on the control machine, naming the field; nothing reaches the nodes.
      const good = readFileSync(join(dir, 'tls', 'chain.pem'), 'utf8');
      const refused = async (why: RegExp) => {
        const r = await apply();
        expect(r.code, r.out + r.err).toBe(2);
        expect(r.out + r.err).toMatch(why);
      };
      copyFileSync(join(fixtures, 'other.key'), join(dir, 'tls', 'leaf.key'));
      await refused(/site\.tls\.certificate.*(does not match|key)/);
      copyFileSync(join(fixtures, 'leaf.key'), join(dir, 'tls', 'leaf.key'));
      chmodSync(join(dir, 'tls', 'leaf.key'), 0o644);
      await refused(/site\.tls\.certificate\.key.*0600/);
      chmodSync(join(dir, 'tls', 'leaf.key'), 0o600);
      writeFileSync(
        join(dir, 'tls', 'chain.pem'),
        readFileSync(join(fixtures, 'int.crt'), 'utf8') + readFileSync(join(work, 'new.crt'), 'utf8'),
      );
      await refused(/site\.tls\.certificate.*(order|first)/);
      writeFileSync(join(dir, 'tls', 'chain.pem'), good);
      expect(await fingerprints()).toEqual(after);
    },
  );

  it(
    'ACME: certificates from a real CA (pebble) validated through the VIP, ' +
      'each node renewing on its own with 0 failed HTTPS requests',
    async () => {
      const hostIp = lab.state.nodes[0].ip.replace(/\.\d+$/, '.1');
      pebble = await startPebble(hostIp, vip, join(lab.paths.cacheDir, 'pebble'));
      writeFileSync(join(dir, 'tls', 'pebble-ca.pem'), pebble.listenerCaPem);
      writeRunbook({
        acme: { directory: pebble.directory, caFile: 'tls/pebble-ca.pem', email: 'ops@example.test' },
        sessionTickets: { secretEnv: TICKET_ENV },
      });
      const { result: r, failed } = await underLoad('apply with site.tls.acme', apply, 443, tlsTo());
      expect(r.code, r.out + r.err).toBe(0);
      expect(failed).toHaveLength(0);
      for (const node of lab.state.nodes) {
        const answer = await probeOnce(node.ip, 443, 3000, tlsTo(pebble.rootPem));
        expect(answer, `${node.name} serves a certificate pebble issued: ${answer.error}`).toMatchObject({ ok: true });
        expect(
          (await lab.ssh(lab.state.nodes.indexOf(node), 'systemctl is-enabled ha-setup-acme.timer')).stdout.trim(),
        ).toBe('enabled');
      }
      const s = await status();
      expect(s.code).toBe(0);
      expect(s.report.certificates).toMatchObject({ same: true });
      // A second apply changes nothing: no re-issue.
      const again = await apply();
      expect(again.code, again.out + again.err).toBe(0);
      expect(await fingerprints()).toEqual(
        s.report.nodes.map((n: { tls: { fingerprint: string } }) => n.tls.fingerprint),
      );

      // Renewal on the node without the VIP (its challenge answered by the holder asking its peer), then on the holder.
      const holder = s.report.nodes.findIndex((n: { holdsVip: boolean }) => n.holdsVip);
      for (const i of [1 - holder, holder]) {
        const before = await fingerprints();
        const renew = await underLoad(
          `forced renewal on ${lab.state.nodes[i].name}`,
          () => lab.ssh(i, '/usr/bin/dehydrated --cron --force --accept-terms --config /etc/ha-setup/acme/config'),
          443,
          tlsTo(),
        );
        expect(renew.result.code, renew.result.stdout + renew.result.stderr).toBe(0);
        expect(renew.failed).toHaveLength(0);
        const after = await fingerprints();
        expect(after[i]).not.toBe(before[i]);
        expect(after[1 - i]).toBe(before[1 - i]);
      }
    },
  );

  it('taking site.tls out again: the timers and files go, HTTP serves without a redirect', async () => {
    writeFileSync(lab.runbookPath, runbookToYaml(plain));
    const { result: r, failed } = await underLoad('apply without site.tls', apply);
    expect(r.code, r.out + r.err).toBe(0);
    expect(failed).toHaveLength(0);
    for (const i of [0, 1]) {
      const left = await lab.ssh(
        i,
        `ls /etc/systemd/system/ha-setup-acme.timer /etc/systemd/system/ha-setup-tls-tickets.timer ` +
          `/etc/ha-setup/tls/ticket-secret ${CONF}/ha-tls/privkey.pem 2>/dev/null; true`,
      );
      expect(left.stdout.trim()).toBe('');
      expect(
        (await lab.ssh(i, `curl -sS -o /dev/null -w '%{http_code}' -H 'Host: ${NAME}' http://127.0.0.1/ha-health`))
          .stdout,
      ).toBe('200');
    }
  });
});
