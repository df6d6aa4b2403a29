import { InvalidInputError } from '../errors.js';
import type { Runbook } from '../runbook/schema.js';
import { redisAddress } from '../runbook/schema.js';
import { redisPipeline, type RedisReply, type RedisTarget } from './redis.js';

export const GRAY_ACTIONS = ['status', 'add-ip', 'remove-ip', 'add-value', 'remove-value', 'percent', 'clear'] as const;
export type GrayAction = (typeof GRAY_ACTIONS)[number];

type Gray = NonNullable<Runbook['site']['gray']>;

/** The Redis keys of one gray release (the nodes' Lua reads the same three). */
export function grayKeys(key: string) {
  return { ips: `${key}:ips`, values: `${key}:values`, percent: `${key}:percent` };
}

/** `ca`: the PEM of site.gray.redis.tls.caFile, read beside the runbook (undefined: Node's CAs). */
export function grayTarget(
  g: Gray,
  override: string | undefined,
  password: string | undefined,
  ca?: string,
): RedisTarget {
  const address = override ?? g.redis.address;
  const bad = redisAddress.safeParse(address);
  if (!bad.success) throw new InvalidInputError(`--redis ${address}: ${bad.error.issues[0].message}`);
  const [host, port] = address.split(':');
  const tls = g.redis.tls ? { servername: g.redis.tls.serverName ?? host, ca } : undefined;
  return { host, port: Number(port ?? 6379), db: g.redis.db, password, tls };
}

/** Validates an IPv4 address or CIDR as the nodes' Lua will read it (no leading zeros, /0-/32). */
export function grayIpProblem(v: string): string | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:\/(\d{1,2}))?$/.exec(v);
  if (!m) return `"${v}" is not an IPv4 address or CIDR (e.g. 10.1.2.3 or 10.1.0.0/16)`;
  if (m.slice(1, 5).some((o) => Number(o) > 255 || (o.length > 1 && o.startsWith('0'))))
    return `"${v}" has an octet above 255 or with a leading zero`;
  if (m[5] !== undefined && (Number(m[5]) > 32 || (m[5].length > 1 && m[5].startsWith('0'))))
    return `"${v}" has a prefix length outside 0..32`;
  return undefined;
}

/** Header and cookie values the nodes accept (gray_rules.lua's VALUE pattern). */
export function grayValueProblem(v: string): string | undefined {
  return /^[A-Za-z0-9._~:@+=-]{1,128}$/.test(v)
    ? undefined
    : `"${v}" must be 1-128 letters, digits and . _ ~ : @ + = -`;
}

/** The Redis commands for one action (none for status); bad values are input errors naming the action. */
export function grayCommands(
  keys: ReturnType<typeof grayKeys>,
  action: GrayAction,
  value: string | undefined,
): (string | number)[][] {
  const need = (what: string) => {
    if (value === undefined || value === '') throw new InvalidInputError(`${action} needs ${what}`);
    return value;
  };
  const check = (problem: string | undefined) => {
    if (problem) throw new InvalidInputError(`${action}: ${problem}`);
  };
  if ((action === 'status' || action === 'clear') && value !== undefined)
    throw new InvalidInputError(`${action} takes no value (got "${value}")`);
  switch (action) {
    case 'status':
      return [];
    case 'add-ip':
      check(grayIpProblem(need('an IPv4 address or CIDR')));
      return [['SADD', keys.ips, value!]];
    case 'remove-ip':
      check(grayIpProblem(need('an IPv4 address or CIDR')));
      return [['SREM', keys.ips, value!]];
    case 'add-value':
      check(grayValueProblem(need('a header or cookie value')));
      return [['SADD', keys.values, value!]];
    case 'remove-value':
      check(grayValueProblem(need('a header or cookie value')));
      return [['SREM', keys.values, value!]];
    case 'percent': {
      const v = need('a whole number from 0 to 100');
      if (!/^\d{1,3}$/.test(v) || Number(v) > 100)
        throw new InvalidInputError(`percent: "${v}" is not a whole number from 0 to 100`);
      return [['SET', keys.percent, String(Number(v))]];
    }
    case 'clear':
      return [['DEL', keys.ips, keys.values, keys.percent]];
  }
}

export async function readGrayRules(
  t: RedisTarget,
  keys: ReturnType<typeof grayKeys>,
): Promise<{ ips: string[]; values: string[]; percent: number }> {
  const [ips, values, percent] = await redisPipeline(t, [
    ['SMEMBERS', keys.ips],
    ['SMEMBERS', keys.values],
    ['GET', keys.percent],
  ]);
  const list = (r: RedisReply) => (Array.isArray(r) ? r.map(String).sort() : []);
  return { ips: list(ips), values: list(values), percent: typeof percent === 'string' ? Number(percent) : 0 };
}
