#!/usr/bin/env node
// HTTPS figures on the lab (printed, not asserted). Needs root on Linux; builds dist first.
//   npm run bench:tls [-- --seconds 5 --clients 200]
// The lab runbook with site.tls (the test certificate of test/fixtures/tls), measured twice in the
// same run: with shared session ticket keys (site.tls.sessionTickets) and with nginx's per-node keys.
// 1. full handshakes/s and resumed handshakes/s through the VIP (one connection at a time, node's tls)
// 2. N clients each hold a session from the VIP holder; a planned failover; each reconnects once in
//    the first second after the VIP moved: the share that resumed instead of a full handshake.
import { randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import tls from 'node:tls';
import { parse, stringify } from 'yaml';
import { cli, labRunbookFile } from './lib.mjs';

const arg = (name, fallback) => Number(process.argv[process.argv.indexOf(name) + 1]) || fallback;
const seconds = arg('--seconds', 5);
const clients = arg('--clients', 200);
const NAME = 'www.example.test';
const fixtures = join(import.meta.dirname, '..', 'test', 'fixtures', 'tls');
const ca = readFileSync(join(fixtures, 'ca.crt'), 'utf8');

const { file, dir, state } = await labRunbookFile();
const vip = state.vip;
mkdirSync(join(dir, 'runbooks', 'tls'), { recursive: true });
copyFileSync(join(fixtures, 'chain.pem'), join(dir, 'runbooks', 'tls', 'chain.pem'));
copyFileSync(join(fixtures, 'leaf.key'), join(dir, 'runbooks', 'tls', 'leaf.key'));
chmodSync(join(dir, 'runbooks', 'tls', 'leaf.key'), 0o600);
process.env.HA_SETUP_BENCH_TICKET_SECRET = randomBytes(32).toString('base64url');

function writeRunbook(sharedKeys) {
  const doc = parse(readFileSync(file, 'utf8'));
  doc.site.serverName = `${NAME} example.test`;
  doc.site.tls = {
    certificate: { chain: 'tls/chain.pem', key: 'tls/leaf.key' },
    ...(sharedKeys ? { sessionTickets: { secretEnv: 'HA_SETUP_BENCH_TICKET_SECRET' } } : {}),
  };
  writeFileSync(file, stringify(doc));
}

/** One TLS handshake to the VIP (TLS 1.3, a ticket when `session` is given); resolves with the new session. */
function handshake(session) {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: vip, port: 443, servername: NAME, ca, session, minVersion: 'TLSv1.3' });
    let ticket;
    socket.on('session', (s) => {
      ticket = s;
    });
    socket.once('secureConnect', () => {
      const reused = socket.isSessionReused();
      // TLS 1.3 tickets arrive after the handshake: one request, then close.
      socket.write(`GET /ha-health HTTP/1.1\r\nHost: ${NAME}\r\nConnection: close\r\n\r\n`);
      socket.on('data', () => {});
      socket.on('end', () => resolve({ reused, session: ticket }));
    });
    socket.on('error', reject);
    socket.setTimeout(3000, () => socket.destroy(new Error('timeout')));
  });
}

async function rate(resume) {
  let session = resume ? (await handshake()).session : undefined;
  let count = 0;
  let resumed = 0;
  const end = Date.now() + seconds * 1000;
  while (Date.now() < end) {
    const r = await handshake(session);
    count++;
    if (r.reused) resumed++;
    if (resume && r.session) session = r.session;
  }
  return { perSecond: count / seconds, resumed: count ? resumed / count : 0 };
}

async function afterFailover() {
  const sessions = [];
  for (let i = 0; i < clients; i++) sessions.push((await handshake()).session);
  if ((await cli(['failover', file])) !== 0) throw new Error('planned failover failed');
  const started = Date.now();
  const results = await Promise.all(sessions.map((s) => handshake(s).catch(() => ({ reused: false }))));
  const tookMs = Date.now() - started;
  return { share: results.filter((r) => r.reused).length / clients, tookMs };
}

const rows = [];
for (const shared of [true, false]) {
  writeRunbook(shared);
  if ((await cli(['apply', file, '--renderer', 'silent', '--no-verify'])) !== 0)
    throw new Error(`apply (${shared ? 'shared' : 'per-node'} ticket keys) failed`);
  const full = await rate(false);
  const resumed = await rate(true);
  const failover = await afterFailover();
  rows.push({
    label: shared ? 'shared ticket keys (sessionTickets)' : "per-node keys (nginx's own)",
    full,
    resumed,
    failover,
  });
}

console.log(
  `HTTPS through the VIP on the lab (TLS 1.3, one connection at a time for ${seconds} s; ${clients} clients after ` +
    `a planned failover)`,
);
for (const r of rows)
  console.log(
    `${r.label.padEnd(38)} full ${r.full.perSecond.toFixed(0).padStart(5)}/s   ` +
      `resumed ${r.resumed.perSecond.toFixed(0).padStart(5)}/s (${(100 * r.resumed.resumed).toFixed(0)}% reused)   ` +
      `resumed after failover ${(100 * r.failover.share).toFixed(0).padStart(3)}% ` +
      `(${r.failover.tookMs} ms for ${clients})`,
  );
writeRunbook(true);
await cli(['apply', file, '--renderer', 'silent', '--no-verify']);
