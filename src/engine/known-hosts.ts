import { createHash, createHmac } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';

// known_hosts verification for ssh2's hostVerifier: plain and hashed (|1|salt|hash) host fields,
// [host]:port for non-standard ports, @revoked markers. A host listed with a different key of the
// same type is a changed key, which always fails.

export interface KnownKey {
  type: string;
  blob: string; // base64
  file: string;
  line: number;
  revoked: boolean;
}

export type HostKeyVerdict =
  | { status: 'known'; entry: KnownKey }
  | { status: 'unknown' }
  | { status: 'changed'; expected: KnownKey[] }
  | { status: 'revoked'; entry: KnownKey };

export function hostPattern(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

function hostFieldMatches(field: string, name: string): boolean {
  if (field.startsWith('|1|')) {
    const [, , salt, hash] = field.split('|');
    const mac = createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64');
    return mac === hash;
  }
  const patterns = field.split(',');
  const matches = (h: string) =>
    new RegExp(
      `^${h
        .replace(/[.+^${}()|\\]/g, '\\$&')
        .replace(/\[/g, '\\[')
        .replace(/\]/g, '\\]')
        .replace(/\*/g, '.*')
        .replace(/\?/g, '.')}$`,
      'i',
    ).test(name);
  // As OpenSSH: a negated pattern that matches rules the whole line out, whatever else matches.
  if (patterns.some((h) => h.startsWith('!') && matches(h.slice(1)))) return false;
  return patterns.some((h) => !h.startsWith('!') && matches(h));
}

export function keysForHost(files: string[], host: string, port: number): KnownKey[] {
  const name = hostPattern(host, port);
  const keys: KnownKey[] = [];
  for (const file of files) {
    if (!existsSync(file)) continue;
    readFileSync(file, 'utf8')
      .split('\n')
      .forEach((raw, i) => {
        const line = raw.trim();
        if (line === '' || line.startsWith('#')) return;
        let parts = line.split(/\s+/);
        let revoked = false;
        if (parts[0].startsWith('@')) {
          revoked = parts[0] === '@revoked';
          if (parts[0] === '@cert-authority') return; // certificates are not supported
          parts = parts.slice(1);
        }
        if (parts.length < 3 || !hostFieldMatches(parts[0], name)) return;
        keys.push({ type: parts[1], blob: parts[2], file, line: i + 1, revoked });
      });
  }
  return keys;
}

/** The key type inside an SSH public key blob (its first length-prefixed string). */
export function keyTypeOf(blob: Buffer): string {
  const len = blob.readUInt32BE(0);
  return blob.subarray(4, 4 + len).toString('ascii');
}

export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/**
 * `files` in order of authority (~/.ssh/known_hosts first, then the runbook's own): the first file
 * that knows this host with a key of the presented type decides, so a later file can never vouch
 * for a key an earlier one contradicts. @revoked in any file wins.
 */
export function verifyHostKey(files: string[], host: string, port: number, blob: Buffer): HostKeyVerdict {
  const keys = keysForHost(files, host, port);
  const b64 = blob.toString('base64');
  const revoked = keys.find((k) => k.revoked && k.blob === b64);
  if (revoked) return { status: 'revoked', entry: revoked };
  const type = keyTypeOf(blob);
  for (const file of files) {
    const sameType = keys.filter((k) => k.file === file && !k.revoked && k.type === type);
    if (sameType.length === 0) continue;
    const match = sameType.find((k) => k.blob === b64);
    return match ? { status: 'known', entry: match } : { status: 'changed', expected: sameType };
  }
  return { status: 'unknown' };
}

/** Host key algorithms to offer, known types first, so the server presents a key we can check. */
export function preferredHostKeyAlgorithms(files: string[], host: string, port: number): string[] | undefined {
  const types = [
    ...new Set(
      keysForHost(files, host, port)
        .filter((k) => !k.revoked)
        .map((k) => k.type),
    ),
  ];
  if (types.length === 0) return undefined;
  const expanded = types.flatMap((t) => (t === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [t]));
  return expanded;
}

export function appendKnownHost(file: string, host: string, port: number, blob: Buffer): void {
  mkdirSync(dirname(file), { recursive: true });
  appendFileSync(file, `${hostPattern(host, port)} ${keyTypeOf(blob)} ${blob.toString('base64')}\n`, { mode: 0o600 });
}
