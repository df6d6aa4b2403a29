import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPrivateKey } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { render } from '../../src/render.js';
import { loadRunbook } from '../../src/runbook/io.js';
import { readSiteFiles } from '../../src/runbook/site-files.js';
import { secretUses } from '../../src/runbook/secrets.js';
import {
  certificateProblems,
  certificateView,
  nameCovers,
  readTlsKey,
  tlsFileProblems,
} from '../../src/runbook/tls-files.js';
import { validateRunbook } from '../../src/runbook/validate.js';
import { loadSecrets } from '../../src/engine/session.js';

const FIX = join(import.meta.dirname, '..', 'fixtures', 'tls');
const fx = (f: string) => readFileSync(join(FIX, f), 'utf8');
const key = (f: string) => createPrivateKey(fx(f));
const NOW = new Date('2030-01-01T00:00:00Z');

/** The fixture runbook and its files in a folder of their own, the key mode 0600 (git keeps no modes). */
function fixtureDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'ha-tls-'));
  for (const f of readdirSync(FIX)) copyFileSync(join(FIX, f), join(dir, f));
  for (const f of readdirSync(dir).filter((f) => f.endsWith('.key'))) chmodSync(join(dir, f), 0o600);
  return dir;
}

describe('certificate checks on the control machine', () => {
  const names = ['www.example.test', 'example.test'];
  it('a chain in order with its key, covering the names, passes', () => {
    expect(certificateProblems(fx('chain.pem'), key('leaf.key'), names, NOW)).toEqual([]);
  });
  it('a key of another certificate is named', () => {
    expect(certificateProblems(fx('chain.pem'), key('other.key'), names, NOW)[0]).toMatch(
      /the key does not belong to the first certificate of the chain \(CN=www.example.test\)/,
    );
  });
  it('a chain in the wrong order: the key belongs to a later certificate, and the order is named', () => {
    const p = certificateProblems(fx('chain-reversed.pem'), key('leaf.key'), names, NOW);
    expect(p[0]).toMatch(/the key belongs to certificate 2 of the chain \(CN=www.example.test\): put that one first/);
    expect(p[1]).toMatch(
      /the chain is not in order: certificate 2 \(CN=www.example.test\) did not issue certificate 1/,
    );
  });
  it('a name the certificate does not cover', () => {
    expect(certificateProblems(fx('chain.pem'), key('leaf.key'), ['shop.example.test'], NOW)).toEqual([
      expect.stringMatching(/covers www.example.test, example.test, \*.api.example.test but not shop.example.test/),
    ]);
  });
  it('expired, and not yet valid', () => {
    expect(certificateProblems(fx('chain.pem'), key('leaf.key'), names, new Date('2200-01-01'))[0]).toMatch(
      /expired on 21\d\d-/,
    );
    expect(certificateProblems(fx('chain.pem'), key('leaf.key'), names, new Date('2001-01-01'))[0]).toMatch(
      /is not valid before 20\d\d-/,
    );
  });
  it('a certificate without subjectAltName', () => {
    expect(certificateProblems(fx('cn-only.crt'), key('leaf.key'), names, NOW)).toEqual([
      expect.stringMatching(/has no DNS subjectAltName/),
    ]);
  });
  it('wildcards cover one label, exactly', () => {
    expect(nameCovers('*.api.example.test', 'eu.api.example.test')).toBe(true);
    expect(nameCovers('*.api.example.test', 'a.eu.api.example.test')).toBe(false);
    expect(nameCovers('*.api.example.test', 'api.example.test')).toBe(false);
    expect(nameCovers('*.api.example.test', '*.api.example.test')).toBe(true);
    expect(nameCovers('WWW.example.test', 'www.EXAMPLE.test')).toBe(true);
  });
  it('the view status and verify show', () => {
    const v = certificateView(fx('leaf.crt'), NOW);
    expect(v.subject).toBe('CN=www.example.test');
    expect(v.issuer).toBe('CN=ha-setup test intermediate');
    expect(v.names).toEqual(['www.example.test', 'example.test', '*.api.example.test']);
    expect(v.fingerprint).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    expect(v.daysLeft).toBeGreaterThan(30000);
  });
});

