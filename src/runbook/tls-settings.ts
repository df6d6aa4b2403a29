import { z } from 'zod';

// HTTPS on the VIP (site.tls): a certificate from files beside the runbook or from an ACME CA,
// the same session ticket keys on every node, and the listener's protocol settings. Cross-field
// rules (certificate or acme, names the certificate must cover) are in validate.ts; what the files
// hold is checked in tls-files.ts; the rendering is in templates/site.conf.njk and steps/tls.ts.

/** A file on the control machine, relative to the runbook's folder and never above it. */
const besideRunbookFile = (what: string) =>
  z.string().superRefine((s, ctx) => {
    if (s.startsWith('/'))
      ctx.addIssue({
        code: 'custom',
        message: `"${s}" is absolute; give the ${what} relative to the runbook's folder`,
      });
    else if (s.split('/').includes('..'))
      ctx.addIssue({
        code: 'custom',
        message: `"${s}" goes up with '..'; keep the ${what} in the runbook's folder or below it`,
      });
    else if (!/^[A-Za-z0-9_][A-Za-z0-9_./-]*$/.test(s))
      ctx.addIssue({ code: 'custom', message: `"${s}" must be a file path of letters, digits and . _ - /` });
  });

const envName = z
  .string()
  .regex(
    /^[A-Za-z_][A-Za-z0-9_]{0,127}$/,
    'must be an environment variable name (letters, digits, _; not starting with a digit)',
  );

export const DNS_NAME_PATTERN =
  /^(?=.{1,253}$)(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$/;

/** Well-known ACME directories by a short name: which one is in use is never in doubt. */
export const ACME_DIRECTORIES = {
  letsencrypt: 'https://acme-v02.api.letsencrypt.org/directory',
  'letsencrypt-staging': 'https://acme-staging-v02.api.letsencrypt.org/directory',
} as const;

export const acmeSettings = z.strictObject({
  /**
   * The CA: `letsencrypt` (production), `letsencrypt-staging` (certificates no browser trusts, for
   * trying things out), or the https:// URL of any ACME directory (an internal CA, ZeroSSL...).
   */
  directory: z.union(
    [
      z.literal('letsencrypt'),
      z.literal('letsencrypt-staging'),
      z.string().regex(/^https:\/\/[A-Za-z0-9.-]+(:\d{1,5})?(\/[A-Za-z0-9._~%/-]*)?$/, 'must be https://'),
    ],
    { error: 'directory must be letsencrypt, letsencrypt-staging or the https:// URL of an ACME directory' },
  ),
  /** The account's contact address (the CA's expiry mails go there). */
  email: z
    .string()
    .regex(/^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}$/, 'must be an e-mail address')
    .optional(),
  /** The names of the certificate; without them the DNS names of site.serverName. */
  names: z
    .array(z.string().regex(DNS_NAME_PATTERN, 'must be a DNS name such as www.example.com'))
    .max(100, 'at most 100 names per certificate')
    .optional(),
  /** External account binding, for CAs that require one (ZeroSSL, many internal CAs). */
  eab: z
    .strictObject({
      kid: z.string().regex(/^[A-Za-z0-9_-]{1,256}$/, 'must be the key id the CA gave (letters, digits, _ and -)'),
      /** The HMAC key (base64url), read from this environment variable or the runbook's .secrets file. */
      hmacKeyEnv: envName,
    })
    .optional(),
  /** A CA certificate (PEM) the nodes trust for the directory's own https (an internal CA, a test CA). */
  caFile: besideRunbookFile('CA file').optional(),
  /** Renew when fewer days than this are left. */
  renewDays: z
    .number({ error: 'renewDays must be a whole number of days from 1 to 60' })
    .int('renewDays must be a whole number of days from 1 to 60')
    .min(1, 'renewDays must be at least 1')
    .max(60, 'renewDays must be at most 60')
    .default(30),
  /** The certificate's key: ec (P-256, smaller and faster) or rsa (2048 bits, for very old clients). */
  keyType: z.enum(['ec', 'rsa'], { error: 'keyType must be ec or rsa' }).default('ec'),
});

