import { compareVersions } from '../catalog.js';
import { emptyPlan, secretRef, type PlanContext, type PlannedFile, type Step, type StepPlan } from '../engine/types.js';
import { render } from '../render.js';
import { TLS_KEY_SECRET } from '../runbook/tls-files.js';
import { acmeDirectoryLabel, acmeDirectoryUrl, certificateNames } from '../runbook/tls-settings.js';
import { shq } from '../shell.js';
import { osProfile } from '../engine/os-profile.js';
import { allOf, filesMatchCheck, layout, nginxVersion, packagesFor } from './common.js';
import { installPackagesCommands, packagesInstalledCheck } from './packages.js';

// HTTPS on the VIP (site.tls): what every node needs besides nginx's own configuration. The
// session ticket keys (derived on each node from the shared secret, rotated by a timer), and for
// ACME dehydrated's configuration, its hook and renewal timer, and a placeholder certificate so
// nginx can start before the first one is issued (the acme step, after start, issues it).

const UNITS = '/etc/systemd/system';
export const TICKET_UNIT = 'ha-setup-tls-tickets';
export const ACME_UNIT = 'ha-setup-acme';

/** Mozilla's server-side TLS recommendations (v5.7), without the DHE suites (they need a dhparam file). */
const PROFILES = {
  intermediate: {
    protocols: 'TLSv1.2 TLSv1.3',
    ciphers: [
      'ECDHE-ECDSA-AES128-GCM-SHA256',
      'ECDHE-RSA-AES128-GCM-SHA256',
      'ECDHE-ECDSA-AES256-GCM-SHA384',
      'ECDHE-RSA-AES256-GCM-SHA384',
      'ECDHE-ECDSA-CHACHA20-POLY1305',
      'ECDHE-RSA-CHACHA20-POLY1305',
    ].join(':'),
  },
  modern: { protocols: 'TLSv1.3', ciphers: '' },
};

/** What site.conf.njk needs to render the HTTPS server (undefined without site.tls). */
export function tlsView(pc: PlanContext) {
  const rb = pc.runbook;
  const tls = rb.site.tls;
  if (!tls) return undefined;
  const L = layout(rb);
  // `http2 on;` exists from nginx 1.25.1; before, http2 is a parameter of listen.
  const http2Directive = compareVersions(nginxVersion(rb), '1.25.1') >= 0;
  const profile = PROFILES[tls.profile];
  return {
    listen: tls.listen,
    http2Listen: tls.http2 && !http2Directive,
    http2Directive: tls.http2 && http2Directive,
    portSuffix: tls.listen === 443 ? '' : `:${tls.listen}`,
    redirectHttp: tls.redirectHttp,
    hstsMaxAge: tls.hstsMaxAge,
    profile: tls.profile,
    protocols: profile.protocols,
    ciphers: profile.ciphers,
    // Relative to the conf directory, so the staged copy nginx-config tests uses the staged files.
    certificate: tls.acme ? `${L.acmeLiveDir}/fullchain.pem` : 'ha-tls/fullchain.pem',
    key: tls.acme ? `${L.acmeLiveDir}/privkey.pem` : 'ha-tls/privkey.pem',
    sessionCache: tls.sessionCache,
    // A ticket must still decrypt when it comes back: at most one window old (the previous key).
    sessionTimeout: tls.sessionTickets ? `${tls.sessionTickets.rotateHours}h` : '1d',
    ticketKeys: tls.sessionTickets ? ['current', 'previous', 'next'].map((k) => `${L.ticketKeysDir}/${k}.key`) : [],
    acme: tls.acme
      ? {
          webroot: acmeWebroot(L),
          peers: pc.cluster.filter((n) => n.index !== pc.node.index).map((n) => `${n.host}:${rb.site.listen}`),
        }
      : undefined,
  };
}

const acmeWebroot = (L: ReturnType<typeof layout>) => L.acmeWebroot;
const acmeWellknown = (L: ReturnType<typeof layout>) => `${acmeWebroot(L)}/.well-known/acme-challenge`;

/** The chain and key of site.tls.certificate, in the conf directory (written by nginx-config, tested with it). */
export function certificateFiles(pc: PlanContext): PlannedFile[] {
  const rb = pc.runbook;
  if (!rb.site.tls?.certificate) return [];
  const chain = pc.siteFiles?.tls.chain;
  if (chain === undefined) throw new Error('site.tls.certificate: the chain was not read on the control machine');
  const L = layout(rb);
  return [
    { path: `${L.tlsDir}/fullchain.pem`, content: chain, mode: 0o644 },
    // The key travels as a secret: the plan, the journal and the docs see only its placeholder.
    { path: `${L.tlsDir}/privkey.pem`, content: secretRef(TLS_KEY_SECRET), mode: 0o600 },
  ];
}

