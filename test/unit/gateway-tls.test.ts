import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { offlinePlan } from '../../src/engine/plan-view.js';
import { redisPipeline } from '../../src/gray/redis.js';
import { readSiteFiles } from '../../src/runbook/site-files.js';
import type { Runbook } from '../../src/runbook/schema.js';
import { validateRunbook } from '../../src/runbook/validate.js';
import { INSTALL_STEPS } from '../../src/steps/index.js';

// Consul over https and Redis over TLS: the token and the Redis password no longer cross the LAN in
// clear. The nodes' side is proven on the lab (08); here the runbook, the rendered files and the
// control machine's own Redis client (`ha-setup gray`) against a real TLS server.

const root = join(import.meta.dirname, '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'ha-setup-tls-'));
/** A CA and a server certificate for redis.lab, made by openssl as an operator would. */
function pki() {
  const o = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  o([
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-days',
    '2',
    '-subj',
    '/CN=ha-setup test CA',
  ]);
  o(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=redis.lab']);
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=DNS:redis.lab,DNS:consul.lab\n');
  o([
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'server.pem',
    '-days',
    '2',
    '-extfile',
    'san.ext',
  ]);
  return {
    ca: readFileSync(join(dir, 'ca.pem'), 'utf8'),
    key: readFileSync(join(dir, 'server.key')),
    cert: readFileSync(join(dir, 'server.pem')),
  };
}

describe('TLS to Consul and Redis', () => {
  const gray = () => parse(readFileSync(join(root, 'runbooks', 'example-gray.yaml'), 'utf8'));
  const gateway = () => parse(readFileSync(join(root, 'runbooks', 'example-gateway.yaml'), 'utf8'));

  it('validates: tls only with an https Consul address, CA files beside the runbook', () => {
    const doc = gateway();
    doc.site.upstreams[0].discovery.consul.tls = { caFile: 'ca.pem', serverName: 'consul.lab' };
    expect(validateRunbook(doc).problems).toEqual([
      {
        path: 'site.upstreams[0].discovery.consul.tls',
        message: expect.stringMatching(/applies to an https:\/\/ address/),
      },
    ]);
    doc.site.upstreams[0].discovery.consul.address = 'https://10.10.0.5:8501';
    expect(validateRunbook(doc).problems).toEqual([]);
    doc.site.upstreams[0].discovery.consul.tls.caFile = '/etc/ssl/ca.pem';
    expect(validateRunbook(doc).problems).toEqual([
      { path: 'site.upstreams[0].discovery.consul.tls.caFile', message: expect.stringMatching(/is absolute/) },
    ]);
    const g = gray();
    g.site.gray.redis.tls = { serverName: 'redis lab' };
    expect(validateRunbook(g).problems.map((p) => p.path)).toEqual(['site.gray.redis.tls.serverName']);
  });

  it(
    "renders: config.lua names the certificate's server name, " +
      "nginx.conf trusts the runbook's CA bundle (or the system CAs)",
    () => {
      const { ca } = pki();
      const doc = gray();
      doc.site.gray.redis.tls = { caFile: 'ca.pem', serverName: 'redis.lab' };
      const rb = validateRunbook(doc).runbook as Runbook;
      const files = readSiteFiles(rb, dir);
      expect(files.ca['ca.pem']).toBe(ca);
      const plan = offlinePlan(rb, INSTALL_STEPS, 'debian12', files)[0].steps.find(
        (s) => s.step.id === 'nginx-config',
      )!.plan;
      const config = plan.files.find((f) => f.path.endsWith('/ha_gateway/config.lua'))!.content;
      expect(config).toMatch(
        /redis = \{ host = "10\.20\.0\.7", port = 6379, .*, tls = \{ server_name = "redis\.lab" \} \}/,
      );
      expect(
        plan.files.find((f) => f.path === '/usr/local/openresty/nginx/conf/ha-gateway/trusted-ca.pem')?.content,
      ).toBe(ca);
      const nginxConf = plan.files.find((f) => f.path.endsWith('/nginx.conf'))!.content;
      expect(nginxConf).toContain('lua_ssl_trusted_certificate ha-gateway/trusted-ca.pem;');
      // Without a CA file: the nodes' own CAs, where each family keeps them.
      const sys = {
        ...rb,
        site: {
          ...rb.site,
          gray: { ...rb.site.gray!, redis: { ...rb.site.gray!.redis, tls: { serverName: 'redis.lab' } } },
        },
      };
      const conf = (release: string) =>
        offlinePlan(sys, INSTALL_STEPS, release)[0]
          .steps.find((s) => s.step.id === 'nginx-config')!
          .plan.files.find((f) => f.path.endsWith('/nginx.conf'))!.content;
      expect(conf('debian12')).toContain('lua_ssl_trusted_certificate /etc/ssl/certs/ca-certificates.crt;');
      expect(conf('el9')).toContain('lua_ssl_trusted_certificate /etc/pki/tls/certs/ca-bundle.crt;');
      // A private key given as the CA file is refused before anything is shipped.
      writeFileSync(join(dir, 'oops.pem'), `${ca}${readFileSync(join(dir, 'server.key'), 'utf8')}`);
      const oops = {
        ...rb,
        site: {
          ...rb.site,
          gray: { ...rb.site.gray!, redis: { ...rb.site.gray!.redis, tls: { caFile: 'oops.pem' } } },
        },
      };
      expect(() => readSiteFiles(oops, dir)).toThrow(/site\.gray\.redis\.tls\.caFile: oops\.pem holds a private key/);
    },
  );

  it(
    "ha-setup gray's client: TLS verified for the server name, and no password to a server that cannot " + 'prove it',
    async () => {
      const { ca, key, cert } = pki();
      const received: string[] = [];
      const server = createServer({ key, cert }, (s) => {
        s.on('data', (d) => {
          received.push(d.toString());
          // +OK for AUTH, then the three replies of a status read.
          s.write('+OK\r\n*1\r\n$8\r\n10.0.0.1\r\n*0\r\n$-1\r\n');
        });
        s.on('error', () => {});
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const port = (server.address() as AddressInfo).port;
      const commands = [
        ['SMEMBERS', 'k:ips'],
        ['SMEMBERS', 'k:values'],
        ['GET', 'k:percent'],
      ];
      try {
        const ok = await redisPipeline(
          { host: '127.0.0.1', port, db: 0, password: 's3cret', tls: { ca, servername: 'redis.lab' } },
          commands,
        );
        expect(ok).toEqual([['10.0.0.1'], [], null]);
        expect(received.join('')).toContain('s3cret');
        received.length = 0;
        // The certificate is not for this name: the handshake fails and the password is never sent.
        const wrong = await redisPipeline(
          { host: '127.0.0.1', port, db: 0, password: 's3cret', tls: { ca, servername: 'other.lab' } },
          commands,
        ).catch((e) => e);
        expect(wrong.message).toMatch(
          /Redis at 127\.0\.0\.1:\d+: cannot talk to it \(TLS: ERR_TLS_CERT_ALTNAME_INVALID/,
        );
        // Not signed by a CA we trust: the same.
        const untrusted = await redisPipeline(
          { host: '127.0.0.1', port, db: 0, password: 's3cret', tls: { servername: 'redis.lab' } },
          commands,
        ).catch((e) => e);
        expect(untrusted.message).toMatch(
          /TLS: (SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|DEPTH_ZERO_SELF_SIGNED_CERT)/,
        );
        expect(received.join('')).not.toContain('s3cret');
      } finally {
        server.close();
      }
    },
  );
});
