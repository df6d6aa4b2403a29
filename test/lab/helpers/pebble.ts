import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runLocal } from '../../../src/local.js';

// Let's Encrypt's test ACME server (pebble, Debian's package) on the lab host, with its mock DNS
// (pebble-challtestsrv) answering every name with the VIP: the http-01 validation really goes to
// the VIP on port 80, as Let's Encrypt's would. Pebble's own https listener has a certificate from
// a CA made here (the runbook's acme.caFile); the certificates it issues chain to a root it
// generates at start (rootPem, for verifying what nginx serves).

export interface Pebble {
  /** The directory URL for site.tls.acme.directory. */
  directory: string;
  /** The CA of pebble's https listener (site.tls.acme.caFile). */
  listenerCaPem: string;
  /** The root pebble issues under (fetched from its management interface). */
  rootPem: string;
  stop(): Promise<void>;
}

/** Pebble's binaries from Debian's package, extracted once into `cacheDir`. */
async function pebbleBinaries(cacheDir: string): Promise<{ pebble: string; dns: string }> {
  const bin = join(cacheDir, 'root', 'usr', 'bin');
  if (!existsSync(join(bin, 'pebble'))) {
    mkdirSync(cacheDir, { recursive: true });
    // A fresh machine may have no package lists yet.
    const first = await runLocal('apt-get', ['download', 'pebble'], { cwd: cacheDir, allowFailure: true });
    if (first.code !== 0) {
      await runLocal('apt-get', ['update']);
      await runLocal('apt-get', ['download', 'pebble'], { cwd: cacheDir });
    }
    const deb = readdirSync(cacheDir).find((f) => f.startsWith('pebble_') && f.endsWith('.deb'));
    if (!deb) throw new Error(`apt-get download pebble left no .deb in ${cacheDir}`);
    await runLocal('dpkg-deb', ['-x', join(cacheDir, deb), join(cacheDir, 'root')]);
  }
  return { pebble: join(bin, 'pebble'), dns: join(bin, 'pebble-challtestsrv') };
}

function get(url: string, ca: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca, timeout: 2000 }, (res) => {
      let body = '';
      res.on('data', (d) => {
        body += d;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

export async function startPebble(address: string, vip: string, cacheDir: string): Promise<Pebble> {
  const { pebble, dns } = await pebbleBinaries(cacheDir);
  const dir = mkdtempSync(join(tmpdir(), 'ha-setup-pebble-'));
  const openssl = (args: string[]) => runLocal('openssl', args, { cwd: dir });
  await openssl(
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'].concat([
      '-days',
      '30',
      '-subj',
      '/CN=ha-setup lab pebble listener CA',
      '-keyout',
      'ca.key',
      '-out',
      'ca.crt',
    ]),
  );
  await openssl(
    ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'].concat([
      '-subj',
      `/CN=${address}`,
      '-keyout',
      'key.pem',
      '-out',
      'listener.csr',
    ]),
  );
  writeFileSync(join(dir, 'listener.ext'), `subjectAltName=IP:${address}\nextendedKeyUsage=serverAuth\n`);
  await openssl(
    ['x509', '-req', '-in', 'listener.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial'].concat([
      '-days',
      '30',
      '-extfile',
      'listener.ext',
      '-out',
      'cert.pem',
    ]),
  );
  const config = {
    pebble: {
      listenAddress: `${address}:14000`,
      managementListenAddress: `${address}:15000`,
      certificate: join(dir, 'cert.pem'),
      privateKey: join(dir, 'key.pem'),
      // Where the validation connects: the site's port on the VIP.
      httpPort: 80,
      tlsPort: 443,
      ocspResponderURL: '',
      externalAccountBindingRequired: false,
    },
  };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  const children: ChildProcess[] = [];
  const start = (cmd: string, args: string[], env: Record<string, string>) => {
    const child = spawn(cmd, args, { cwd: dir, stdio: 'pipe', env: { ...process.env, ...env } });
    let out = '';
    child.stdout?.on('data', (d) => {
      out += d;
    });
    child.stderr?.on('data', (d) => {
      out += d;
    });
    children.push(child);
    return { child, output: () => out };
  };
  start(
    dns,
    ['-dns01', `${address}:8053`, '-http01', '', '-https01', '', '-tlsalpn01', ''].concat([
      '-management',
      `${address}:8055`,
      '-defaultIPv4',
      vip,
      '-defaultIPv6',
      '',
    ]),
    {},
  );
  const server = start(pebble, ['-config', join(dir, 'config.json'), '-dnsserver', `${address}:8053`], {
    // No random sleep before validations; every nonce accepted (dehydrated retries badNonce anyway).
    PEBBLE_VA_NOSLEEP: '1',
    PEBBLE_WFE_NONCEREJECT: '0',
  });
  const ca = readFileSync(join(dir, 'ca.crt'), 'utf8');
  const directory = `https://${address}:14000/dir`;
  const deadline = Date.now() + 15_000;
  for (;;) {
    const ok = await get(directory, ca).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline || server.child.exitCode !== null)
      throw new Error(`pebble did not answer ${directory}:\n${server.output()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  const root = await get(`https://${address}:15000/roots/0`, ca);
  if (root.status !== 200) throw new Error(`pebble's root: HTTP ${root.status}`);
  return {
    directory,
    listenerCaPem: ca,
    rootPem: root.body,
    async stop() {
      for (const c of children) c.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 200));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
