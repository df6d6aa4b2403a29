import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { NodeSSH } from 'node-ssh';
import { HaSetupError, InvalidInputError, RunFailedError } from '../errors.js';
import { shq } from '../shell.js';
import {
  appendKnownHost,
  fingerprint,
  preferredHostKeyAlgorithms,
  verifyHostKey,
  type HostKeyVerdict,
} from './known-hosts.js';
import { expandTilde, sshConfigFor } from './ssh-config.js';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

import { remoteTrace } from './trace.js';

/** Errors that say the host did not answer (as opposed to refusing our key). */
const UNREACHABLE = new RegExp(
  [
    'ECONNREFUSED',
    'EHOSTUNREACH',
    'ENETUNREACH',
    'ETIMEDOUT',
    'ENOTFOUND',
    'EAI_AGAIN',
    'Timed out while waiting for handshake',
  ].join('|'),
);

export { remoteTrace };

export interface ExecOptions {
  stdin?: string;
  /** Called with each complete output line (stdout and stderr), for progress display. */
  onLine?: (line: string) => void;
  /** Called with every raw chunk of stdout as it arrives. */
  onStdout?: (text: string) => void;
  /** Do not write the command itself to the log (it carries data, not an action). */
  quiet?: boolean;
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface WriteFileOptions {
  mode: number;
  owner?: string;
  group?: string;
  /** Keep the previous content as a timestamped .bak copy (default true; never for state files). */
  backup?: boolean;
}

export interface WriteResult {
  changed: boolean;
  backup?: string;
}

/** What the engine needs from a host. SshTransport is the real one; tests use a fake for ordering logic. */
export interface Transport {
  readonly label: string;
  /** Run a bash script as root (through sudo for other users) with `set -euo pipefail` and LC_ALL=C. */
  exec(script: string, opts?: ExecOptions): Promise<ExecResult>;
  /** Atomic write with mode and owner; keeps a timestamped backup when the content changes. */
  writeFile(path: string, content: string | Buffer, opts: WriteFileOptions): Promise<WriteResult>;
  /** Upload a local file over SFTP and verify its sha256 on the host. */
  upload(localPath: string, remotePath: string, opts: WriteFileOptions): Promise<WriteResult>;
  close(): Promise<void>;
}

/** A command that ran and failed: carries what the failure report needs. */
export class CommandFailedError extends RunFailedError {
  constructor(
    readonly command: string,
    readonly exitCode: number,
    readonly output: string,
  ) {
    super(`command failed with exit code ${exitCode}`);
  }
}

export class HostKeyError extends HaSetupError {}
export class SudoError extends HaSetupError {}
export class ConnectError extends RunFailedError {
  constructor(
    message: string,
    details: string[] = [],
    readonly unreachable = false,
  ) {
    super(message, details);
  }
}

export interface ConnectOptions {
  host: string;
  port: number;
  user: string;
  identityFile?: string;
  knownHostsFiles: string[];
  /** Where newly accepted keys are recorded (the runbook's own known_hosts). */
  acceptNewInto?: string;
  /** Decides about an unknown key: true accepts (and records) it. */
  onUnknownKey: (host: string, fp: string, type: string) => Promise<boolean>;
  sudoPassword?: string;
  log: (text: string) => void;
  readyTimeoutMs?: number;
}

/** sudo that always asks (-k ignores a cached credential), reading the password from stdin without a prompt text. */
const SUDO_WITH_PASSWORD = `sudo -k -S -p ''`;

export function wrapScript(script: string): string {
  return `set -euo pipefail\nexport LC_ALL=C\n${script}`;
}

export class SshTransport implements Transport {
  /** SSH round trips (exec calls) made by all transports: the engine benchmark prints it. */
  static roundTrips = 0;

  private reconnecting: Promise<void> | undefined;
  /**
   * How commands reach root. 'password': sudo must ask, every time (-k), so the password line on
   * stdin is always consumed by sudo and never reaches the command; 'nopasswd': the password is
   * never sent (sudo would not read it, the command would).
   */
  private sudoMode: 'root' | 'nopasswd' | 'password' = 'root';

  private constructor(
    private ssh: NodeSSH,
    readonly label: string,
    private readonly user: string,
    private readonly sudoPassword: string | undefined,
    private readonly log: (text: string) => void,
    /** Opens a new connection to the same host, accepting only the key it presented the first time. */
    private readonly reopen: () => Promise<NodeSSH>,
  ) {}