export const tlsSettings = z.strictObject({
  listen: z
    .number({ error: 'listen must be a whole number from 1 to 65535' })
    .int('listen must be a whole number from 1 to 65535')
    .min(1, 'listen must be from 1 to 65535')
    .max(65535, 'listen must be from 1 to 65535')
    .default(443),
  http2: z.boolean().default(true),
  /** Plain HTTP (site.listen) answers with a redirect to https, except health checks and ACME challenges. */
  redirectHttp: z.boolean().default(true),
  /**
   * Strict-Transport-Security max-age in seconds; 0 sends none. Once sent, browsers refuse plain HTTP for that long.
   */
  hstsMaxAge: z
    .number({ error: 'hstsMaxAge must be a whole number of seconds (0: no HSTS)' })
    .int('hstsMaxAge must be a whole number of seconds (0: no HSTS)')
    .min(0, 'hstsMaxAge must be 0 or more')
    .max(63072000, 'hstsMaxAge must be at most 63072000 (two years)')
    .default(0),
  /** Mozilla's server-side TLS profiles: intermediate (TLS 1.2 and 1.3) or modern (TLS 1.3 only). */
  profile: z
    .enum(['intermediate', 'modern'], { error: 'profile must be intermediate or modern' })
    .default('intermediate'),
  /** The certificate from files beside the runbook (chain: leaf first, then intermediates). */
  certificate: z
    .strictObject({
      chain: besideRunbookFile('certificate chain'),
      /** The private key: never in logs, plan or docs; mode 0600 here and on the nodes. */
      key: besideRunbookFile('private key'),
    })
    .optional(),
  /** The certificate from an ACME CA, issued and renewed on every node by dehydrated. */
  acme: acmeSettings.optional(),
  /**
   * Session tickets every node can decrypt: keys derived per time window from one shared secret, so
   * a client resumes its session on the other node after a failover. Without: keys of each nginx's own.
   */
  sessionTickets: z
    .strictObject({
      /** The shared secret (32 characters or more), from this environment variable or the .secrets file. */
      secretEnv: envName,
      /** A new key every this many hours; the previous and the next one are kept for decryption. */
      rotateHours: z
        .number({ error: 'rotateHours must be a whole number of hours from 1 to 168' })
        .int('rotateHours must be a whole number of hours from 1 to 168')
        .min(1, 'rotateHours must be at least 1')
        .max(168, 'rotateHours must be at most 168')
        .default(12),
    })
    .optional(),
  /** The shared session cache of each node (1 MiB holds about 4,000 sessions). */
  sessionCache: z
    .string()
    .regex(/^\d{1,4}[mM]$/, 'sessionCache must be a size in megabytes such as 10m')
    .default('10m'),
});

export type TlsSettings = z.output<typeof tlsSettings>;

interface TlsSite {
  listen: number;
  serverName: string;
  tls?: TlsSettings;
}

/** site.serverName's names a certificate can be for: not `_`, not regular expressions (~...). */
export function serverDnsNames(serverName: string): string[] {
  return serverName.split(' ').filter((n) => DNS_NAME_PATTERN.test(n));
}

/** The names the certificate must cover: acme.names when given, else site.serverName's DNS names. */
export function certificateNames(site: TlsSite): string[] {
  return site.tls?.acme?.names ?? serverDnsNames(site.serverName);
}

/** The directory URL an acme setting names. */
export function acmeDirectoryUrl(directory: string): string {
  return (ACME_DIRECTORIES as Record<string, string>)[directory] ?? directory;
}

/** What ACME CA this is, said so nobody mistakes staging for production or the other way round. */
export function acmeDirectoryLabel(directory: string): string {
  if (directory === 'letsencrypt') return "Let's Encrypt (production: browsers trust these certificates)";
  if (directory === 'letsencrypt-staging')
    return "Let's Encrypt STAGING (test certificates no browser trusts; switch to letsencrypt when it works)";
  return `the ACME CA at ${directory}`;
}

/** Rules across site.tls's fields and the rest of the site. */
export function tlsSettingProblems(site: TlsSite): Array<{ path: string; message: string }> {
  const tls = site.tls;
  if (!tls) return [];
  const out: Array<{ path: string; message: string }> = [];
  const add = (path: string, message: string) => out.push({ path, message });
  if (tls.certificate && tls.acme)
    add('site.tls', 'give either certificate (files) or acme, not both: one certificate is served');
  if (!tls.certificate && !tls.acme)
    add(
      'site.tls',
      'needs a certificate: certificate: {chain, key} (files beside the runbook) or acme: {directory, ...}',
    );
  if (tls.listen === site.listen)
    add('site.tls.listen', `is site.listen's port too (${site.listen}); HTTPS needs a port of its own, usually 443`);
  if (tls.certificate && tls.certificate.chain === tls.certificate.key)
    add('site.tls.certificate.key', 'is the same file as the chain; give the private key in a file of its own');
  if (tls.acme) {
    // The CA's http-01 request always comes to port 80 of the name, i.e. to the VIP.
    if (site.listen !== 80)
      add(
        'site.tls.acme',
        `ACME's http-01 challenge always comes to port 80, but ` +
          `site.listen is ${site.listen}; set site.listen: 80 (it can redirect to https)`,
      );
    const names = certificateNames(site);
    if (names.length === 0)
      add(
        'site.tls.acme.names',
        `no DNS name to ask a certificate for: ` +
          `site.serverName is "${site.serverName}"; list the names here or set site.serverName`,
      );
    names.forEach((n, i) => {
      if (n.startsWith('*.'))
        add(
          tls.acme?.names ? `site.tls.acme.names[${i}]` : 'site.serverName',
          `${n}: a wildcard certificate needs a DNS challenge; the http-01 challenge ha-setup answers covers ` +
            `exact names only`,
        );
    });
  }
  return out;
}
