import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { RunFailedError } from '../errors.js';

/** What a reply to the gray commands can reasonably be (200,000 rules of 128 bytes fit). */
const MAX_REPLY_BYTES = 32 * 1024 * 1024;

/** A Redis reply as RESP2 gives it; errors are values here, so a caller can name the command. */
export type RedisReply = string | number | null | RedisReply[] | { error: string };

/** RESP2 encoding of one command (arguments as bulk strings: binary safe, nothing to escape). */
export function encodeCommand(args: (string | number)[]): string {
  return `*${args.length}\r\n${args
    .map((a) => {
      const s = String(a);
      return `$${Buffer.byteLength(s)}\r\n${s}\r\n`;
    })
    .join('')}`;
}

/**
 * Parses one reply from the start of `buf`: the reply and the bytes it used, or undefined when
 * `buf` does not hold a whole reply yet.
 */
export function parseReply(buf: Buffer, at = 0): { reply: RedisReply; end: number } | undefined {
  const eol = buf.indexOf('\r\n', at);
  if (eol < 0) return undefined;
  const kind = String.fromCharCode(buf[at]);
  const line = buf.toString('utf8', at + 1, eol);
  switch (kind) {
    case '+':
      return { reply: line, end: eol + 2 };
    case '-':
      return { reply: { error: line }, end: eol + 2 };
    case ':':
      return { reply: Number(line), end: eol + 2 };
    case '$': {
      const n = Number(line);
      if (n < 0) return { reply: null, end: eol + 2 };
      if (!(n <= MAX_REPLY_BYTES))
        throw new RunFailedError(`a reply of ${line} bytes is over the limit of ${MAX_REPLY_BYTES}`);
      if (buf.length < eol + 2 + n + 2) return undefined;
      return { reply: buf.toString('utf8', eol + 2, eol + 2 + n), end: eol + 2 + n + 2 };
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return { reply: null, end: eol + 2 };
      const list: RedisReply[] = [];
      let pos = eol + 2;
      for (let i = 0; i < n; i++) {
        const r = parseReply(buf, pos);
        if (!r) return undefined;
        list.push(r.reply);
        pos = r.end;
      }
      return { reply: list, end: pos };
    }
    default:
      throw new RunFailedError(
        `not a Redis reply: ${JSON.stringify(buf.toString('utf8', at, Math.min(buf.length, at + 40)))}`,
      );
  }
}

export interface RedisTarget {
  host: string;
  port: number;
  db: number;
  password?: string;
  timeoutMs?: number;
  /** Redis over TLS: verified against `ca` (PEM; else Node's CAs) for `servername`. */
  tls?: { ca?: string; servername: string };
}

/**
 * Runs the commands as one pipeline on a new connection (AUTH and SELECT first when needed) and
 * returns their replies. A Redis error reply fails the call naming the command (never its arguments:
 * AUTH's is the password).
 */
export async function redisPipeline(t: RedisTarget, commands: (string | number)[][]): Promise<RedisReply[]> {
  const setup: (string | number)[][] = [];
  if (t.password) setup.push(['AUTH', t.password]);
  if (t.db !== 0) setup.push(['SELECT', t.db]);
  const all = [...setup, ...commands];
  const where = `Redis at ${t.host}:${t.port}`;
  const replies = await new Promise<RedisReply[]>((resolve, reject) => {
    const send = () => sock.write(all.map(encodeCommand).join(''));
    // Over TLS the password is sent only once the server proved it holds a certificate for servername.
    const sock: Socket = t.tls
      ? tlsConnect({ host: t.host, port: t.port, servername: t.tls.servername, ca: t.tls.ca }, send)
      : connect({ host: t.host, port: t.port }, send);
    let buf = Buffer.alloc(0);
    const got: RedisReply[] = [];
    const fail = (msg: string) => {
      sock.destroy();
      reject(new RunFailedError(`${where}: ${msg}`));
    };
    sock.setTimeout(t.timeoutMs ?? 5000, () => fail('no answer in time'));
    sock.on('error', (e: NodeJS.ErrnoException) =>
      fail(
        `cannot talk to it (${t.tls ? 'TLS: ' : ''}${e.code ?? e.message}${t.tls && e.code ? `: ${e.message}` : ''})`,
      ),
    );
    sock.on('close', () => {
      if (got.length < all.length) fail('closed the connection');
    });
    sock.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      // Not a Redis (an HTTP server, a wrong port) or an answer no rule set needs: stop reading.
      if (buf.length > MAX_REPLY_BYTES)
        return fail(`answered more than ${MAX_REPLY_BYTES} bytes; is this the Redis of site.gray?`);
      let pos = 0;
      try {
        for (;;) {
          const r = parseReply(buf, pos);
          if (!r) break;
          got.push(r.reply);
          pos = r.end;
        }
      } catch (e) {
        return fail(`${(e as Error).message} (is this the Redis of site.gray?)`);
      }
      buf = buf.subarray(pos);
      if (got.length >= all.length) {
        sock.end();
        resolve(got);
      }
    });
  });
  replies.forEach((r, i) => {
    if (r && typeof r === 'object' && !Array.isArray(r)) {
      throw new RunFailedError(
        `${where} refused ${String(all[i][0])}: ${r.error}`,
        all[i][0] === 'AUTH' || /NOAUTH/.test(r.error) ? ['check the password (site.gray.redis.passwordEnv)'] : [],
      );
    }
  });
  return replies.slice(setup.length);
}
