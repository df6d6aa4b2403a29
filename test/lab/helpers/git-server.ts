import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { runLocal } from '../../../src/local.js';

/** The offline git bundles (full history) that sit beside the checkout: ../shared/git. */
export const sharedGitDir =
  process.env.HA_SETUP_SHARED_GIT ?? resolve(import.meta.dirname, '..', '..', '..', '..', 'shared', 'git');

export interface GitServer {
  /** Base URL: `<base><owner>/<repo>.git`, the layout of github.com. */
  base: string;
  stop(): Promise<void>;
}

/**
 * A real git server (git daemon) on `address`, serving a bare mirror of every bundle as
 * `<owner>/<repo>.git` (bundle names are `owner--repo.bundle`), so apply clones over the network.
 */
export async function startGitServer(address: string, port = 9418): Promise<GitServer> {
  if (!existsSync(sharedGitDir)) throw new Error(`git bundles not found at ${sharedGitDir} (set HA_SETUP_SHARED_GIT)`);
  const root = mkdtempSync(join(tmpdir(), 'ha-setup-gitsrv-'));
  for (const f of readdirSync(sharedGitDir).filter((x) => x.endsWith('.bundle'))) {
    const [owner, repo] = f.replace(/\.bundle$/, '').split('--');
    mkdirSync(join(root, owner), { recursive: true });
    await runLocal('git', [
      'clone',
      '--quiet',
      '--mirror',
      '--',
      join(sharedGitDir, f),
      join(root, owner, `${repo}.git`),
    ]);
  }
  const daemon: ChildProcess = spawn(
    'git',
    ['daemon', '--reuseaddr', '--export-all', `--base-path=${root}`, `--listen=${address}`, `--port=${port}`, root],
    { stdio: 'ignore' },
  );
  const deadline = Date.now() + 10_000;
  for (;;) {
    const up = await new Promise<boolean>((res) => {
      const s = connect({ host: address, port }, () => {
        s.destroy();
        res(true);
      });
      s.on('error', () => res(false));
    });
    if (up) break;
    if (Date.now() > deadline || daemon.exitCode !== null)
      throw new Error(`git daemon did not start on ${address}:${port}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    base: `git://${address}${port === 9418 ? '' : `:${port}`}/`,
    async stop() {
      daemon.kill('SIGTERM');
      rmSync(root, { recursive: true, force: true });
    },
  };
}
