// IPv4 helpers for validation and lab addressing. Pure functions only.

const OCTET = '(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const IPV4 = new RegExp(`^${OCTET}(\\.${OCTET}){3}$`);
// RFC 1123 host name: labels of letters, digits and dashes, not starting or ending with a dash.
const DNS_NAME =
  /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

export function isIPv4(s: string): boolean {
  return IPV4.test(s);
}

export function isDnsName(s: string): boolean {
  // An all-numeric dotted name is a mistyped address, not a host name.
  return DNS_NAME.test(s) && !/^[\d.]+$/.test(s);
}

export function ipToInt(ip: string): number {
  return ip.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
}

export function intToIp(n: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');
}

export interface Cidr {
  address: string;
  prefix: number;
}

export function parseCidr(s: string): Cidr | undefined {
  const m = /^([^/]+)\/(\d{1,2})$/.exec(s);
  if (!m || !isIPv4(m[1])) return undefined;
  const prefix = Number(m[2]);
  if (prefix < 1 || prefix > 32) return undefined;
  return { address: m[1], prefix };
}

export function networkOf(c: Cidr): number {
  const size = 2 ** (32 - c.prefix);
  return Math.floor(ipToInt(c.address) / size) * size;
}

export function inSubnet(ip: string, c: Cidr): boolean {
  const size = 2 ** (32 - c.prefix);
  return Math.floor(ipToInt(ip) / size) * size === networkOf(c);
}

export function broadcastOf(c: Cidr): number {
  return networkOf(c) + 2 ** (32 - c.prefix) - 1;
}

/** An IPv4 address on a named interface, as `ip -4 -o addr show` prints it. */
export interface InterfaceAddress {
  iface: string;
  cidr: string;
}

/** Parses `ip -4 -o addr show` ("2: eth0    inet 10.0.0.11/24 brd ... scope global eth0"); skips loopback. Pure. */
export function parseIpAddrShow(text: string): InterfaceAddress[] {
  const out: InterfaceAddress[] = [];
  for (const line of text.split('\n')) {
    const m = /^\d+:\s+([^\s@:]+)(?:@\S+)?\s+inet\s+(\d+\.\d+\.\d+\.\d+\/\d+)\b/.exec(line.trim());
    if (m && m[1] !== 'lo' && parseCidr(m[2])) out.push({ iface: m[1], cidr: m[2] });
  }
  return out;
}

/** The interface whose own subnet holds the VIP (the one keepalived must put it on), if exactly one does. Pure. */
export function interfaceForVip(addrs: InterfaceAddress[], vip: string): string | undefined {
  const v = parseCidr(vip);
  if (!v) return undefined;
  const hits = [...new Set(addrs.filter((x) => inSubnet(v.address, parseCidr(x.cidr)!)).map((x) => x.iface))];
  return hits.length === 1 ? hits[0] : undefined;
}

/** `a.b.c.d/n` with n from 0 to 32 (a network for allow-lists, /0 included). */
export function parseNetwork(s: string): Cidr | undefined {
  const m = /^([^/]+)\/(\d{1,2})$/.exec(s);
  if (!m || !isIPv4(m[1]) || Number(m[2]) > 32 || (m[2].length > 1 && m[2].startsWith('0'))) return undefined;
  return { address: m[1], prefix: Number(m[2]) };
}

export function networkContains(c: Cidr, ip: string): boolean {
  const size = 2 ** (32 - c.prefix);
  return Math.floor(ipToInt(ip) / size) === Math.floor(ipToInt(c.address) / size);
}

/**
 * Where a proxied request must never go unless allowed explicitly (site.peerNetworks): this host
 * ("this network", loopback), link-local (cloud metadata), multicast, reserved and broadcast.
 * The same table as src/lua/ha_gateway/ipv4.lua, which applies it to peers from Consul.
 */
export const SPECIAL_PEER_RANGES: ReadonlyArray<readonly [string, string]> = [
  ['0.0.0.0/8', 'in 0.0.0.0/8 (this network)'],
  ['127.0.0.0/8', 'a loopback address'],
  ['169.254.0.0/16', 'link-local (169.254.0.0/16: cloud metadata lives here)'],
  ['224.0.0.0/4', 'a multicast address'],
  ['240.0.0.0/4', 'reserved or broadcast (240.0.0.0/4)'],
];

/** Why an IPv4 peer address is refused, or undefined. With `allowed` networks, it must be in one of them. */
export function peerAddressProblem(ip: string, allowed: string[]): string | undefined {
  const nets = allowed.map(parseNetwork).filter((c): c is Cidr => c !== undefined);
  if (nets.length > 0)
    return nets.some((c) => networkContains(c, ip))
      ? undefined
      : `is outside site.peerNetworks (${allowed.join(', ')})`;
  const hit = SPECIAL_PEER_RANGES.find(([net]) => networkContains(parseNetwork(net)!, ip));
  return hit ? `is ${hit[1]}; list its network in site.peerNetworks if a peer there is intended` : undefined;
}
