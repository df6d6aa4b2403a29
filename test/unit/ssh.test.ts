import { execFileSync } from 'node:child_process';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { lstatSync, mkdtempSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fingerprint, keyTypeOf, preferredHostKeyAlgorithms, verifyHostKey } from '../../src/engine/known-hosts.js';
import { parseSshConfig } from '../../src/engine/ssh-config.js';
import { BACKUPS_KEPT, installScript } from '../../src/engine/transport.js';

function keyBlob(type: string, body = randomBytes(32)): Buffer {
  const t = Buffer.from(type);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(t.length);
  const blen = Buffer.alloc(4);
  blen.writeUInt32BE(body.length);
  return Buffer.concat([len, t, blen, body]);
}

describe('ssh_config', () => {
  const cfg = `
User everyone
Host web-*  !web-9
  HostName %h.example.com
  Port 2222
  IdentityFile ~/.ssh/web_key
Host *
  User fallback
  IdentityFile ~/.ssh/id_ed25519
`;
  it('applies Host patterns, negation, first value wins, tilde and %h', () => {
    const c = parseSshConfig(cfg, 'web-1', '/home/op');
    expect(c).toEqual({
      hostName: 'web-1.example.com',
      user: 'everyone',
      port: 2222,
      identityFiles: ['/home/op/.ssh/web_key', '/home/op/.ssh/id_ed25519'],
    });
    const negated = parseSshConfig(cfg, 'web-9', '/home/op');
    expect(negated.hostName).toBeUndefined();
    expect(negated.port).toBeUndefined();
  });
});

describe('known_hosts verification', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ha-setup-kh-'));
  const ed = keyBlob('ssh-ed25519');
  const rsa = keyBlob('ssh-rsa');
  const salt = randomBytes(20);
  const hashed = `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update('10.0.0.9').digest('base64')}`;
  const file = join(dir, 'known_hosts');
  writeFileSync(
    file,
    [
      `10.0.0.1,web1 ssh-ed25519 ${ed.toString('base64')}`,
      `[10.0.0.2]:2222 ssh-rsa ${rsa.toString('base64')}`,
      `${hashed} ssh-ed25519 ${ed.toString('base64')}`,
      `@revoked 10.0.0.3 ssh-ed25519 ${ed.toString('base64')}`,
    ].join('\n'),
  );

  it('accepts a known key, plain, with port, and hashed', () => {
    expect(verifyHostKey([file], '10.0.0.1', 22, ed).status).toBe('known');
    expect(verifyHostKey([file], '10.0.0.2', 2222, rsa).status).toBe('known');
    expect(verifyHostKey([file], '10.0.0.9', 22, ed).status).toBe('known');
  });
  it('reports unknown hosts and keys of a type not on file as unknown', () => {
    expect(verifyHostKey([file], '10.0.0.7', 22, ed).status).toBe('unknown');
    expect(verifyHostKey([file], '10.0.0.2', 22, rsa).status).toBe('unknown');
  });
  it('reports a different key of the same type as changed', () => {
    const v = verifyHostKey([file], '10.0.0.1', 22, keyBlob('ssh-ed25519'));
    expect(v.status).toBe('changed');
    expect(v.status === 'changed' && v.expected[0].line).toBe(1);
  });
  it('honours @revoked', () => {
    expect(verifyHostKey([file], '10.0.0.3', 22, ed).status).toBe('revoked');
  });
  it("the runbook's own known_hosts cannot vouch for a key ~/.ssh/known_hosts contradicts", () => {
    const attacker = keyBlob('ssh-ed25519');
    const own = join(dir, 'own_known_hosts');
    writeFileSync(
      own,
      `10.0.0.1 ssh-ed25519 ${attacker.toString('base64')}\n10.0.0.50 ssh-ed25519 ${attacker.toString('base64')}\n`,
    );
    expect(verifyHostKey([file, own], '10.0.0.1', 22, attacker).status).toBe('changed');
    expect(verifyHostKey([file, own], '10.0.0.1', 22, ed).status).toBe('known');
    // A host only the runbook's file knows: that file decides.
    expect(verifyHostKey([file, own], '10.0.0.50', 22, attacker).status).toBe('known');
  });
  it('a negated pattern that matches rules the whole line out (OpenSSH semantics); wildcards match', () => {
    const wild = join(dir, 'wild_known_hosts');
    writeFileSync(wild, `*.lab,!evil.lab ssh-ed25519 ${ed.toString('base64')}\n`);
    expect(verifyHostKey([wild], 'node1.lab', 22, ed).status).toBe('known');
    expect(verifyHostKey([wild], 'evil.lab', 22, ed).status).toBe('unknown');
  });
  it('offers the known key types first and formats fingerprints like OpenSSH', () => {
    expect(preferredHostKeyAlgorithms([file], '10.0.0.2', 2222)).toEqual(['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa']);
    expect(preferredHostKeyAlgorithms([file], '10.0.0.8', 22)).toBeUndefined();
    expect(keyTypeOf(ed)).toBe('ssh-ed25519');
    expect(fingerprint(ed)).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
  });
});

