import { labOpenrestyTarball, labRunbook } from '../../../src/lab/runbook.js';
import type { Lab } from './with-lab.js';

/**
 * The OpenResty runbook of the lab suites: the wizard's defaults, the rebuilt tarball by its own pin,
 * the articles' modules from the lab's git server (`gitBase`), each configured by runbook fields.
 * 10-openresty builds it (and adds cache-purge); later suites start from the same build, so they
 * change configuration only.
 */
export function openrestyModulesRunbook(
  lab: Lab,
  gitBase: string,
  o: { cachePurge?: boolean; keepalivedVersion?: string } = {},
) {
  const [n1, n2] = lab.state.nodes.map((n) => n.ip);
  const doc = labRunbook(lab.state, lab.paths, { openrestyTarball: labOpenrestyTarball() }) as any;
  doc.build.modules = ['upstream-check', 'auth-ldap', 'fancyindex'];
  if (o.keepalivedVersion) doc.keepalived.version = o.keepalivedVersion;
  doc.sources.gitRewrite = { 'https://github.com/': gitBase };
  doc.site.upstreams = [
    {
      name: 'app',
      servers: [`${n1}:9001`, `${n2}:9001`],
      check: { interval: 500, rise: 1, fall: 2, timeout: 1000, path: '/' },
      sticky: { cookie: 'route' },
    },
  ];
  doc.site.ldap = [
    { name: 'labldap', url: `ldap://${n2}:389/ou=people,dc=ha,dc=lab?uid?sub?(objectClass=inetOrgPerson)` },
  ];
  doc.site.locations = [
    { path: '/ldap/', upstream: 'app', authLdap: 'labldap' },
    { path: '/files/', fancyindex: { root: '/srv/lab-files' } },
  ];
  if (o.cachePurge) {
    doc.build.modules.push('cache-purge');
    doc.site.cache = { path: '/var/cache/nginx-ha-lab' };
    doc.site.locations.push({ path: '/cached/', upstream: 'app', cache: { valid: '10m' } });
  }
  return doc;
}

/**
 * The keepalived version the pair runs, when the lab's mirror has its source (09 leaves 2.3.3): the
 * OpenResty suites keep it, so switching the flavor does not also rebuild and restart keepalived.
 */
export async function keptKeepalivedVersion(lab: Lab): Promise<string | undefined> {
  const r = await lab.ssh(0, '/usr/local/keepalived/sbin/keepalived --version 2>&1 | head -1');
  const v = /Keepalived v(\d+\.\d+\.\d+)/.exec(r.stdout)?.[1];
  return v && ['2.2.7', '2.3.3'].includes(v) ? v : undefined;
}