  static async connect(o: ConnectOptions): Promise<SshTransport> {
    const cfg = sshConfigFor(o.host);
    const host = cfg.hostName ?? o.host;
    const port = o.port !== 22 ? o.port : (cfg.port ?? 22);
    const user = o.user !== 'root' ? o.user : (cfg.user ?? o.user);
    const identity = o.identityFile ? expandTilde(o.identityFile) : cfg.identityFiles.find((f) => existsSync(f));
    const agent = cfg.identityAgent ?? process.env.SSH_AUTH_SOCK;
    const defaultKey = ['id_ed25519', 'id_ecdsa', 'id_rsa']
      .map((f) => join(homedir(), '.ssh', f))
      .find((f) => existsSync(f));
    const keyFile = identity ?? (agent ? undefined : defaultKey);

    let verdict: HostKeyVerdict | undefined;
    let presented: Buffer | undefined;
    const ssh = new NodeSSH();
    const algorithms = preferredHostKeyAlgorithms(o.knownHostsFiles, host, port);
    let privateKey: string | undefined;
    try {
      privateKey = keyFile ? readFileSync(keyFile, 'utf8') : undefined;
    } catch (e) {
      throw new InvalidInputError(
        `${o.identityFile ? 'ssh.identityFile: ' : ''}cannot read the SSH ` +
          `key ${keyFile}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
        ['give the path of a private key (ssh.identityFile), or leave it out to use the SSH agent'],
      );
    }
    const base = {
      host,
      port,
      username: user,
      privateKey,
      agent: keyFile ? undefined : agent,
      readyTimeout: o.readyTimeoutMs ?? 20_000,
      keepaliveInterval: 5_000,
      keepaliveCountMax: 3,
      ...(algorithms ? { algorithms: { serverHostKey: algorithms as never } } : {}),
    };
    try {
      await ssh.connect({
        ...base,
        hostVerifier: ((key: Buffer, verify: (ok: boolean) => void) => {
          presented = key;
          verdict = verifyHostKey(o.knownHostsFiles, host, port, key);
          if (verdict.status === 'known') return verify(true);
          if (verdict.status !== 'unknown') return verify(false);
          o.onUnknownKey(host, fingerprint(key), keyTypeName(key)).then(
            (ok) => {
              if (ok && o.acceptNewInto) appendKnownHost(o.acceptNewInto, host, port, key);
              if (ok)
                verdict = {
                  status: 'known',
                  entry: {
                    type: keyTypeName(key),
                    blob: key.toString('base64'),
                    file: o.acceptNewInto ?? '',
                    line: 0,
                    revoked: false,
                  },
                };
              verify(ok);
            },
            () => verify(false),
          );
        }) as never,
      });
    } catch (e) {
      if (verdict?.status === 'changed' && presented) {
        throw new HostKeyError(`HOST KEY CHANGED for ${host}:${port}: refusing to connect`, [
          `the host presented ${keyTypeName(presented)} ${fingerprint(presented)}`,
          ...verdict.expected.map((k) => `but ${k.file}:${k.line} records a different ${k.type} key`),
          'this can be a reinstalled host or someone intercepting the connection; if the change is expected,',
          `remove the old line (ssh-keygen -R ${host} -f <file>) and run again`,
        ]);
      }
      if (verdict?.status === 'revoked')
        throw new HostKeyError(`the host key of ${host} is marked @revoked in ${verdict.entry.file}`);
      if (verdict?.status === 'unknown' && presented) {
        throw new HostKeyError(
          `unknown host key for ${host}:${port}: ${keyTypeName(presented)} ${fingerprint(presented)}`,
          [
            'check the fingerprint on the host (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub), ' +
              'then run again with --accept-new-host-keys',
            `or add it to ${o.acceptNewInto ?? '~/.ssh/known_hosts'}`,
          ],
        );
      }
      const message = (e as Error).message;
      // The hint follows the failure: a host that does not answer is not a key problem.
      const unreachable = UNREACHABLE.test(message);
      throw new ConnectError(
        `cannot connect to ${user}@${host}:${port}: ${message}`,
        unreachable
          ? [
              `${host} does not answer on port ${port}: ` +
                'is it up, is the address right, does a firewall or a route stand between?',
            ]
          : [
              keyFile
                ? `key: ${keyFile}`
                : agent
                  ? 'key: from the SSH agent'
                  : 'no key file and no SSH agent (set ssh.identityFile)',
            ],
        unreachable,
      );
    }
    guardConnection(ssh);
    const reopen = async (): Promise<NodeSSH> => {
      const again = new NodeSSH();
      await again.connect({
        ...base,
        hostVerifier: ((key: Buffer) => presented !== undefined && key.equals(presented)) as never,
      });
      guardConnection(again);
      return again;
    };
    const t = new SshTransport(ssh, host, user, o.sudoPassword, o.log, reopen);
    if (user !== 'root') await t.checkSudo();
    return t;
  }

  /**
   * The live connection; one that dropped (a node that was down or rebooted, keepalive timeout)
   * is opened again before the next command. Commands are never re-sent: one that was running
   * when the connection dropped fails with ConnectError.
   */
  private async connection(): Promise<NodeSSH> {
    if (this.ssh.isConnected()) return this.ssh;
    this.reconnecting ??= (async () => {
      this.ssh.dispose();
      this.ssh = await this.reopen();
      this.log(`# reconnected to ${this.label}\n`);
    })().finally(() => {
      this.reconnecting = undefined;
    });
    try {
      await this.reconnecting;
    } catch (e) {
      throw new ConnectError(
        `lost the connection to ${this.label} and could not connect again: ${(e as Error).message}`,
      );
    }
    return this.ssh;
  }

