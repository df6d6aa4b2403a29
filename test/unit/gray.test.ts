import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { encodeCommand, parseReply } from '../../src/gray/redis.js';
import { grayCommands, grayKeys } from '../../src/gray/rules.js';
import { validateRunbook } from '../../src/runbook/validate.js';
import { loadSecrets } from '../../src/engine/session.js';
import { InvalidInputError } from '../../src/errors.js';
import { luaModuleRunner } from '../helpers/lua-vm.js';

// gray_rules.lua in a real Lua VM; no bit operators there (CIDRs by division, in floats).
const lua_ = luaModuleRunner('gray_rules');

/** A Lua table constructor of strings. */
const list = (xs: string[]) => `{ ${xs.map((x) => JSON.stringify(x)).join(', ')} }`;

/** decide() for each case "ip|header|cookie|bucket" under the rules, as "canary:why" or "stable". */
function decisions(ips: string[], values: string[], percent: string, cases: string[]): string[] {
  const out = lua_(`
    local rules = gray_rules.compile(${list(ips)}, ${list(values)}, ${JSON.stringify(percent)})
    local out = {}
    for _, c in ipairs(${list(cases)}) do
      local ip, h, ck, b = c:match("^([^|]*)|([^|]*)|([^|]*)|([^|]*)$")
      local function opt(s) if s == "" then return nil end return s end
      local canary, why = gray_rules.decide(rules, ip, opt(h), opt(ck), tonumber(b))
      out[#out + 1] = canary and ("canary:" .. why) or "stable"
    end
    return table.concat(out, ",")`);
  return out.split(',');
}