describe('the certificate files of a runbook', () => {
  it('validate reads them: a key readable by others, a wrong key, a missing file, each on its field', () => {
    const dir = fixtureDir();
    const { runbook } = loadRunbook(join(dir, 'runbook-https.yaml'));
    expect(tlsFileProblems(runbook, dir, NOW)).toEqual([]);
    chmodSync(join(dir, 'leaf.key'), 0o644);
    expect(tlsFileProblems(runbook, dir, NOW)).toEqual([
      {
        path: 'site.tls.certificate.key',
        message: expect.stringMatching(/leaf.key is readable by others \(mode 0644\).*chmod 600/),
      },
    ]);
    chmodSync(join(dir, 'leaf.key'), 0o600);
    const other = {
      ...runbook,
      site: { ...runbook.site, tls: { ...runbook.site.tls!, certificate: { chain: 'chain.pem', key: 'other.key' } } },
    };
    expect(tlsFileProblems(other, dir, NOW)[0]).toEqual({
      path: 'site.tls.certificate.chain',
      message: expect.stringMatching(/the key does not belong to the first certificate/),
    });
    const missing = {
      ...runbook,
      site: { ...runbook.site, tls: { ...runbook.site.tls!, certificate: { chain: 'nope.pem', key: 'leaf.key' } } },
    };
    expect(tlsFileProblems(missing, dir, NOW)[0]).toEqual({
      path: 'site.tls.certificate.chain',
      message: expect.stringMatching(/nope.pem does not exist/),
    });
  });

  it('a key in the chain file, an encrypted key, a symlink out of the folder: refused', () => {
    const dir = fixtureDir();
    const { runbook } = loadRunbook(join(dir, 'runbook-https.yaml'));
    writeFileSync(join(dir, 'chain.pem'), fx('chain.pem') + fx('leaf.key'));
    expect(tlsFileProblems(runbook, dir, NOW)[0].message).toMatch(/holds a private key; keep the key in its own file/);
    writeFileSync(join(dir, 'chain.pem'), fx('chain.pem'));
    const enc = execFileSync('openssl', ['pkey', '-in', join(dir, 'leaf.key'), '-aes256', '-passout', 'pass:x'], {
      encoding: 'utf8',
    });
    writeFileSync(join(dir, 'leaf.key'), enc, { mode: 0o600 });
    expect(() => readTlsKey(runbook, dir)).toThrow(/is encrypted; nginx would ask for its passphrase/);
  });

  it('plan and apply carry the chain as a file and the key only as a secret, with where it goes', () => {
    const dir = fixtureDir();
    const { runbook } = loadRunbook(join(dir, 'runbook-https.yaml'));
    const files = readSiteFiles(runbook, dir);
    expect(files.tls.chain).toBe(fx('chain.pem'));
    expect(JSON.stringify(files)).not.toContain('PRIVATE KEY');
    const use = secretUses(runbook).find((u) => u.field === 'site.tls.certificate.key')!;
    expect(use).toMatchObject({ file: 'leaf.key', goesTo: expect.stringContaining('ha-tls/privkey.pem (mode 0600') });
    process.env.HA_SETUP_TLS_TICKET_SECRET = 'x'.repeat(40);
    try {
      const secrets = loadSecrets(runbook, join(dir, 'runbook-https.yaml'));
      expect(secrets[use.name]).toBe(fx('leaf.key'));
      process.env.HA_SETUP_TLS_TICKET_SECRET = 'short';
      expect(() => loadSecrets(runbook, join(dir, 'runbook-https.yaml'))).toThrow(/must be 32 to 512 printable/);
    } finally {
      delete process.env.HA_SETUP_TLS_TICKET_SECRET;
    }
  });
});

