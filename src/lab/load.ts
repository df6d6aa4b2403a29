import { execFile } from 'node:child_process';
import { runLocal } from '../local.js';

/** wrk and ping (Debian packages) on the lab host, installed once: load from outside the pair. */
export async function ensureWrk(): Promise<void> {
  if ((await runLocal('sh', ['-c', 'command -v wrk && command -v ping'], { allowFailure: true })).code === 0) return;
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = () =>
    runLocal('apt-get', ['install', '-y', '-q', 'wrk', 'iputils-ping'], { allowFailure: true, env });
  if ((await install()).code !== 0) {
    await runLocal('apt-get', ['update', '-q'], { env });
    await runLocal('apt-get', ['install', '-y', '-q', 'wrk', 'iputils-ping'], { env });
  }
}

export interface WrkResult {
  requests: number;
  /** connect + read + write + timeout socket errors */
  socketErrors: number;
  non2xx: number;
  p99Ms: number;
  raw: string;
}

/** Parses wrk --latency output. Pure. */
export function parseWrk(out: string): WrkResult {
  const num = (re: RegExp) => Number(re.exec(out)?.[1] ?? 0);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const p99 = /^\s*99%\s+([\d.]+)(us|ms|s)\s*$/m.exec(out);
  const scale = { us: 0.001, ms: 1, s: 1000 } as const;
  return {
    requests: num(/(\d+) requests in/),
    socketErrors: sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0,
    non2xx: num(/Non-2xx or 3xx responses: (\d+)/),
    p99Ms: p99 ? Number(p99[1]) * scale[p99[2] as keyof typeof scale] : Number.NaN,
    raw: out,
  };
}

/** `wrk -c<connections>` keep-alive load on url for seconds; resolves with what wrk counted. */
export function runWrk(url: string, connections: number, seconds: number): Promise<WrkResult> {
  return new Promise((resolve, reject) => {
    execFile(
      'wrk',
      ['-t2', `-c${connections}`, `-d${seconds}s`, '--timeout', '2s', '--latency', url],
      { timeout: (seconds + 30) * 1000 },
      (err, stdout, stderr) =>
        err ? reject(new Error(`wrk failed: ${err.message}\n${stderr}`)) : resolve(parseWrk(stdout)),
    );
  });
}
