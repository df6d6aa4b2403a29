import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { validateRunbook } from '../../src/runbook/validate.js';

const base = () => parse(readFileSync(new URL('../fixtures/valid.yaml', import.meta.url), 'utf8'));

type Mutation = (rb: any) => void;

// [description, mutation, expected field path, a fragment of the message]
const badInputs: Array<[string, Mutation, string, RegExp]> = [
  [
    'host neither IPv4 nor DNS name',
    (r) => {
      r.nodes[1].host = 'bad_host!';
    },
    'nodes[1].host',
    /not an IPv4 address or DNS name/,
  ],
  [
    'host with out-of-range octet',
    (r) => {
      r.nodes[0].host = '192.168.56.300';
    },
    'nodes[0].host',
    /not an IPv4 address or DNS name/,
  ],
  [
    'duplicate hosts',
    (r) => {
      r.nodes[1].host = r.nodes[0].host;
    },
    'nodes[1].host',
    /duplicate host/,
  ],
  [
    'fewer than 2 nodes',
    (r) => {
      r.nodes = [r.nodes[0]];
    },
    'nodes',
    /at least 2 nodes/,
  ],
  [
    'ssh port 0',
    (r) => {
      r.ssh.port = 0;
    },
    'ssh.port',
    /1 to 65535/,
  ],
  [
    'ssh port 70000',
    (r) => {
      r.ssh.port = 70000;
    },
    'ssh.port',
    /1 to 65535/,
  ],
  [
    'node ssh port out of range',
    (r) => {
      r.nodes[0].port = 65536;
    },
    'nodes[0].port',
    /1 to 65535/,
  ],
  [
    'two masters',
    (r) => {
      r.nodes[1].role = 'master';
    },
    'nodes[1].role',
    /more than one master/,
  ],
  [
    'no master with preempt',
    (r) => {
      r.nodes[0].role = 'backup';
    },
    'nodes',
    /no node has role master/,
  ],
  [
    'role not master/backup',
    (r) => {
      r.nodes[1].role = 'slave';
    },
    'nodes[1].role',
    /master or backup/,
  ],
  [
    'priority 0',
    (r) => {
      r.nodes[1].priority = 0;
    },
    'nodes[1].priority',
    /1 to 254/,
  ],
  [
    'priority 255',
    (r) => {
      r.nodes[0].priority = 255;
    },
    'nodes[0].priority',
    /1 to 254/,
  ],
  [
    'duplicate priorities',
    (r) => {
      r.nodes.push({ host: '192.168.56.103', role: 'backup', priority: 90 });
    },
    'nodes[2].priority',
    /unique/,
  ],
  [
    'master not highest',
    (r) => {
      r.nodes[1].priority = 110;
    },
    'nodes[1].priority',
    /master must have the highest priority/,
  ],
  [
    'VIP not CIDR',
    (r) => {
      r.vrrp.vip = '192.168.56.200';
    },
    'vrrp.vip',
    /CIDR/,
  ],
  [
    'VIP outside node subnet',
    (r) => {
      r.vrrp.vip = '10.1.1.1/24';
    },
    'vrrp.vip',
    /not in the subnet of nodes\[0\]/,
  ],
  [
    'VIP equal to a node address',
    (r) => {
      r.vrrp.vip = '192.168.56.102/24';
    },
    'vrrp.vip',
    /is the address of nodes\[1\]/,
  ],
  [
    'VIP is the network address',
    (r) => {
      r.vrrp.vip = '192.168.56.0/24';
    },
    'vrrp.vip',
    /network or broadcast/,
  ],
  [
    'VRID 0',
    (r) => {
      r.vrrp.virtualRouterId = 0;
    },
    'vrrp.virtualRouterId',
    /1 to 255/,
  ],
  [
    'VRID 256',
    (r) => {
      r.vrrp.virtualRouterId = 256;
    },
    'vrrp.virtualRouterId',
    /1 to 255/,
  ],
  [
    'v2 fractional advertInt',
    (r) => {
      r.vrrp.version = 2;
    },
    'vrrp.advertInt',
    /whole seconds from 1 to 255/,
  ],
  [
    'v2 advertInt 256',
    (r) => {
      r.vrrp.version = 2;
      r.vrrp.advertInt = 256;
    },
    'vrrp.advertInt',
    /whole seconds/,
  ],
  [
    'notify hook that is not an absolute path',
    (r) => {
      r.keepalived.notifyHook = 'page-oncall';
    },
    'keepalived.notifyHook',
    /is not an absolute path/,
  ],
  [
    'notify hook with shell syntax',
    (r) => {
      r.keepalived.notifyHook = '/usr/local/bin/page;reboot';
    },
    'keepalived.notifyHook',
    /./,
  ],
  [
    'witness that is not an address',
    (r) => {
      r.vrrp.witness = { address: 'gateway' };
    },
    'vrrp.witness.address',
    /"gateway" is not a unicast IPv4 address/,
  ],
  [
    'witness on loopback',
    (r) => {
      r.vrrp.witness = { address: '127.0.0.1' };
    },
    'vrrp.witness.address',
    /not a unicast IPv4 address/,
  ],
  [
    'witness is a node',
    (r) => {
      r.vrrp.witness = { address: r.nodes[1].host };
    },
    'vrrp.witness.address',
    /is the VIP or a node; the witness must be another host/,
  ],
  [
    'witness fall 0',
    (r) => {
      r.vrrp.witness = { address: '10.0.0.1', fall: 0 };
    },
    'vrrp.witness.fall',
    /./,
  ],
  [
    'static server at the cloud metadata address',
    (r) => {
      r.site = { upstreams: [{ name: 'app', servers: ['169.254.169.254:80'] }] };
    },
    'site.upstreams[0].servers[0]',
    /169\.254\.169\.254 is link-local/,
  ],
  [
    'static server on loopback without peerNetworks',
    (r) => {
      r.site = { upstreams: [{ name: 'app', servers: ['10.0.0.1:80', '127.0.0.1:8080 weight=2'] }] };
    },
    'site.upstreams[0].servers[1]',
    /loopback address; list its network in site\.peerNetworks/,
  ],
  [
    'static server outside peerNetworks',
    (r) => {
      r.site = { peerNetworks: ['10.0.0.0/8'], upstreams: [{ name: 'app', servers: ['192.168.1.5:80'] }] };
    },
    'site.upstreams[0].servers[0]',
    /outside site\.peerNetworks/,
  ],
  [
    'static server with a leading-zero octet',
    (r) => {
      r.site = { upstreams: [{ name: 'app', servers: ['10.0.0.010:80'] }] };
    },
    'site.upstreams[0].servers[0]',
    /not an IPv4 address/,
  ],
  [
    'peerNetworks entry not a network',
    (r) => {
      r.site = { peerNetworks: ['10.0.0.0/33'] };
    },
    'site.peerNetworks[0]',
    /IPv4 network/,
  ],
  [
    'Redis address with a leading-zero octet',
    (r) => {
      r.build.modules = [];
      r.site = {
        upstreams: [
          { name: 'a', servers: ['10.0.0.1:80'] },
          { name: 'b', servers: ['10.0.0.2:80'] },
        ],
        gray: { redis: { address: '127.0.0.010:6379' }, stable: 'a', canary: 'b' },
      };
    },
    'site.gray.redis.address',
    /leading zero/,
  ],
  [
    'build.prefix a system directory',
    (r) => {
      r.build.prefix = '/usr';
    },
    'build.prefix',
    /system directory/,
  ],
  [
    'build.buildDir under /etc',
    (r) => {
      r.build.buildDir = '/etc/nginx-build';
    },
    'build.buildDir',
    /under \/etc/,
  ],
  [
    'keepalived.prefix the root',
    (r) => {
      r.keepalived.prefix = '/';
    },
    'keepalived.prefix',
    /system directory/,
  ],
  [
    'keepalived log over /etc/shadow',
    (r) => {
      r.logging = { keepalivedLog: '/etc/shadow' };
    },
    'logging.keepalivedLog',
    /under \/var\/log/,
  ],
  [
    'keepalived log into syslog',
    (r) => {
      r.logging = { keepalivedLog: '/var/log/syslog' };
    },
    'logging.keepalivedLog',
    /system log/,
  ],
  [
    'configure option with a backtick',
    (r) => {
      r.build.configureArgs = ['--with-cc-opt=`id`'];
    },
    'build.configureArgs[0]',
    /backticks/,
  ],
  [
    'configure option with $(',
    (r) => {
      r.build.configureArgs = ['--with-ld-opt=$(touch /tmp/x)'];
    },
    'build.configureArgs[0]',
    /backticks, \$\(/,
  ],
  [
    'v3 advertInt 41',
    (r) => {
      r.vrrp.advertInt = 41;
    },
    'vrrp.advertInt',
    /0.01 to 40.95/,
  ],
  [
    'v3 advertInt 0.001',
    (r) => {
      r.vrrp.advertInt = 0.001;
    },
    'vrrp.advertInt',
    /0.01 to 40.95/,
  ],
  [
    'auth with version 3',
    (r) => {
      r.vrrp.auth = { passwordEnv: 'HA_VRRP_PASSWORD' };
    },
    'vrrp.auth',
    /no authentication/,
  ],
  [
    'VRRP version 4',
    (r) => {
      r.vrrp.version = 4;
    },
    'vrrp.version',
    /2 or 3/,
  ],
  [
    'literal password in auth',
    (r) => {
      r.vrrp.version = 2;
      r.vrrp.advertInt = 1;
      r.vrrp.auth = { password: 'hunter22' };
    },
    'vrrp.auth.password',
    /literal password/,
  ],
  [
    'literal sudo password in ssh',
    (r) => {
      r.ssh.sudoPassword = 'hunter22';
    },
    'ssh.sudoPassword',
    /literal password/,
  ],
  [
    'interface empty',
    (r) => {
      r.vrrp.interface = '';
    },
    'vrrp.interface',
    /empty/,
  ],
  [
    'interface too long',
    (r) => {
      r.vrrp.interface = 'abcdefghijklmnop';
    },
    'vrrp.interface',
    /at most 15/,
  ],
  [
    'interface with slash',
    (r) => {
      r.vrrp.interface = 'eth0/1';
    },
    'vrrp.interface',
    /not allowed/,
  ],
  [
    'interface with space',
    (r) => {
      r.nodes[0].interface = 'eth 0';
    },
    'nodes[0].interface',
    /not allowed/,
  ],
  [
    'interface with shell metachar',
    (r) => {
      r.vrrp.interface = 'eth0;reboot';
    },
    'vrrp.interface',
    /not allowed/,
  ],
  [
    'prefix not absolute',
    (r) => {
      r.build.prefix = 'usr/local/openresty';
    },
    'build.prefix',
    /absolute/,
  ],
  [
    'prefix with whitespace',
    (r) => {
      r.build.prefix = '/usr/local/open resty';
    },
    'build.prefix',
    /whitespace/,
  ],
  [
    'prefix with ..',
    (r) => {
      r.keepalived.prefix = '/usr/local/../keepalived';
    },
    'keepalived.prefix',
    /'\.\.'/,
  ],
  [
    'prefix with metachar',
    (r) => {
      r.keepalived.prefix = '/usr/local/$(id)';
    },
    'keepalived.prefix',
    /metacharacters/,
  ],
  [
    'module not in catalog',
    (r) => {
      r.build.modules.push('geoip3');
    },
    'build.modules[4]',
    /unknown module "geoip3"/,
  ],
  [
    'sticky with current OpenResty',
    (r) => {
      r.build.modules = ['sticky'];
    },
    'build.modules[0]',
    /does not compile with nginx 1.27.1/,
  ],
  [
    'sticky with nginx 1.23',
    (r) => {
      r.build.flavor = 'nginx';
      r.build.version = '1.23.0';
      r.build.modules = ['sticky'];
    },
    'build.modules[0]',
    /does not compile/,
  ],
  [
    'upstream-check without core patch',
    (r) => {
      r.build.flavor = 'nginx';
      r.build.version = '1.29.2';
      r.build.modules = ['upstream-check'];
    },
    'build.modules[0]',
    /needs a core patch and the catalog has none/,
  ],
  [
    'check interval 0',
    (r) => {
      r.keepalived.check.interval = 0;
    },
    'keepalived.check.interval',
    /at least 1/,
  ],
  [
    'check fall 0',
    (r) => {
      r.keepalived.check.fall = 0;
    },
    'keepalived.check.fall',
    /at least 1/,
  ],
  [
    'check rise 0',
    (r) => {
      r.keepalived.check.rise = 0;
    },
    'keepalived.check.rise',
    /at least 1/,
  ],
  [
    'check weight 254',
    (r) => {
      r.keepalived.check.weight = 254;
    },
    'keepalived.check.weight',
    /-253 to 253/,
  ],
  [
    'check weight -300',
    (r) => {
      r.keepalived.check.weight = -300;
    },
    'keepalived.check.weight',
    /-253 to 253/,
  ],
  [
    'weight that cannot flip the election',
    (r) => {
      r.nodes[1].priority = 80;
      r.keepalived.check.weight = 2;
    },
    'keepalived.check.weight',
    /cannot flip the election.*use weight 0/,
  ],
  [
    'negative weight too small',
    (r) => {
      r.nodes[1].priority = 80;
      r.keepalived.check.weight = -10;
    },
    'keepalived.check.weight',
    /cannot flip/,
  ],
  [
    'name with uppercase',
    (r) => {
      r.name = 'Web_HA';
    },
    'name',
    /\[a-z0-9-\]\+/,
  ],
  [
    'runbook version 2',
    (r) => {
      r.version = 2;
    },
    'version',
    /must be 1/,
  ],
  [
    'maxDowntimeMs negative',
    (r) => {
      r.verify.maxDowntimeMs = -5;
    },
    'verify.maxDowntimeMs',
    /positive whole number/,
  ],
  [
    'maxDowntimeMs fractional',
    (r) => {
      r.verify.maxDowntimeMs = 1.5;
    },
    'verify.maxDowntimeMs',
    /positive whole number/,
  ],
  [
    'unknown top-level key (typo vrp)',
    (r) => {
      r.vrp = r.vrrp;
    },
    'vrp',
    /unknown key; allowed here: version, name/,
  ],
  [
    'unknown nested key',
    (r) => {
      r.vrrp.virtual_router_id = 5;
    },
    'vrrp.virtual_router_id',
    /unknown key; allowed here: vip, interface, virtualRouterId/,
  ],
  [
    'missing vrrp section',
    (r) => {
      delete r.vrrp;
    },
    'vrrp',
    /is required/,
  ],
  [
    'flavor unknown',
    (r) => {
      r.build.flavor = 'tengine';
    },
    'build.flavor',
    /openresty or nginx/,
  ],
  [
    'openresty version with 3 parts',
    (r) => {
      r.build.version = '1.27.1';
    },
    'build.version',
    /four parts/,
  ],
  [
    'jobs not auto or number',
    (r) => {
      r.build.jobs = 'many';
    },
    'build.jobs',
    /auto/,
  ],
  [
    'upstream server injecting a directive',
    (r) => {
      r.site.upstreams[0].servers = ['10.0.0.1:80; include /etc/passwd'];
    },
    'site.upstreams[0].servers[0]',
    /one nginx server line/,
  ],
  [
    'listen port 0',
    (r) => {
      r.site.listen = 0;
    },
    'site.listen',
    /1 to 65535/,
  ],
  [
    'unicast with a DNS name host',
    (r) => {
      r.vrrp.unicast = true;
      r.nodes[1].host = 'web2.example.com';
    },
    'nodes[1].host',
    /unicast VRRP needs an IPv4/,
  ],
  [
    'passwordEnv not an env name',
    (r) => {
      r.vrrp.version = 2;
      r.vrrp.advertInt = 1;
      r.vrrp.auth = { passwordEnv: 'my password' };
    },
    'vrrp.auth.passwordEnv',
    /environment variable name/,
  ],
];

describe('runbook validation', () => {
  it('accepts the reference runbook from the contract', () => {
    const r = validateRunbook(base());
    expect(r.problems).toEqual([]);
    expect(r.ok).toBe(true);
  });

  it.each(badInputs)('rejects: %s', (_name, mutate, path, message) => {
    const rb = base();
    mutate(rb);
    const r = validateRunbook(rb);
    expect(r.ok).toBe(false);
    const hit = r.problems.find((p) => p.path === path);
    expect(hit, `expected a problem at ${path}, got ${JSON.stringify(r.problems)}`).toBeDefined();
    expect(hit!.message).toMatch(message);
  });

  it('reports every problem, not just the first', () => {
    const rb = base();
    rb.nodes[1].host = 'bad_host!';
    rb.vrrp.virtualRouterId = 300;
    rb.keepalived.check.fall = 0;
    rb.vrp = {};
    const paths = validateRunbook(rb).problems.map((p) => p.path);
    expect(paths).toEqual(
      expect.arrayContaining(['nodes[1].host', 'vrrp.virtualRouterId', 'keepalived.check.fall', 'vrp']),
    );
  });

  it('allows all-backup nodes when preempt is false', () => {
    const rb = base();
    rb.nodes[0].role = 'backup';
    rb.vrrp.preempt = false;
    expect(validateRunbook(rb).problems).toEqual([]);
  });

  it('allows a weight large enough to flip the election', () => {
    const rb = base();
    rb.nodes[1].priority = 80;
    rb.keepalived.check.weight = -30;
    expect(validateRunbook(rb).problems).toEqual([]);
  });

  it('a peer on loopback is fine once site.peerNetworks lists it', () => {
    const rb = base();
    rb.site = {
      peerNetworks: ['127.0.0.0/8', '10.0.0.0/8'],
      upstreams: [{ name: 'app', servers: ['127.0.0.1:8080', '10.1.1.1:80', 'backend.internal:80'] }],
    };
    expect(validateRunbook(rb).problems).toEqual([]);
  });

  it('skips the subnet rule for DNS-name hosts', () => {
    const rb = base();
    rb.nodes[1].host = 'web2.example.com';
    expect(validateRunbook(rb).problems).toEqual([]);
  });
});
