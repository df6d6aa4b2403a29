import { join } from 'node:path';
import { dirname, resolve } from 'node:path';
import { InvalidInputError } from '../errors.js';
import { readSecretsFile, secretsPathFor } from './io.js';
import { layout } from './layout.js';
import type { Runbook } from './schema.js';
import { TLS_KEY_SECRET } from './tls-files.js';
import { acmeDirectoryUrl } from './tls-settings.js';

/**
 * Secrets are named in the runbook and read at run time. A runbook names an address too (a Redis,
 * a Consul), so a free choice of names would let a runbook send any variable of the operator's
 * (AWS_SECRET_ACCESS_KEY...) to a host it picks. So: from the environment only names with this
 * prefix; any other name only from the runbook's own .secrets file, where the operator put it.
 */
export const SECRET_ENV_PREFIX = 'HA_SETUP_';

/** One secret the runbook uses: the variable, the field naming it, and where its value goes. */
export interface SecretUse {
  name: string;
  field: string;
  goesTo: string;
  /** apply can run without it (passwordless sudo needs none). */
  optional?: boolean;
  /** A secret kept in a file beside the runbook (the TLS private key), not in a variable. */
  file?: string;
}

/** Every secret a runbook uses, with where its value is sent (plan shows this). */
export function secretUses(rb: Runbook): SecretUse[] {
  const out: SecretUse[] = [];
  if (rb.vrrp.auth)
    out.push({
      name: rb.vrrp.auth.passwordEnv,
      field: 'vrrp.auth.passwordEnv',
      goesTo: 'keepalived.conf on every node (auth_pass of the VRRP adverts)',
    });
  if (rb.ssh.sudoPasswordEnv)
    out.push({
      name: rb.ssh.sudoPasswordEnv,
      field: 'ssh.sudoPasswordEnv',
      goesTo: `sudo on every node, over SSH as ${rb.ssh.user} (read by sudo only)`,
      optional: true,
    });
  rb.site.upstreams.forEach((u, i) => {
    const c = u.discovery?.consul;
    if (c?.tokenEnv)
      out.push({
        name: c.tokenEnv,
        field: `site.upstreams[${i}].discovery.consul.tokenEnv`,
        goesTo: `Consul ${c.address} (X-Consul-Token, from nginx on every node; kept in its config.lua, mode 0600)`,
      });
  });
  rb.site.ldap.forEach((l, i) => {
    if (l.bindPasswordEnv)
      out.push({
        name: l.bindPasswordEnv,
        field: `site.ldap[${i}].bindPasswordEnv`,
        goesTo:
          `LDAP ${l.url.split('/').slice(0, 3).join('/')} (bind as ${l.bindDn}, from nginx on every node; ` +
          `kept in the site file, mode 0600)`,
      });
  });
  const g = rb.site.gray;
  if (g?.redis.passwordEnv)
    out.push({
      name: g.redis.passwordEnv,
      field: 'site.gray.redis.passwordEnv',
      goesTo: `Redis ${g.redis.address} (AUTH, from nginx on every node and from \`ha-setup gray\` on this machine)`,
    });
  const tls = rb.site.tls;
  if (tls?.certificate)
    out.push({
      name: TLS_KEY_SECRET,
      file: tls.certificate.key,
      field: 'site.tls.certificate.key',
      goesTo: `every node's ${layout(rb).tlsDir}/privkey.pem (mode 0600, read by nginx's master)`,
    });
  if (tls?.sessionTickets)
    out.push({
      name: tls.sessionTickets.secretEnv,
      field: 'site.tls.sessionTickets.secretEnv',
      goesTo: `every node's ${layout(rb).ticketSecret} (mode 0600): the session ticket keys are derived from it there`,
    });
  if (tls?.acme?.eab)
    out.push({
      name: tls.acme.eab.hmacKeyEnv,
      field: 'site.tls.acme.eab.hmacKeyEnv',
      goesTo:
        `the ACME CA ${acmeDirectoryUrl(tls.acme.directory)} (external account binding, from dehydrated on ` +
        `every node; kept in its config, mode 0600)`,
    });
  return out;
}

/** Environment variables holding Consul ACL tokens. */
export function consulTokenNames(rb: Runbook): string[] {
  return [
    ...new Set(
      secretUses(rb)
        .filter((u) => u.field.endsWith('consul.tokenEnv'))
        .map((u) => u.name),
    ),
  ];
}

/**
 * The value of a secret: HA_SETUP_* from the environment (then the .secrets file), any other name from the .secrets
 * file only.
 */
export function resolveSecret(name: string, runbookPath: string, runbookName: string): string | undefined {
  const fromFile = readSecretsFile(secretsPathFor(runbookPath, runbookName))[name];
  if (name.startsWith(SECRET_ENV_PREFIX)) return process.env[name] ?? fromFile;
  return fromFile;
}

/** The error for a secret that has no value where ha-setup may read it. */
export function secretNotSetError(
  use: Pick<SecretUse, 'name' | 'field'>,
  runbookPath: string,
  runbookName: string,
): InvalidInputError {
  const file = join(dirname(resolve(runbookPath)), `${runbookName}.secrets`);
  const { name, field } = use;
  if (!name.startsWith(SECRET_ENV_PREFIX) && process.env[name] !== undefined) {
    return new InvalidInputError(
      `${field}: ${name} is set in the environment, but ha-setup ` +
        `reads only ${SECRET_ENV_PREFIX}* variables from the environment`,
      [
        'a runbook names where its secrets go, so it may not pick any variable of yours',
        `rename it in the runbook (e.g. ${SECRET_ENV_PREFIX}${name}) and export that, ` +
          `or put ${name}=... into ${file} (mode 0600)`,
      ],
    );
  }
  return new InvalidInputError(`${field}: the secret ${name} is not set`, [
    name.startsWith(SECRET_ENV_PREFIX)
      ? `export ${name}=... or put ${name}=... into ${file} (mode 0600)`
      : `put ${name}=... into ${file} (mode 0600); only ${SECRET_ENV_PREFIX}* names are read from the environment`,
  ]);
}
