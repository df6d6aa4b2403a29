import { appendFileSync, mkdirSync } from 'node:fs';
import { ensureRunbooksGitignore } from '../runbook/io.js';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { InvalidInputError } from '../errors.js';
import { readTlsKey } from '../runbook/tls-files.js';
import { consulTokenNames, resolveSecret, secretNotSetError, secretUses } from '../runbook/secrets.js';
import type { Runbook } from '../runbook/schema.js';
import { gatherFacts, type Facts } from './facts.js';
import { resolveNodes } from './nodes.js';
import { expandTilde } from './ssh-config.js';
import { keysForHost } from './known-hosts.js';
import { ConnectError, SshTransport, type Transport } from './transport.js';
import { layout } from '../runbook/layout.js';
import type { ResolvedNode } from './types.js';

export interface NodeHandle {
  node: ResolvedNode;
  t: Transport;
  facts: Facts;
  logPath: string;
}

export interface SessionOptions {
  runbookPath: string;
  runbook: Runbook;
  acceptNewHostKeys: boolean;
  /** Asks a person about an unknown host key (the CLI prompts at a terminal); without it, refused. */
  confirmHostKey?: (question: string) => Promise<boolean>;
  runId: string;
  /** Only these node indexes (default: all). */
  only?: number[];
  /**
   * Nodes that cannot be reached are collected here instead of failing the session (status: what
   * you run when a node died). A changed host key still fails: that is never "unreachable".
   */
  unreachable?: Array<{ node: ResolvedNode; error: ConnectError }>;
}

export function newRunId(now = new Date()): string {
  return now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
}

export function runbookDir(runbookPath: string): string {
  return dirname(resolve(runbookPath));
}

export function knownHostsFiles(rb: Runbook, runbookPath: string): { files: string[]; own: string } {
  const base = runbookDir(runbookPath);
  const own = rb.ssh.knownHostsFile
    ? isAbsolute(expandTilde(rb.ssh.knownHostsFile))
      ? expandTilde(rb.ssh.knownHostsFile)
      : join(base, rb.ssh.knownHostsFile)
    : join(base, `${rb.name}.known_hosts`);
  return { files: [join(homedir(), '.ssh', 'known_hosts'), own], own };
}

export function logPathFor(runbookPath: string, runId: string, node: ResolvedNode): string {
  return join(runbookDir(runbookPath), 'logs', runId, `${node.name}.log`);
}

/** Secret values the run needs, by environment variable name: from the environment or the secrets file. */
export function loadSecrets(rb: Runbook, runbookPath: string): Record<string, string> {
  const out: Record<string, string> = {};
  const tokens = consulTokenNames(rb);
  for (const use of secretUses(rb)) {
    const name = use.name;
    if (out[name] !== undefined) continue;
    if (use.file) {
      out[name] = readTlsKey(rb, runbookDir(runbookPath)).pem;
      continue;
    }
    const v = resolveSecret(name, runbookPath, rb.name);
    if (v === undefined) {
      if (use.optional && !(name in process.env)) continue; // passwordless sudo needs none
      throw secretNotSetError(use, runbookPath, rb.name);
    }
    if (name === rb.vrrp.auth?.passwordEnv && v.length > 8) {
      throw new InvalidInputError(
        `${name} is ${v.length} characters; keepalived's auth_pass uses only the first 8, so peers configured ` +
          `differently would not agree`,
        ['use at most 8 characters'],
      );
    }
    // The Redis password goes into a Lua string and a RESP command: printable, no quote, backslash or space.
    if (name === rb.site.gray?.redis.passwordEnv && !/^[\x21\x23-\x5b\x5d-\x7e]{1,512}$/.test(v)) {
      throw new InvalidInputError(
        `${name} (the gray release's Redis password) may only have printable characters other than " \\ and spaces`,
        ['choose a password without quotes, backslashes or spaces'],
      );
    }
    // An LDAP bind password goes into a double-quoted nginx string.
    if (use.field.endsWith('bindPasswordEnv') && !/^[\x20\x21\x23-\x5b\x5d-\x7e]{1,256}$/.test(v)) {
      throw new InvalidInputError(
        `${use.field}: ${name} may only have printable characters other than " and \\ (it goes into nginx.conf)`,
      );
    }
    if (use.field === 'site.tls.sessionTickets.secretEnv' && !/^[\x21-\x7e]{32,512}$/.test(v)) {
      throw new InvalidInputError(
        `${use.field}: ${name} must be 32 to 512 printable characters without spaces (every node derives its ` +
          `ticket keys from it)`,
        ['e.g. openssl rand -base64 48'],
      );
    }
    // It goes into dehydrated's config, a shell file: base64url only.
    if (use.field === 'site.tls.acme.eab.hmacKeyEnv' && !/^[A-Za-z0-9_-]{16,512}={0,2}$/.test(v)) {
      throw new InvalidInputError(`${use.field}: ${name} is not an EAB HMAC key (base64url, as the CA gave it)`);
    }
    // A Consul token goes into a Lua string and an HTTP header: only the characters tokens are made of.
    if (tokens.includes(name) && !/^[A-Za-z0-9._~+/=-]{1,256}$/.test(v)) {
      throw new InvalidInputError(`${name} is not a Consul ACL token (letters, digits and - . _ ~ + / = only)`, [
        'check the value; Consul tokens are UUIDs',
      ]);
    }
    out[name] = v;
  }
  return out;
}

