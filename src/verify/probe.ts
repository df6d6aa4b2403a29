import http from 'node:http';
import https from 'node:https';

export interface ProbeSample {
  /** ms since the probe started, when the request was sent */
  sentAt: number;
  /** ms since the probe started, when it completed (answer or failure) */
  doneAt: number;
  ok: boolean;
  /** the node name the /ha-health answer carried */
  node?: string;
  error?: string;
}

export interface Prober {
  samples: ProbeSample[];
  stop(): Promise<ProbeSample[]>;
}

/**
 * Probing over HTTPS: a full TLS handshake per request. With `ca` the served certificate is verified
 * for `servername` (a test that must see the right certificate); without, any certificate is taken
 * (the failover test measures availability; verify checks the certificates apart).
 */
export interface ProbeTls {
  servername?: string;
  ca?: string;
}

export function probeOnce(
  host: string,
  port: number,
  timeoutMs: number,
  tls?: ProbeTls,
): Promise<{ ok: boolean; node?: string; error?: string }> {
  return new Promise((resolve) => {
    // A fresh connection each time (agent: false): a kept-alive socket would hide a moved VIP.
    const options = { host, port, path: '/ha-health', method: 'GET', agent: false, timeout: timeoutMs } as const;
    const request = tls
      ? (cb: (res: http.IncomingMessage) => void) =>
          https.request(
            { ...options, servername: tls.servername, ca: tls.ca, rejectUnauthorized: tls.ca !== undefined },
            cb,
          )
      : (cb: (res: http.IncomingMessage) => void) => http.request(options, cb);
    const req = request((res) => {
      let body = '';
      res.on('data', (d) => {
        body += d;
      });
      res.on('end', () =>
        resolve(
          res.statusCode === 200 ? { ok: true, node: body.trim() } : { ok: false, error: `HTTP ${res.statusCode}` },
        ),
      );
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve({ ok: false, error: e.message }));
    req.end();
  });
}

/** Requests http(s)://host:port/ha-health every intervalMs (overlapping, each with its own timeout). */
export function startProber(host: string, port: number, intervalMs = 50, timeoutMs = 250, tls?: ProbeTls): Prober {
  const t0 = performance.now();
  const samples: ProbeSample[] = [];
  const pending = new Set<Promise<void>>();
  let running = true;
  const tick = () => {
    if (!running) return;
    const sentAt = performance.now() - t0;
    const p = probeOnce(host, port, timeoutMs, tls).then((r) => {
      samples.push({ sentAt, doneAt: performance.now() - t0, ...r });
    });
    pending.add(p);
    void p.finally(() => pending.delete(p));
    setTimeout(tick, intervalMs);
  };
  tick();
  return {
    samples,
    async stop() {
      running = false;
      await Promise.all(pending);
      return samples.sort((a, b) => a.sentAt - b.sentAt);
    },
  };
}

export interface Outage {
  /** from the first failed request to the first good answer from the new holder (ms) */
  downtimeMs: number;
  failedRequests: number;
  totalRequests: number;
  answeredBy: string[];
}

/**
 * Client-observed downtime: first failed request (by send time) to the first successful answer
 * from `newHolder` after it (by completion time). No failure at all means zero downtime.
 */
export function measureOutage(samples: ProbeSample[], newHolder: string): Outage {
  const failed = samples.filter((s) => !s.ok);
  const answeredBy = [...new Set(samples.filter((s) => s.ok).map((s) => s.node!))];
  if (failed.length === 0) return { downtimeMs: 0, failedRequests: 0, totalRequests: samples.length, answeredBy };
  const firstFail = failed[0].sentAt;
  const recovered = samples
    .filter((s) => s.ok && s.node === newHolder && s.doneAt > firstFail)
    .sort((a, b) => a.doneAt - b.doneAt)[0];
  const lastFail = failed[failed.length - 1].doneAt;
  const downtimeMs = Math.round((recovered ? recovered.doneAt : lastFail) - firstFail);
  return { downtimeMs, failedRequests: failed.length, totalRequests: samples.length, answeredBy };
}

/** The part of a transport the remote prober needs. */
export interface ProbeHost {
  exec(
    script: string,
    opts?: { onStdout?: (text: string) => void; quiet?: boolean },
  ): Promise<{ code: number; stdout: string }>;
}

/**
 * The same probe run on a node (when the control machine cannot reach the VIP): a curl loop
 * printing `<epoch ms> OK <node>` or `<epoch ms> FAIL` per request until a stop file appears.
 */
export function startRemoteProber(
  host: ProbeHost,
  vip: string,
  port: number,
  intervalMs = 50,
  timeoutMs = 250,
  tls = false,
): Prober {
  const stopFile = `/run/ha-setup-probe-stop-${process.pid}`;
  const samples: ProbeSample[] = [];
  let t0: number | undefined;
  const url = `${tls ? 'https' : 'http'}://${vip}:${port}/ha-health`;
  // Over TLS any certificate is taken (-k): this measures availability; verify checks certificates apart.
  const script =
    `rm -f ${stopFile}
while [ ! -e ${stopFile} ]; do
  ( t=$(date +%s%3N); if body=$(curl -fsS${tls ? 'k' : ''} -m ${timeoutMs / 1000} -- ${url} 2>/dev/null); then ` +
    `echo "$t OK $body"; else echo "$t FAIL"; fi ) &
  sleep ${intervalMs / 1000}
done
wait; rm -f ${stopFile}`;
  const parse = (line: string) => {
    const m = /^(\d+) (OK (\S+)|FAIL)$/.exec(line.trim());
    if (!m) return;
    const sent = Number(m[1]);
    t0 ??= sent;
    const ok = m[3] !== undefined;
    // The node reports only when each request was sent; a failure took the full timeout.
    samples.push({
      sentAt: sent - t0,
      doneAt: sent - t0 + (ok ? 1 : timeoutMs),
      ok,
      node: m[3],
      error: ok ? undefined : 'no answer',
    });
  };
  let partial = '';
  const running = host.exec(script, {
    quiet: true,
    onStdout: (text) => {
      partial += text;
      const lines = partial.split('\n');
      partial = lines.pop() ?? '';
      lines.forEach(parse);
    },
  });
  return {
    samples,
    async stop() {
      await host.exec(`touch ${stopFile}`, { quiet: true });
      await running;
      return samples.sort((a, b) => a.sentAt - b.sentAt);
    },
  };
}