/** How dehydrated is run: by the timer, and once by the acme step. */
export function acmeCommand(pc: PlanContext): string {
  return `/usr/bin/dehydrated --cron --accept-terms --config ${shq(`${layout(pc.runbook).acmeConfDir}/config`)}`;
}

/** What the hook records after a deployment: the CA and the names, so a changed runbook re-issues. */
export function acmeIssuedFor(pc: PlanContext): string {
  const tls = pc.runbook.site.tls!;
  return `${acmeDirectoryUrl(tls.acme!.directory)} ${certificateNames(pc.runbook.site).join(' ')}`;
}

function ticketFiles(pc: PlanContext): PlannedFile[] {
  const rb = pc.runbook;
  const t = rb.site.tls?.sessionTickets;
  if (!t) return [];
  const L = layout(rb);
  return [
    // Exactly the secret, no newline: the script hashes the file as it is.
    { path: L.ticketSecret, content: secretRef(t.secretEnv), mode: 0o600 },
    {
      path: L.ticketScript,
      mode: 0o755,
      content: render('tls-ticket-keys.sh.njk', {
        secretFile: L.ticketSecret,
        keysDir: L.ticketKeysDir,
        nginxBinary: L.nginxBinary,
        rotateHours: t.rotateHours,
      }),
    },
    {
      path: `${UNITS}/${TICKET_UNIT}.service`,
      mode: 0o644,
      content: render('ha-setup-tls-tickets.service.njk', { script: L.ticketScript }),
    },
    {
      path: `${UNITS}/${TICKET_UNIT}.timer`,
      mode: 0o644,
      content: render('ha-setup-tls-tickets.timer.njk', { rotateHours: t.rotateHours }),
    },
  ];
}

function acmeFiles(pc: PlanContext): PlannedFile[] {
  const rb = pc.runbook;
  const acme = rb.site.tls?.acme;
  if (!acme) return [];
  const L = layout(rb);
  const label = acmeDirectoryLabel(acme.directory);
  const caFile = acme.caFile ? `${L.acmeConfDir}/directory-ca.pem` : '';
  const files: PlannedFile[] = [
    {
      path: `${L.acmeConfDir}/config`,
      // The EAB key is in here: root only.
      mode: 0o600,
      content: render('dehydrated.conf.njk', {
        label,
        directory: acmeDirectoryUrl(acme.directory),
        email: acme.email ?? '',
        stateDir: L.acmeStateDir,
        wellknown: acmeWellknown(L),
        domainsTxt: `${L.acmeConfDir}/domains.txt`,
        hook: `${L.acmeConfDir}/hook.sh`,
        renewDays: acme.renewDays,
        keyAlgo: acme.keyType === 'ec' ? 'prime256v1' : 'rsa',
        caFile,
        eabKid: acme.eab?.kid ?? '',
        eabHmacKey: acme.eab ? secretRef(acme.eab.hmacKeyEnv) : '',
      }),
    },
    // One certificate for all the names; dehydrated names its directory after the first.
    { path: `${L.acmeConfDir}/domains.txt`, mode: 0o644, content: `${certificateNames(rb.site).join(' ')}\n` },
    {
      path: `${L.acmeConfDir}/hook.sh`,
      mode: 0o755,
      content: render('acme-hook.sh.njk', {
        liveDir: L.acmeLiveDir,
        nginxBinary: L.nginxBinary,
        issuedFor: acmeIssuedFor(pc),
      }),
    },
    {
      path: `${UNITS}/${ACME_UNIT}.service`,
      mode: 0o644,
      content: render('ha-setup-acme.service.njk', { label, command: acmeCommand(pc) }),
    },
    {
      path: `${UNITS}/${ACME_UNIT}.timer`,
      mode: 0o644,
      content: render('ha-setup-acme.timer.njk', { renewDays: acme.renewDays }),
    },
  ];
  if (caFile) {
    const ca = pc.siteFiles?.tls.acmeCa;
    if (ca === undefined) throw new Error('site.tls.acme.caFile: the CA file was not read on the control machine');
    files.push({ path: caFile, mode: 0o644, content: ca });
  }
  return files;
}

/**
 * Shell: a self-signed certificate for the names where nginx will read the ACME one, when there is
 * none yet: nginx starts, serves the challenges on port 80, and the acme step replaces it.
 */
