import { createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import { readFileSync, realpathSync, statSync } from 'node:fs';
import { resolve, sep } from 'node:path';
import { InvalidInputError } from '../errors.js';
import type { Runbook } from './schema.js';
import { certificateNames } from './tls-settings.js';

// The certificate files of site.tls.certificate, checked on the control machine before anything is
// shipped: a pair whose backup serves a broken certificate fails at the worst moment, so every
// problem nginx or a client would find later is an input error here.

/** The secret name the private key travels under (a file, never an environment variable). */
export const TLS_KEY_SECRET = '__ha_setup_tls_key';

const PEM_CERT = /-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+?-----END CERTIFICATE-----/g;

/** The PEM certificates of a file, in order. */
export function pemCertificates(text: string): string[] {
  return [...text.matchAll(PEM_CERT)].map((m) => `${m[0].replace(/\r/g, '')}\n`);
}

/** What a certificate says, as status, verify and the handover doc show it. */
export interface CertificateView {
  subject: string;
  issuer: string;
  names: string[];
  fingerprint: string;
  notBefore: string;
  notAfter: string;
  daysLeft: number;
}

export function certificateView(pem: string, now = new Date()): CertificateView {
  const c = new X509Certificate(pem);
  const notAfter = new Date(c.validTo);
  return {
    subject: oneLine(c.subject),
    issuer: oneLine(c.issuer),
    names: subjectAltNames(c),
    fingerprint: c.fingerprint256,
    notBefore: new Date(c.validFrom).toISOString(),
    notAfter: notAfter.toISOString(),
    daysLeft: Math.floor((notAfter.getTime() - now.getTime()) / 86_400_000),
  };
}

const oneLine = (dn: string) => dn.split('\n').filter(Boolean).join(', ');

/** The DNS names of the subjectAltName extension. */
export function subjectAltNames(c: X509Certificate): string[] {
  return (c.subjectAltName ?? '')
    .split(', ')
    .filter((e) => e.startsWith('DNS:'))
    .map((e) => e.slice(4).toLowerCase());
}

/** Whether a certificate name (exact or `*.` wildcard for one label) covers a server name. */
export function nameCovers(certName: string, name: string): boolean {
  const a = certName.toLowerCase();
  const b = name.toLowerCase();
  if (a === b) return true;
  if (!a.startsWith('*.') || b.startsWith('*.')) return false;
  const rest = b.slice(b.indexOf('.') + 1);
  return b.indexOf('.') > 0 && rest === a.slice(2);
}

/** Names of `names` no DNS name of the certificate covers. */
export function uncoveredNames(certNames: string[], names: string[]): string[] {
  return names.filter((n) => !certNames.some((c) => nameCovers(c, n)));
}

/**
 * Everything wrong with a chain and key for the names it must serve: each problem one sentence
 * naming the certificate by its subject. `now` decides expiry.
 */
export function certificateProblems(chainPem: string, key: KeyObject, names: string[], now = new Date()): string[] {
  const pems = pemCertificates(chainPem);
  if (pems.length === 0) return ['holds no PEM certificate (-----BEGIN CERTIFICATE-----)'];
  const certs = pems.map((p) => new X509Certificate(p));
  const problems: string[] = [];
  const leaf = certs[0];
  const subject = (c: X509Certificate) => oneLine(c.subject) || '(no subject)';
  if (!leaf.checkPrivateKey(key)) {
    const owner = certs.findIndex((c) => c.checkPrivateKey(key));
    problems.push(
      owner > 0
        ? `the key belongs to certificate ${owner + 1} of the chain (${subject(certs[owner])}): put that one first, ` +
            `then the CA certificates`
        : `the key does not belong to the first certificate of ` +
            `the chain (${subject(leaf)}): give the key it was issued for`,
    );
  }
  for (let i = 1; i < certs.length; i++) {
    if (!certs[i - 1].checkIssued(certs[i]) || !certs[i - 1].verify(certs[i].publicKey)) {
      problems.push(
        `the chain is not in order: certificate ${i + 1} (${subject(certs[i])}) did not issue ` +
          `certificate ${i} (${subject(certs[i - 1])}); ` +
          'put the server certificate first, then each CA that issued the one before it',
      );
      break;
    }
  }
  const from = new Date(leaf.validFrom);
  const to = new Date(leaf.validTo);
  if (to.getTime() <= now.getTime()) problems.push(`the certificate (${subject(leaf)}) expired on ${to.toISOString()}`);
  else if (from.getTime() > now.getTime())
    problems.push(`the certificate (${subject(leaf)}) is not valid before ${from.toISOString()}`);
  const sans = subjectAltNames(leaf);
  if (sans.length === 0)
    problems.push(`the certificate (${subject(leaf)}) has no DNS subjectAltName; clients ignore the common name`);
  else {
    const missing = uncoveredNames(sans, names);
    if (missing.length > 0)
      problems.push(
        `the certificate covers ${sans.join(', ')} but not ${missing.join(', ')} (site.serverName); every name ` +
          `the site answers needs to be in it`,
      );
  }
  return problems;
}

/** The real path of a runbook-relative file, which must stay inside the runbook's folder. */
function fileBeside(runbookDir: string, rel: string, field: string): string {
  const root = realpathSync(resolve(runbookDir));
  let real: string;
  try {
    real = realpathSync(resolve(root, rel));
  } catch {
    throw new InvalidInputError(`${field}: ${rel} does not exist (looked in ${root})`);
  }
  if (!real.startsWith(root + sep))
    throw new InvalidInputError(`${field}: ${rel} resolves to ${real}, outside the runbook's folder ${root}`);
  if (!statSync(real).isFile()) throw new InvalidInputError(`${field}: ${rel} is not a file`);
  if (statSync(real).size > 1024 * 1024) throw new InvalidInputError(`${field}: ${rel} is larger than 1 MiB`);
  return real;
}

/** Reads the private key file: mode 0600 (or stricter), unencrypted, one key. */
export function readTlsKey(rb: Runbook, runbookDir: string): { pem: string; key: KeyObject } {
  const rel = rb.site.tls?.certificate?.key;
  if (!rel) throw new InvalidInputError('site.tls.certificate.key is not set');
  const field = 'site.tls.certificate.key';
  const path = fileBeside(runbookDir, rel, field);
  const mode = statSync(path).mode & 0o777;
  if ((mode & 0o077) !== 0)
    throw new InvalidInputError(
      `${field}: ${rel} is readable by others (mode ${mode.toString(8).padStart(4, '0')}); ` +
        `a private key must be mode 0600`,
      [`chmod 600 ${path}`],
    );
  const pem = readFileSync(path, 'utf8');
  if (/ENCRYPTED/.test(pem))
    throw new InvalidInputError(
      `${field}: ${rel} is encrypted; nginx would ask for its passphrase at every start: ` +
        `give it unencrypted (mode 0600)`,
    );
  if (pem.match(/-----BEGIN [A-Z ]*PRIVATE KEY-----/g)?.length !== 1)
    throw new InvalidInputError(`${field}: ${rel} must hold exactly one PEM private key`);
  try {
    return { pem, key: createPrivateKey(pem) };
  } catch {
    // The parser's message may quote the file: say only what it is.
    throw new InvalidInputError(`${field}: ${rel} is not a private key nginx can read (PEM, RSA or EC)`);
  }
}

/** Reads and checks the chain against the key: every problem is an input error before anything ships. */
export function readTlsChain(rb: Runbook, runbookDir: string, now = new Date()): string {
  const cert = rb.site.tls?.certificate;
  if (!cert) throw new InvalidInputError('site.tls.certificate is not set');
  const field = 'site.tls.certificate.chain';
  const chain = readFileSync(fileBeside(runbookDir, cert.chain, field), 'utf8');
  if (/PRIVATE KEY-----/.test(chain))
    throw new InvalidInputError(
      `${field}: ${cert.chain} holds a private key; keep the key in its own file (site.tls.certificate.key, mode 0600)`,
    );
  if (pemCertificates(chain).length === 0)
    throw new InvalidInputError(`${field}: ${cert.chain} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  let problems: string[];
  try {
    problems = certificateProblems(chain, readTlsKey(rb, runbookDir).key, certificateNames(rb.site), now);
  } catch (e) {
    if (e instanceof InvalidInputError) throw e;
    throw new InvalidInputError(`${field}: ${cert.chain} has a certificate that cannot be parsed`);
  }
  if (problems.length > 0) throw new InvalidInputError(`${field}: ${cert.chain}: ${problems[0]}`, problems.slice(1));
  return pemCertificates(chain).join('');
}

/** Reads the ACME directory's CA file (PEM certificates only). */
export function readAcmeCa(rb: Runbook, runbookDir: string): string | undefined {
  const rel = rb.site.tls?.acme?.caFile;
  if (!rel) return undefined;
  const field = 'site.tls.acme.caFile';
  const text = readFileSync(fileBeside(runbookDir, rel, field), 'utf8');
  if (/PRIVATE KEY-----/.test(text))
    throw new InvalidInputError(`${field}: ${rel} holds a private key; give the CA certificate only`);
  const pems = pemCertificates(text);
  if (pems.length === 0) throw new InvalidInputError(`${field}: ${rel} holds no PEM certificate`);
  return pems.join('');
}

/** validate's view: every problem of the TLS files as a runbook problem on its field (none read without site.tls). */
export function tlsFileProblems(
  rb: Runbook,
  runbookDir: string,
  now = new Date(),
): Array<{ path: string; message: string }> {
  const out: Array<{ path: string; message: string }> = [];
  const collect = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      if (!(e instanceof InvalidInputError)) throw e;
      const m = /^(site\.tls\.[A-Za-z.]+): (.*)$/s.exec(e.message);
      const message = [m ? m[2] : e.message, ...e.details].join('; ');
      out.push({ path: m ? m[1] : 'site.tls', message });
    }
  };
  if (rb.site.tls?.certificate) collect(() => readTlsChain(rb, runbookDir, now));
  if (rb.site.tls?.acme?.caFile) collect(() => readAcmeCa(rb, runbookDir));
  return out;
}