  /**
   * sudo reads a password from stdin only when it prompts: not under NOPASSWD, and not while its
   * credential is cached (without a tty the cache is keyed on the parent, one sshd for every
   * channel). So decide once: passwordless works -> never send the password; otherwise every
   * command runs `sudo -k -S`, which always prompts and so always consumes exactly that line.
   */
  private async checkSudo(): Promise<void> {
    const nopasswd = await this.ssh.execCommand(`sudo -n -- bash -c true`);
    if (nopasswd.code === 0) {
      this.sudoMode = 'nopasswd';
      return;
    }
    if (this.sudoPassword === undefined) {
      throw new SudoError(`${this.user}@${this.label}: sudo does not work without a password prompt`, [
        nopasswd.stderr.trim(),
        'allow passwordless sudo for this user (NOPASSWD), ' +
          'or set ssh.sudoPasswordEnv in the runbook and export that variable',
      ]);
    }
    const r = await this.ssh.execCommand(`${SUDO_WITH_PASSWORD} -- bash -c true`, { stdin: `${this.sudoPassword}\n` });
    if (r.code !== 0) {
      throw new SudoError(`${this.user}@${this.label}: sudo refused the password from ssh.sudoPasswordEnv`, [
        r.stderr.trim(),
        'check the password, or allow passwordless sudo for this user (NOPASSWD)',
      ]);
    }
    this.sudoMode = 'password';
  }

  private wrap(script: string): string {
    const bash = `bash -c ${shq(wrapScript(script))}`;
    if (this.sudoMode === 'root') return bash;
    return this.sudoMode === 'password' ? `${SUDO_WITH_PASSWORD} -- ${bash}` : `sudo -n -- ${bash}`;
  }

  async exec(script: string, opts: ExecOptions = {}): Promise<ExecResult> {
    SshTransport.roundTrips++;
    if (!opts.quiet) this.log(`$ ${script}\n`);
    if (remoteTrace.level >= (opts.quiet ? 2 : 1))
      for (const l of script.split('\n')) remoteTrace.sink(`[${this.label}] $ ${l}`);
    let stdin = opts.stdin;
    if (this.sudoMode === 'password') stdin = `${this.sudoPassword}\n${stdin ?? ''}`;
    let partial = '';
    const onChunk = (chunk: Buffer) => {
      const text = chunk.toString();
      if (!opts.quiet) this.log(text);
      if (remoteTrace.level >= 2)
        for (const l of text.split('\n').filter(Boolean)) remoteTrace.sink(`[${this.label}]   ${l}`);
      partial += text;
      const lines = partial.split('\n');
      partial = lines.pop() ?? '';
      const last = lines.filter((l) => l.trim() !== '').pop();
      if (last && opts.onLine) opts.onLine(last);
    };
    let r: Awaited<ReturnType<NodeSSH['execCommand']>>;
    try {
      const onStdout = (chunk: Buffer) => {
        opts.onStdout?.(chunk.toString());
        onChunk(chunk);
      };
      const run = async () =>
        (await this.connection()).execCommand(this.wrap(script), { stdin, onStdout, onStderr: onChunk, noTrim: true });
      // The connection can drop between the check and the call; then the command never started.
      r = await run().catch((e: Error) => (notConnected(e) ? run() : Promise.reject(e)));
    } catch (e) {
      if (e instanceof ConnectError) throw e;
      throw new ConnectError(`lost the connection to ${this.label}: ${(e as Error).message}`);
    }
    if (r.code === null)
      throw new ConnectError(
        `lost the connection to ${this.label} (the command was ended by ${r.signal ?? 'a closed channel'})`,
      );
    return { code: r.code, stdout: r.stdout, stderr: r.stderr };
  }

  private async sftpPut(data: Buffer, remote: string): Promise<void> {
    const sftp = await (await this.connection()).requestSFTP();
    try {
      await new Promise<void>((resolve, reject) =>
        sftp.writeFile(remote, data, { mode: 0o600 }, (err: Error | null | undefined) =>
          err ? reject(err) : resolve(),
        ),
      );
    } finally {
      sftp.end();
    }
  }