describe('gray release rules (Lua)', () => {
  it('client addresses and CIDRs send to canary; others stay stable', () => {
    expect(
      decisions(['10.1.2.3', '192.168.0.0/16', '172.16.0.0/12'], [], '', [
        '10.1.2.3|||50',
        '10.1.2.4|||50',
        '192.168.255.1|||50',
        '192.169.0.1|||50',
        '172.31.255.255|||50',
        '172.32.0.0|||50',
      ]),
    ).toEqual([
      'canary:ip 10.1.2.3',
      'stable',
      'canary:ip 192.168.0.0/16',
      'stable',
      'canary:ip 172.16.0.0/12',
      'stable',
    ]);
  });

  it('/0 takes everyone, /32 one address; the header or cookie value matches exactly', () => {
    expect(decisions(['0.0.0.0/0'], [], '', ['203.0.113.9|||99'])).toEqual(['canary:ip 0.0.0.0/0']);
    expect(
      decisions(['10.0.0.1/32'], ['tester1'], '', [
        '10.0.0.1|||0',
        '10.0.0.2|tester1||0',
        '10.0.0.2||tester1|0',
        '10.0.0.2|tester|tester11|0',
      ]),
    ).toEqual(['canary:ip 10.0.0.1/32', 'canary:header', 'canary:cookie', 'stable']);
  });

  it('the percentage takes clients whose bucket is below it, the rest stays stable; 0 and no key take nobody', () => {
    expect(decisions([], [], '10', ['10.0.0.1|||0', '10.0.0.1|||9', '10.0.0.1|||10', '10.0.0.1|||99'])).toEqual([
      'canary:percent 10',
      'canary:percent 10',
      'stable',
      'stable',
    ]);
    expect(decisions([], [], '0', ['10.0.0.1|||0'])).toEqual(['stable']);
    expect(decisions([], [], '100', ['10.0.0.1|||99'])).toEqual(['canary:percent 100']);
  });

  it('entries edited by hand into Redis that are not valid are skipped with a reason, the rest still applies', () => {
    expect(
      lua_(
        `
      local rules, skipped = gray_rules.compile({ "10.0.0.300", "10.0.0.0/33", "010.0.0.1", "x", "10.9.0.0/16" }, ` +
          `{ "a b", "ok-1" }, "150")
      local d = gray_rules.describe(rules)
      return table.concat(d.ips, " ") .. " | " .. table.concat(d.values, " ") .. " | " .. d.percent .. " | " .. ` +
          `#skipped`,
      ),
    ).toBe('10.9.0.0/16 | ok-1 | 0 | 6');
  });

  it('looks an address up by prefix length, most specific first, whatever the number of rules', () => {
    expect(
      decisions(['10.0.0.0/8', '10.1.0.0/16', '10.1.2.3'], [], '', [
        '10.1.2.3|||50',
        '10.1.9.9|||50',
        '10.9.9.9|||50',
        '11.0.0.1|||50',
      ]),
    ).toEqual(['canary:ip 10.1.2.3', 'canary:ip 10.1.0.0/16', 'canary:ip 10.0.0.0/8', 'stable']);
    // 50,000 rules: every one matches its own address, a neighbour outside them does not.
    expect(
      lua_(
        `
      local ips = {}
      for i = 0, 49999 do ips[#ips + 1] = "10." .. math.floor(i / 256) % 256 .. "." .. i % 256 .. ".1" end
      local rules, skipped, err = gray_rules.compile(ips, {}, "")
      local hits = 0
      for i = 0, 49999, 997 do
        if gray_rules.decide(rules, "10." .. math.floor(i / 256) % 256 .. "." .. i % 256 .. ".1", nil, nil, 99) ` +
          `then hits = hits + 1 end
      end
      local miss = gray_rules.decide(rules, "10.0.0.2", nil, nil, 99)
      return rules.counts.ips .. " " .. #rules.lens .. " " .. hits .. " " .. tostring(miss) .. " " .. #skipped .. ` +
          `" " .. tostring(err)`,
      ),
    ).toBe('50000 1 51 false 0 nil');
  });

  it(
    'a rule set over the limits is refused as a whole, with why; ' +
      'the status page shows counts and the first entries only',
    () => {
      expect(
        lua_(`
      local ips = {}
      for i = 1, gray_rules.MAX_IPS + 1 do ips[i] = "10.0.0.1" end
      local rules, _, err = gray_rules.compile(ips, {}, "")
      return tostring(rules) .. " | " .. err`),
      ).toBe('nil | 100001 ip rules; a node takes at most 100000');
      expect(
        lua_(`
      local vals = {}
      for i = 1, 300 do vals[i] = "v" .. i end
      local d = gray_rules.describe((gray_rules.compile({ "10.0.0.1" }, vals, "5")))
      return #d.values .. " " .. d.counts.values .. " " .. d.counts.ips .. " " .. d.percent`),
      ).toBe('100 300 1 5');
      expect(
        lua_(
          `return tostring(gray_rules.empty(gray_rules.compile({}, {}, "0"))) .. ` +
            `tostring(gray_rules.empty(gray_rules.compile({}, {}, "1")))`,
        ),
      ).toBe('truefalse');
    },
  );

  it('no rules (Redis not answering) means stable for everyone', () => {
    expect(
      lua_(`local c, why = gray_rules.decide(nil, "10.0.0.1", "tester1", nil, 0); return tostring(c) .. " " .. why`),
    ).toBe('false no rules');
  });
});

// gray.lua's route() under a stand-in for the nginx API (ngx.var, the shared dict, crc32): what
// set_by_lua returns for $ha_upstream and what it writes to $ha_gray.
function routes(ips: string[], values: string[], percent: string, cases: string[]): string[] {
  const out = lua_(`
    local store = { ["gray:version"] = 1, ["gray:rules"] = "rules" }
    local decoded = { ips = ${list(ips)}, values = ${list(values)}, percent = ${JSON.stringify(percent)} }
    package.preload["cjson.safe"] = function()
      return { decode = function(s) if s == "rules" then return decoded end end }
    end
    local vars = {}
    ngx = {
      now = function() return 0 end,
      shared = { ha_gateway_gray = { get = function(_, k) return store[k] end } },
      var = setmetatable({}, { __index = function(_, k) return vars[k] end,
                                __newindex = function(_, k, v) vars[k] = v end }),
      crc32_long = function(s) return #s end,
    }
    local gray = require("ha_gateway.gray")
    gray.init({ stable = "app", canary = "app_canary", header = "x_gray", cookie = "gray" })
    local out = {}
    for _, c in ipairs(${list(cases)}) do
      local ip, h, ck = c:match("^([^|]*)|([^|]*)|([^|]*)$")
      local function opt(s) if s == "" then return nil end return s end
      vars = { remote_addr = ip, http_x_gray = opt(h), cookie_gray = opt(ck), ha_gray = "-" }
      out[#out + 1] = gray.route() .. ":" .. vars.ha_gray
    end
    return table.concat(out, ",")`);
  return out.split(',');
}