describe('atomic remote write', () => {
  it('verifies the checksum, keeps a backup and renames into place', () => {
    const s = installScript('/tmp/.ha-setup-x', "/etc/it's here.conf", 'abc', { mode: 0o640, owner: 'root' });
    expect(s).toContain(`dst='/etc/it'\\''s here.conf'`);
    expect(s).toMatch(/\|\| exit 3/);
    expect(s).toMatch(/mktemp --suffix=\.bak "\$dst\.ha-setup-\$\(date \+%Y%m%d%H%M%S\)\.XXXXXX"/);
    expect(s).toMatch(/mv -f -T "\$next" "\$dst"/);
  });
  it('state files are written without a backup copy', () => {
    expect(
      installScript('/tmp/.ha-setup-x', '/var/lib/ha-setup/journal.json', 'abc', { mode: 0o600, backup: false }),
    ).not.toMatch(/\.bak/);
  });
  it(`keeps the ${BACKUPS_KEPT} newest backups of a file, never a symlink or another file's`, () => {
    const dir = mkdtempSync(join(tmpdir(), 'ha-backups-'));
    const dst = join(dir, 'config.lua');
    writeFileSync(dst, 'v0\n');
    writeFileSync(join(dir, 'victim'), 'precious\n');
    // Older copies from earlier applies, one planted symlink among them, another file's copy.
    for (let d = 10; d < 18; d++) writeFileSync(`${dst}.ha-setup-202601${d}000000.AAAAAA.bak`, `old ${d}\n`);
    symlinkSync(join(dir, 'victim'), `${dst}.ha-setup-20260101000000.BBBBBB.bak`);
    writeFileSync(join(dir, 'other.lua.ha-setup-20260101000000.CCCCCC.bak'), 'other\n');
    const me = execFileSync('id', ['-un']).toString().trim();
    for (const v of ['v1', 'v2']) {
      const up = join(dir, 'upload');
      writeFileSync(up, `${v}\n`);
      const sum = createHash('sha256').update(`${v}\n`).digest('hex');
      execFileSync('bash', ['-c', `set -euo pipefail\n${installScript(up, dst, sum, { mode: 0o640, owner: me })}`]);
    }
    const copies = readdirSync(dir)
      .filter((f) => f.startsWith('config.lua.ha-setup-'))
      .sort();
    expect(copies).toHaveLength(BACKUPS_KEPT + 1); // and the symlink, which is never removed
    expect(copies[0]).toBe('config.lua.ha-setup-20260101000000.BBBBBB.bak');
    expect(copies.slice(1, 4)).toEqual([15, 16, 17].map((d) => `config.lua.ha-setup-202601${d}000000.AAAAAA.bak`));
    // The two made now: v0 and v1, the newest (made in the same second: their order is mktemp's).
    expect(
      copies
        .slice(4)
        .map((f) => readFileSync(join(dir, f), 'utf8'))
        .sort(),
    ).toEqual(['v0\n', 'v1\n']);
    expect(readFileSync(dst, 'utf8')).toBe('v2\n');
    expect(readFileSync(join(dir, 'victim'), 'utf8')).toBe('precious\n');
    expect(readdirSync(dir)).toContain('other.lua.ha-setup-20260101000000.CCCCCC.bak');
  });
  it('never writes through a planted symlink: the new file and the backup come from mktemp', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ha-install-'));
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'precious\n');
    const dst = join(dir, 'site.conf');
    writeFileSync(dst, 'old\n');
    // What the old script used: predictable names next to the destination.
    for (let pid = 1; pid < 50; pid++) symlinkSync(victim, `${dst}.ha-setup-new.${pid}`);
    const stamp = (ms: number) => new Date(ms).toISOString().replace(/\D/g, '').slice(0, 14);
    const local = Date.now() - new Date().getTimezoneOffset() * 60_000;
    for (let s = -1; s < 10; s++) symlinkSync(victim, `${dst}.ha-setup-${stamp(local + s * 1000)}.bak`);
    const up = join(dir, 'upload');
    writeFileSync(up, 'new\n');
    const me = execFileSync('id', ['-un']).toString().trim();
    const script = installScript(up, dst, createHash('sha256').update('new\n').digest('hex'), {
      mode: 0o640,
      owner: me,
    });
    const out = execFileSync('bash', ['-c', `set -euo pipefail\n${script}`]).toString();
    expect(out).toMatch(/^backup /);
    expect(readFileSync(dst, 'utf8')).toBe('new\n');
    expect(lstatSync(dst).isSymbolicLink()).toBe(false);
    expect(statSync(dst).mode & 0o777).toBe(0o640);
    expect(readFileSync(victim, 'utf8')).toBe('precious\n');
    expect(readFileSync(out.trim().slice(7), 'utf8')).toBe('old\n');
  });
});
