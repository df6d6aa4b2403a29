import type { NodeHandle } from '../engine/session.js';
import type { Runbook } from '../runbook/schema.js';
import { type CertificateView, certificateView, pemCertificates, uncoveredNames } from '../runbook/tls-files.js';
import { certificateNames } from '../runbook/tls-settings.js';
import { shq } from '../shell.js';

// The certificate each node serves on the HTTPS port, read on the node itself (127.0.0.1, with the
// site's name as SNI): a backup with an expired or wrong certificate is found before a failover
// needs it. Used by status and verify.

export interface ServedCertificate {
  node: string;
  view?: CertificateView;
  /** Why no certificate could be read (nginx down, TLS port closed). */
  error?: string;
  /** Expired, or not covering the site's names: verify fails and status says so. */
  problems: string[];
}

/** Fewer days than this left: status warns (renewal should have happened long before). */
export const CERT_WARN_DAYS = 14;

/** Shell: the PEM of the certificate nginx serves on this node's HTTPS port. */
export function servedCertificateScript(rb: Runbook): string {
  const port = rb.site.tls?.listen ?? 443;
  const name = certificateNames(rb.site)[0];
  const sni = name ? ` -servername ${shq(name)}` : '';
  return `openssl s_client -connect 127.0.0.1:${port}${sni} </dev/null 2>/dev/null | openssl x509 -outform PEM`;
}

/** What is wrong with a served certificate for this runbook. Pure. */
export function servedCertificateProblems(rb: Runbook, view: CertificateView, now = new Date()): string[] {
  const out: string[] = [];
  if (new Date(view.notAfter).getTime() <= now.getTime())
    out.push(`serves a certificate that expired on ${view.notAfter} (${view.subject})`);
  else if (new Date(view.notBefore).getTime() > now.getTime())
    out.push(`serves a certificate not valid before ${view.notBefore} (${view.subject})`);
  const missing = uncoveredNames(view.names, certificateNames(rb.site));
  if (missing.length > 0)
    out.push(
      `serves a certificate for ${view.names.join(', ') || view.subject} that does not cover ${missing.join(', ')}`,
    );
  return out;
}

export async function servedCertificates(
  handles: NodeHandle[],
  rb: Runbook,
  now = new Date(),
): Promise<ServedCertificate[]> {
  return Promise.all(
    handles.map(async (h): Promise<ServedCertificate> => {
      const r = await h.t.exec(servedCertificateScript(rb), { quiet: true });
      const pem = pemCertificates(r.stdout)[0];
      if (!pem) {
        const error = `no certificate on 127.0.0.1:${rb.site.tls?.listen ?? 443} (is nginx serving HTTPS?)`;
        return { node: h.node.name, error, problems: [error] };
      }
      const view = certificateView(pem, now);
      return { node: h.node.name, view, problems: servedCertificateProblems(rb, view, now) };
    }),
  );
}

/**
 * Whether the nodes serve one certificate. With certificate files they must (a difference is a
 * node left behind); with ACME each node has its own, so only the names are compared.
 */
export function sameCertificateEverywhere(rb: Runbook, served: ServedCertificate[]): { same: boolean; what: string } {
  const views = served.map((s) => s.view).filter((v): v is CertificateView => v !== undefined);
  if (views.length < served.length) return { same: false, what: 'not every node serves a certificate' };
  if (rb.site.tls?.acme) {
    const names = new Set(views.map((v) => [...v.names].sort().join(',')));
    return names.size === 1
      ? { same: true, what: 'each node its own ACME certificate, for the same names' }
      : { same: false, what: 'the nodes serve ACME certificates for different names' };
  }
  const prints = new Set(views.map((v) => v.fingerprint));
  return prints.size === 1
    ? { same: true, what: 'the same certificate on every node' }
    : { same: false, what: 'the nodes serve DIFFERENT certificates (a node was left behind: ha-setup apply)' };
}