describe('gray release routing (set_by_lua $ha_upstream)', () => {
  it('returns the canary and says why for chosen clients, stable and "-" for the rest', () => {
    expect(
      routes(['10.1.2.3'], ['tester1'], '', ['10.1.2.3||', '10.1.2.4||', '10.1.2.4|tester1|', '10.1.2.4||tester1']),
    ).toEqual(['app_canary:ip 10.1.2.3', 'app:-', 'app_canary:header', 'app_canary:cookie']);
  });

  it('the percentage buckets by the cookie when there is one, else by the client address', () => {
    // crc32 stands in as the length: "10.0.0.1" is 8 (< 9), "abcdefghij" 10 (>= 9).
    expect(routes([], [], '9', ['10.0.0.1||', '10.0.0.1||abcdefghij', '10.0.0.100||'])).toEqual([
      'app_canary:percent 9',
      'app:-',
      'app:-',
    ]);
  });

  it('without rules every request goes to stable', () => {
    expect(routes([], [], '', ['10.1.2.3|tester1|'])).toEqual(['app:-']);
  });
});

describe('Redis protocol (control machine side)', () => {
  it('encodes commands as bulk strings (spaces and UTF-8 need no escaping)', () => {
    expect(encodeCommand(['SADD', 'k:ips', '10.0.0.0/8'])).toBe(
      '*3\r\n$4\r\nSADD\r\n$5\r\nk:ips\r\n$10\r\n10.0.0.0/8\r\n',
    );
    expect(encodeCommand(['SET', 'k', 'é'])).toBe('*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\né\r\n');
  });

  it('parses every reply kind and waits for a whole reply', () => {
    const buf = Buffer.from('+OK\r\n:3\r\n$-1\r\n*2\r\n$3\r\na b\r\n$0\r\n\r\n-WRONGPASS no\r\n');
    const got: unknown[] = [];
    let pos = 0;
    for (let r = parseReply(buf, pos); r; r = parseReply(buf, pos)) {
      got.push(r.reply);
      pos = r.end;
    }
    expect(got).toEqual(['OK', 3, null, ['a b', ''], { error: 'WRONGPASS no' }]);
    expect(parseReply(Buffer.from('*2\r\n$3\r\nabc\r\n$3\r\nab'))).toBeUndefined();
    expect(parseReply(Buffer.from('$5\r\nab'))).toBeUndefined();
  });
});