/**
 * Connect to every node (one connection each, reused for the whole run) and gather its facts.
 * Nodes whose host key is already recorded (or that cannot prompt) connect at once; the others one
 * at a time afterwards, so host-key prompts never interleave nor wait behind each other's handshakes.
 */
export async function openSession(o: SessionOptions, secrets: Record<string, string>): Promise<NodeHandle[]> {
  const rb = o.runbook;
  const nodes = resolveNodes(rb).filter((n) => !o.only || o.only.includes(n.index));
  const { files, own } = knownHostsFiles(rb, o.runbookPath);
  const handles: NodeHandle[] = [];
  const sudoPassword = rb.ssh.sudoPasswordEnv ? secrets[rb.ssh.sudoPasswordEnv] : undefined;
  ensureRunbooksGitignore(runbookDir(o.runbookPath));
  const connectNode = async (node: ResolvedNode): Promise<NodeHandle | undefined> => {
    const logPath = logPathFor(o.runbookPath, o.runId, node);
    mkdirSync(dirname(logPath), { recursive: true });
    const log = (text: string) => appendFileSync(logPath, text);
    try {
      const t = await SshTransport.connect({
        host: node.host,
        port: node.port,
        user: node.user,
        identityFile: rb.ssh.identityFile,
        knownHostsFiles: files,
        acceptNewInto: own,
        sudoPassword,
        log,
        readyTimeoutMs: o.unreachable ? 8_000 : undefined,
        onUnknownKey: async (host, fp, type) => {
          if (o.acceptNewHostKeys) return true;
          return o.confirmHostKey
            ? o.confirmHostKey(`${host} presents an unknown ${type} host key ${fp}. Trust it and record it in ${own}?`)
            : false;
        },
      });
      return { node, t, facts: undefined as unknown as Facts, logPath };
    } catch (e) {
      if (!(o.unreachable && e instanceof ConnectError && e.unreachable)) throw e;
      o.unreachable.push({ node, error: e });
      return undefined;
    }
  };
  // A recorded key (or none to ask about) means no prompt: those handshakes run side by side.
  const mayPrompt = (n: ResolvedNode) =>
    !o.acceptNewHostKeys && o.confirmHostKey !== undefined && keysForHost(files, n.host, n.port).length === 0;
  try {
    const together = await Promise.allSettled(nodes.filter((n) => !mayPrompt(n)).map(connectNode));
    for (const r of together) if (r.status === 'fulfilled' && r.value) handles.push(r.value);
    const failed = together.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    for (const n of nodes.filter(mayPrompt)) {
      const h = await connectNode(n);
      if (h) handles.push(h);
    }
    // Node order, whatever order the handshakes finished in.
    handles.sort((a, b) => a.node.index - b.node.index);
    o.unreachable?.sort((a, b) => a.node.index - b.node.index);
    // Where the binaries really are (OpenResty keeps nginx under <prefix>/nginx).
    const L = layout(rb);
    await Promise.all(
      handles.map(async (h) => {
        h.facts = await gatherFacts(h.t, rb.build.buildDir, L.nginxBinary, L.keepalivedBinary, L.keepalivedConf);
      }),
    );
    return handles;
  } catch (e) {
    await Promise.all(handles.map((h) => h.t.close()));
    throw e;
  }
}