  async writeFile(path: string, content: string | Buffer, opts: WriteFileOptions): Promise<WriteResult> {
    const data = Buffer.isBuffer(content) ? content : Buffer.from(content);
    // Upload as the SSH user into its own temp file, then move into place as root.
    const tmp = `/tmp/.ha-setup-${randomBytes(6).toString('hex')}`;
    await this.sftpPut(data, tmp);
    return this.installUploaded(tmp, path, sha256(data), opts);
  }

  async upload(localPath: string, remotePath: string, opts: WriteFileOptions): Promise<WriteResult> {
    const data = readFileSync(localPath);
    const tmp = `/tmp/.ha-setup-${randomBytes(6).toString('hex')}`;
    await this.sftpPut(data, tmp);
    return this.installUploaded(tmp, remotePath, sha256(data), opts);
  }

  private async installUploaded(tmp: string, path: string, sum: string, opts: WriteFileOptions): Promise<WriteResult> {
    const r = await this.exec(installScript(tmp, path, sum, opts), { quiet: true });
    this.log(`# wrote ${path} (mode ${opts.mode.toString(8)})\n`);
    if (r.code === 3) throw new RunFailedError(`upload to ${this.label}:${path} arrived corrupted (sha256 mismatch)`);
    if (r.code !== 0) throw new CommandFailedError(`install ${path}`, r.code, r.stderr + r.stdout);
    const out = r.stdout.trim();
    if (out === 'unchanged') return { changed: false };
    return { changed: true, backup: out.startsWith('backup ') ? out.slice(7) : undefined };
  }

  async close(): Promise<void> {
    this.ssh.dispose();
  }
}

/**
 * node-ssh stops listening for errors once connected: a keepalive timeout (a node that went
 * down) would be an uncaught exception. The connection closes after the error; the next
 * command connects again.
 */
function guardConnection(ssh: NodeSSH): void {
  ssh.connection?.on('error', () => {});
}

function notConnected(e: unknown): boolean {
  return e instanceof Error && /Not connected to server/.test(e.message);
}

function keyTypeName(key: Buffer): string {
  const len = key.readUInt32BE(0);
  return key.subarray(4, 4 + len).toString('ascii');
}

export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * Verify the upload's checksum, keep the old file as a timestamped backup when it changes (unless
 * `backup: false`), then move the new one into place atomically (same directory, rename). The new
 * file and the backup are created by mktemp (O_EXCL): a planted symlink is never followed.
 */
export function installScript(tmp: string, path: string, sum: string, o: WriteFileOptions): string {
  const owner = `${o.owner ?? 'root'}:${o.group ?? o.owner ?? 'root'}`;
  return [
    `tmp=${shq(tmp)}; dst=${shq(path)}`,
    `trap 'rm -f "$tmp"' EXIT`,
    `[ "$(sha256sum "$tmp" | cut -d' ' -f1)" = ${shq(sum)} ] || exit 3`,
    `mkdir -p "$(dirname "$dst")"`,
    `if [ -f "$dst" ] && [ ! -L "$dst" ] && cmp -s "$tmp" "$dst"; ` +
      `then chmod ${shq(o.mode.toString(8))} "$dst"; chown ${shq(owner)} "$dst"; echo unchanged; exit 0; fi`,
    `backup=""`,
    o.backup === false
      ? ':'
      : `if [ -f "$dst" ] && [ ! -L "$dst" ]; then backup=$(mktemp --suffix=.bak "$dst.ha-setup-$(date ` +
        `+%Y%m%d%H%M%S).XXXXXX"); cp -p "$dst" "$backup"; fi`,
    `next=$(mktemp "$dst.ha-setup-new.XXXXXX")`,
    `chmod ${shq(o.mode.toString(8))} "$next"; chown ${shq(owner)} "$next"; cat "$tmp" > "$next"`,
    `mv -f -T "$next" "$dst"`,
    o.backup === false ? ':' : pruneBackups,
    `if [ -n "$backup" ]; then echo "backup $backup"; else echo created; fi`,
  ].join('\n');
}

/** How many timestamped .bak copies of a file stay: a file every apply changes must not fill the disk. */
export const BACKUPS_KEPT = 5;

/**
 * Shell (bash, after a backup was made): removes the oldest copies beyond BACKUPS_KEPT. The names sort
 * by their timestamp; only regular files go (never what a symlink points to), never the new backup.
 */
const pruneBackups =
  `if [ -n "$backup" ]; then old=("$dst".ha-setup-[0-9]*.bak); ` +
  `for ((i = 0; i < \${#old[@]} - ${BACKUPS_KEPT}; i++)); do ` +
  `if [ -f "\${old[i]}" ] && [ ! -L "\${old[i]}" ] && [ "\${old[i]}" != "$backup" ]; then rm -f -- "\${old[i]}"; fi; ` +
  `done; fi`;
