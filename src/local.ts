import { spawn } from 'node:child_process';
import { RunFailedError } from './errors.js';

export interface LocalResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface LocalOptions {
  input?: string | Buffer;
  /** Resolve with the result instead of throwing on a non-zero exit. */
  allowFailure?: boolean;
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/** Run a program on the control machine with an argument vector (no shell involved). */
export function runLocal(cmd: string, args: string[], opts: LocalOptions = {}): Promise<LocalResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      env: opts.env ?? process.env,
      cwd: opts.cwd,
    });
    let stdout = '';
    let stderr = '';
    let timer: NodeJS.Timeout | undefined;
    if (opts.timeoutMs) timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    child.stdout!.on('data', (d) => {
      stdout += d;
    });
    child.stderr!.on('data', (d) => {
      stderr += d;
    });
    child.on('error', (e) => {
      if (timer) clearTimeout(timer);
      if (opts.allowFailure) resolve({ code: 127, stdout, stderr: stderr + String(e) });
      else reject(new RunFailedError(`could not run ${cmd}: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      const result = { code: code ?? (signal ? 128 : 1), stdout, stderr };
      if (result.code !== 0 && !opts.allowFailure) {
        reject(
          new RunFailedError(
            `${cmd} ${args.join(' ')} failed with exit code ${result.code}`,
            tail(stderr || stdout, 20),
          ),
        );
      } else resolve(result);
    });
    if (child.stdin) {
      child.stdin.on('error', () => {}); // the program may exit without reading its input
      child.stdin.end(opts.input);
    }
  });
}

export function tail(text: string, lines: number): string[] {
  return text
    .trimEnd()
    .split('\n')
    .slice(-lines)
    .filter((l) => l !== '');
}

export async function commandExists(cmd: string): Promise<boolean> {
  const r = await runLocal('sh', ['-c', 'command -v "$1"', 'sh', cmd], { allowFailure: true });
  return r.code === 0;
}