describe('ha-setup gray talking to something that is not Redis', () => {
  const serve = async (answer: (sock: import('node:net').Socket) => void) => {
    const { createServer } = await import('node:net');
    const server = createServer(answer);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return { server, port: (server.address() as import('node:net').AddressInfo).port };
  };
  it('an HTTP server on the port: a clear error, no stack trace', async () => {
    const { redisPipeline } = await import('../../src/gray/redis.js');
    const { RunFailedError } = await import('../../src/errors.js');
    const { server, port } = await serve((sock) => sock.end('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n'));
    try {
      const e = await redisPipeline({ host: '127.0.0.1', port, db: 0 }, [['PING']]).catch((x) => x);
      expect(e).toBeInstanceOf(RunFailedError);
      expect(e.message).toMatch(/not a Redis reply: "HTTP\/1\.1 400.*is this the Redis of site\.gray/);
    } finally {
      server.close();
    }
  });
  it('an endless answer is cut at the limit', async () => {
    const { redisPipeline } = await import('../../src/gray/redis.js');
    const { server, port } = await serve((sock) => {
      sock.write('$999999999\r\n');
      const chunk = Buffer.alloc(1024 * 1024, 0x61);
      const more = () => {
        while (!sock.destroyed && sock.write(chunk));
      };
      sock.on('drain', more);
      sock.on('error', () => {});
      more();
    });
    try {
      const e = await redisPipeline({ host: '127.0.0.1', port, db: 0, timeoutMs: 20_000 }, [['PING']]).catch((x) => x);
      expect(e.message).toMatch(/over the limit of 33554432/);
    } finally {
      server.close();
    }
  });
});

describe('ha-setup gray actions', () => {
  const keys = grayKeys('ha-setup:gray');
  it('build the Redis commands for valid values', () => {
    expect(grayCommands(keys, 'add-ip', '10.1.0.0/16')).toEqual([['SADD', 'ha-setup:gray:ips', '10.1.0.0/16']]);
    expect(grayCommands(keys, 'remove-value', 'tester1')).toEqual([['SREM', 'ha-setup:gray:values', 'tester1']]);
    expect(grayCommands(keys, 'percent', '05')).toEqual([['SET', 'ha-setup:gray:percent', '5']]);
    expect(grayCommands(keys, 'clear', undefined)).toEqual([
      ['DEL', 'ha-setup:gray:ips', 'ha-setup:gray:values', 'ha-setup:gray:percent'],
    ]);
    expect(grayCommands(keys, 'status', undefined)).toEqual([]);
  });

  it('refuse values the nodes would skip, naming the action', () => {
    const refused = (action: Parameters<typeof grayCommands>[1], v?: string) => {
      try {
        grayCommands(keys, action, v);
      } catch (e) {
        expect(e).toBeInstanceOf(InvalidInputError);
        return (e as Error).message;
      }
      throw new Error(`${action} ${v} was accepted`);
    };
    expect(refused('add-ip', '10.0.0.256')).toMatch(/^add-ip: .*octet/);
    expect(refused('add-ip', '10.0.0.0/33')).toMatch(/prefix length/);
    expect(refused('add-ip', 'fe80::1')).toMatch(/not an IPv4/);
    expect(refused('add-value', 'a"b')).toMatch(/^add-value: /);
    expect(refused('percent', '101')).toMatch(/0 to 100/);
    expect(refused('percent', '-1')).toMatch(/0 to 100/);
    expect(refused('add-ip')).toMatch(/needs/);
    expect(refused('clear', 'x')).toMatch(/takes no value/);
  });
});

describe('site.gray in the runbook', () => {
  const example = () =>
    parse(readFileSync(join(import.meta.dirname, '..', '..', 'runbooks', 'example-gray.yaml'), 'utf8'));

  it('the example is valid; canary and stable must be two upstreams of the site', () => {
    expect(validateRunbook(example()).problems).toEqual([]);
    const unknown = example();
    unknown.site.gray.canary = 'nope';
    expect(validateRunbook(unknown).problems).toEqual([
      { path: 'site.gray.canary', message: '"nope" is not an upstream in site.upstreams (one of app, app_canary)' },
    ]);
    const same = example();
    same.site.gray.canary = 'app';
    expect(validateRunbook(same).problems.map((p) => p.path)).toEqual(['site.gray.canary']);
  });

  it('refuses a Redis name, an nginx build without lua, a header with spaces', () => {
    const name = example();
    name.site.gray.redis.address = 'redis.internal:6379';
    expect(validateRunbook(name).problems.map((p) => p.path)).toEqual(['site.gray.redis.address']);
    const noLua = example();
    noLua.build = { flavor: 'nginx', version: '1.22.1', prefix: '/usr/local/nginx', modules: ['fancyindex'] };
    expect(validateRunbook(noLua).problems.map((p) => p.path)).toEqual(['site.gray']);
    const header = example();
    header.site.gray.header = 'X Gray';
    expect(validateRunbook(header).problems.map((p) => p.path)).toEqual(['site.gray.header']);
  });

  it(
    'the Redis password is a secret: required at apply time, ' +
      'and one with a quote is refused (it goes into a Lua string)',
    () => {
      const v = validateRunbook(example());
      if (!v.ok) throw new Error('example invalid');
      const rb = v.runbook;
      const file = join(import.meta.dirname, 'no-such-dir', 'gray.yaml');
      const env = process.env;
      try {
        process.env = { ...env, HA_SETUP_REDIS_PASSWORD: undefined };
        expect(() => loadSecrets(rb, file)).toThrow(/HA_SETUP_REDIS_PASSWORD is not set/);
        process.env = { ...env, HA_SETUP_REDIS_PASSWORD: 'a"b' };
        expect(() => loadSecrets(rb, file)).toThrow(/Redis password.*printable/);
        process.env = { ...env, HA_SETUP_REDIS_PASSWORD: 's3cret!' };
        expect(loadSecrets(rb, file)).toEqual({ HA_SETUP_REDIS_PASSWORD: 's3cret!' });
      } finally {
        process.env = env;
      }
    },
  );
});