describe('site.tls rules', () => {
  const base = () => {
    const { runbook } = loadRunbook(join(import.meta.dirname, '..', '..', 'runbooks', 'example-acme.yaml'));
    return JSON.parse(JSON.stringify(runbook));
  };
  const problems = (edit: (rb: any) => void) => {
    const rb = base();
    edit(rb);
    const r = validateRunbook(rb);
    return r.ok ? [] : r.problems;
  };
  it('the example is valid', () => expect(problems(() => {})).toEqual([]));
  it('certificate or acme, not both, not neither', () => {
    expect(problems((rb) => (rb.site.tls.certificate = { chain: 'a.pem', key: 'a.key' }))).toContainEqual({
      path: 'site.tls',
      message: expect.stringMatching(/either certificate \(files\) or acme, not both/),
    });
    expect(problems((rb) => delete rb.site.tls.acme)).toContainEqual({
      path: 'site.tls',
      message: expect.stringMatching(/needs a certificate/),
    });
  });
  it('ports, ACME on port 80, names ACME can issue', () => {
    expect(problems((rb) => (rb.site.tls.listen = 80))).toContainEqual({
      path: 'site.tls.listen',
      message: expect.stringMatching(/HTTPS needs a port of its own/),
    });
    expect(problems((rb) => (rb.site.listen = 8080))).toContainEqual({
      path: 'site.tls.acme',
      message: expect.stringMatching(/http-01 challenge always comes to port 80/),
    });
    expect(problems((rb) => (rb.site.serverName = '_'))).toContainEqual({
      path: 'site.tls.acme.names',
      message: expect.stringMatching(/no DNS name to ask a certificate for/),
    });
    expect(problems((rb) => (rb.site.tls.acme.names = ['*.example.com']))).toContainEqual({
      path: 'site.tls.acme.names[0]',
      message: expect.stringMatching(/wildcard certificate needs a DNS challenge/),
    });
  });
  it('field shapes', () => {
    expect(problems((rb) => (rb.site.tls.acme.directory = 'http://ca.example/dir'))[0].path).toBe(
      'site.tls.acme.directory',
    );
    expect(problems((rb) => (rb.site.tls.acme.eab = { kid: 'k"; rm -rf /', hmacKeyEnv: 'HA_SETUP_EAB' }))[0].path).toBe(
      'site.tls.acme.eab.kid',
    );
    expect(
      problems((rb) => (rb.site.tls.certificate = { chain: '../x.pem', key: '/etc/k' })).map((p) => p.path),
    ).toEqual(expect.arrayContaining(['site.tls.certificate.chain', 'site.tls.certificate.key']));
    expect(problems((rb) => (rb.site.tls.sessionTickets.rotateHours = 0))[0].path).toBe(
      'site.tls.sessionTickets.rotateHours',
    );
  });
});

// The rotation script is the one thing every node runs on its own: two nodes with the same secret
// must hold the same keys, and a rotation must keep the previous key.
const hasOpenssl = spawnSync('openssl', ['version']).status === 0;
describe.skipIf(!hasOpenssl)('session ticket keys, as each node derives them', () => {
  const node = (secret: string) => {
    const dir = mkdtempSync(join(tmpdir(), 'ha-tickets-'));
    writeFileSync(join(dir, 'secret'), secret, { mode: 0o600 });
    const script = render('tls-ticket-keys.sh.njk', {
      secretFile: join(dir, 'secret'),
      keysDir: join(dir, 'keys'),
      nginxBinary: '/nonexistent',
      rotateHours: 12,
    });
    writeFileSync(join(dir, 'rotate.sh'), script, { mode: 0o755 });
    const run = (at: number) => execFileSync(join(dir, 'rotate.sh'), ['--at', String(at), '--no-reload']);
    const keys = () =>
      Object.fromEntries(['previous', 'current', 'next'].map((k) => [k, readFileSync(join(dir, 'keys', `${k}.key`))]));
    return { run, keys, dir };
  };
  const secret = 'a shared secret of more than 32 characters';
  const t = 1_800_000_000;

  it('two nodes with one secret hold the same three 80-byte keys; another secret gives others', () => {
    const a = node(secret);
    const b = node(secret);
    const c = node(`${secret}!`);
    a.run(t);
    b.run(t + 60); // the same window, a minute apart
    c.run(t);
    for (const k of ['previous', 'current', 'next'] as const) {
      expect(a.keys()[k].length).toBe(80);
      expect(a.keys()[k].equals(b.keys()[k])).toBe(true);
      expect(a.keys()[k].equals(c.keys()[k])).toBe(false);
    }
    expect(new Set(Object.values(a.keys()).map((k) => k.toString('hex'))).size).toBe(3);
    expect(readFileSync(join(a.dir, 'keys', 'current.key')).length).toBe(80);
  });

  it('a rotation: the current key becomes the previous one, the next one the current', () => {
    const a = node(secret);
    a.run(t);
    const before = a.keys();
    a.run(t + 12 * 3600);
    const after = a.keys();
    expect(after.previous.equals(before.current)).toBe(true);
    expect(after.current.equals(before.next)).toBe(true);
    expect(after.next.equals(before.next)).toBe(false);
  });

  it('refuses an --at that is not a time', () => {
    const a = node(secret);
    expect(() => execFileSync(join(a.dir, 'rotate.sh'), ['--at', '1; rm -rf /'], { stdio: 'pipe' })).toThrow();
  });
});