function placeholderCommand(pc: PlanContext): string {
  const L = layout(pc.runbook);
  const names = certificateNames(pc.runbook.site);
  const live = L.acmeLiveDir;
  const subject = shq('/CN=ha-setup placeholder until ACME issues');
  const sans = shq(`subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}`);
  return (
    `if [ ! -s ${shq(`${live}/fullchain.pem`)} ]; then
  install -d -m 0755 ${shq(live)}
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 -subj ${subject} ` +
    `-addext ${sans} -keyout ${shq(`${live}/privkey.pem`)} -out ${shq(`${live}/fullchain.pem`)} 2>&1
  chmod 0600 ${shq(`${live}/privkey.pem`)}
fi`
  );
}

/** What HTTPS needs installed: openssl (ticket keys, placeholder, checks) and for ACME its client. */
function tlsPackages(pc: PlanContext): string[] {
  const tls = pc.runbook.site.tls;
  if (!tls) return [];
  return [...new Set([...packagesFor('tls', pc.facts), ...(tls.acme ? packagesFor('acme', pc.facts) : [])])];
}

/** Shell: takes out the timers (and their files) of parts of site.tls the runbook no longer has. */
function removedCommands(pc: PlanContext): string[] {
  const rb = pc.runbook;
  const L = layout(rb);
  const gone: Array<{ unit: string; paths: string[] }> = [];
  if (!rb.site.tls?.sessionTickets) gone.push({ unit: TICKET_UNIT, paths: [L.ticketSecret, L.ticketScript] });
  if (!rb.site.tls?.acme) gone.push({ unit: ACME_UNIT, paths: [`${L.acmeConfDir}/config`] });
  return gone.map(
    ({ unit, paths }) =>
      `if [ -e ${shq(`${UNITS}/${unit}.timer`)} ]; then systemctl ` +
      `disable --now ${unit}.timer || true; rm -f ` +
      `-- ${[`${UNITS}/${unit}.timer`, `${UNITS}/${unit}.service`, ...paths].map(shq).join(' ')}; systemctl ` +
      `daemon-reload; fi`,
  );
}

const removedProbe = (unit: string) => `[ ! -e ${shq(`${UNITS}/${unit}.timer`)} ]`;

export const tlsStep: Step = {
  id: 'tls',
  title: 'HTTPS: session ticket keys, ACME client and renewal timer (site.tls)',
  appliesTo: 'all',
  dependsOn: ['packages'],
  plan(pc): StepPlan {
    const plan = emptyPlan();
    const rb = pc.runbook;
    const tls = rb.site.tls;
    const L = layout(rb);
    plan.files.push(...ticketFiles(pc), ...acmeFiles(pc));
    const pkgs = tlsPackages(pc);
    if (pkgs.length > 0) {
      plan.commands.push(...installPackagesCommands(pc, pkgs));
      plan.notes.push(`packages: ${pkgs.join(' ')}`);
      if (tls?.acme && osProfile(pc.facts).epelHint)
        plan.notes.push('dehydrated comes from EPEL: enable it if the install fails');
    }
    if (tls?.sessionTickets)
      plan.commands.push(
        // Keys must exist before nginx-config tests a configuration naming them.
        `${shq(L.ticketScript)} --no-reload`,
        `systemctl daemon-reload && systemctl enable --now ${TICKET_UNIT}.timer`,
      );
    if (tls?.acme) {
      plan.commands.push(
        `install -d -m 0700 ${shq(L.acmeStateDir)} && install -d -m 0755 ${shq(acmeWellknown(L))}`,
        placeholderCommand(pc),
        `systemctl daemon-reload && systemctl enable ${ACME_UNIT}.timer && systemctl start ${ACME_UNIT}.timer`,
      );
      plan.notes.push(`ACME: ${acmeDirectoryLabel(tls.acme.directory)}`);
    }
    if (tls && !tls.sessionTickets)
      plan.notes.push(
        'site.tls.sessionTickets is not set: each nginx has ticket keys of its own, ' +
          'so sessions do not resume after a failover or a reload',
      );
    plan.commands.push(...removedCommands(pc));
    return plan;
  },
  check(ctx) {
    const tls = ctx.runbook.site.tls;
    const L = layout(ctx.runbook);
    const pkgs = tlsPackages(ctx);
    const probes = [
      packagesInstalledCheck(ctx, pkgs),
      tls?.sessionTickets
        ? `systemctl is-enabled --quiet ${TICKET_UNIT}.timer && [ -s ${shq(`${L.ticketKeysDir}/current.key`)} ]`
        : removedProbe(TICKET_UNIT),
      tls?.acme
        ? `systemctl is-enabled --quiet ${ACME_UNIT}.timer && [ -s ${shq(`${L.acmeLiveDir}/fullchain.pem`)} ]`
        : removedProbe(ACME_UNIT),
    ];
    return allOf(filesMatchCheck(ctx), probes.join(' && '));
  },
};
