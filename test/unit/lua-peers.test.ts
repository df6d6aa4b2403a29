import { describe, expect, it } from 'vitest';
import { luaModuleRunner } from '../helpers/lua-vm.js';

/** Runs a Lua chunk with `peers` in scope; it must return a string. */
const run = luaModuleRunner('peers');

describe('gateway peer lists (Lua)', () => {
  it('reads Consul health entries: service address, else the node address, weights, sorted, deduplicated', () => {
    expect(
      run(`
      local list, skipped = peers.from_consul({
        { Node = { Address = "10.0.0.9" }, Service = { Address = "10.0.0.2", Port = 8080, Weights = { Passing = 3 } } },
        { Node = { Address = "10.0.0.1" }, Service = { Address = "", Port = 8080 } },
        { Node = { Address = "10.0.0.1" }, Service = { Port = 8080 } },
      })
      return peers.encode(list) .. " | " .. #skipped`),
    ).toBe('10.0.0.1:8080:1,10.0.0.2:8080:3 | 0');
  });

  it('skips entries it cannot use and says why; a non-list answer is an error', () => {
    expect(
      run(`
      local list, skipped = peers.from_consul({
        { Service = { Address = "app.internal", Port = 80 } },
        { Service = { Address = "10.0.0.300", Port = 80 } },
        { Service = { Address = "10.0.0.3", Port = 70000 } },
        { Service = { Address = "10.0.0.4", Port = 80, Weights = { Passing = 0 } } },
        { Node = {} },
        { Service = { Address = "10.0.0.5", Port = 80 } },
      })
      return peers.encode(list) .. " | " .. table.concat(skipped, "; ")`),
    ).toBe(
      '10.0.0.5:80:1 | entry 1: address app.internal is not an IPv4 address; entry 2: address 10.0.0.300 is not an ' +
        'IPv4 address; entry 3: port 70000 is not a port; entry 4: weight 0 takes it out of rotation; ' +
        'entry 5 has no Service',
    );
    expect(run('local l, err = peers.from_consul("x"); return tostring(l) .. " " .. err')).toBe(
      'nil the answer is not a JSON list',
    );
    expect(run('local l = peers.from_consul({}); return tostring(#l)')).toBe('0');
  });

  it('seeds from the runbook server lines, leaving out backup and down servers', () => {
    expect(
      run(
        'return peers.encode(peers.from_servers({ "10.0.0.1:80", "10.0.0.2:81 weight=5", "10.0.0.3:80 backup", ' +
          '"10.0.0.4:80 down", "app:80" }))',
      ),
    ).toBe('10.0.0.1:80:1,10.0.0.2:81:5');
  });

  it('encode and decode round-trip', () => {
    expect(run('return peers.encode(peers.decode("10.0.0.1:80:1,10.0.0.2:8080:7"))')).toBe(
      '10.0.0.1:80:1,10.0.0.2:8080:7',
    );
    expect(run('return tostring(#peers.decode(nil))')).toBe('0');
  });

  it('rotation spreads weights (a b a b a), pick walks it round robin and skips tried peers on a retry', () => {
    expect(
      run(`
      local r = peers.rotation(peers.decode("10.0.0.1:80:3,10.0.0.2:80:2"))
      local out = {}
      for _, p in ipairs(r) do out[#out + 1] = p.host:sub(-1) end
      return table.concat(out)`),
    ).toBe('12121');
    expect(
      run(`
      local r = peers.rotation(peers.decode("10.0.0.1:80:1,10.0.0.2:80:1,10.0.0.3:80:1"))
      local out = {}
      for n = 1, 4 do out[#out + 1] = peers.pick(r, n).host:sub(-1) end
      local tried = { ["10.0.0.2:80"] = true, ["10.0.0.3:80"] = true }
      local p, at = peers.pick(r, 2, tried)
      out[#out + 1] = p.host:sub(-1) .. "@" .. at
      tried["10.0.0.1:80"] = true
      out[#out + 1] = tostring(peers.pick(r, 1, tried))
      return table.concat(out, " ")`),
    ).toBe('1 2 3 1 1@4 nil');
    expect(run('return tostring(peers.pick({}, 1))')).toBe('nil');
    // a weighted peer appears several times in the rotation: tried once, skipped everywhere
    expect(
      run(`
      local r = peers.rotation(peers.decode("10.0.0.1:80:3,10.0.0.2:80:1"))
      local p, at = peers.pick(r, 3, { ["10.0.0.1:80"] = true })
      return p.host .. "@" .. at`),
    ).toBe('10.0.0.2@6'); // rotation 1 2 1 1: from position 3, past three 1s
    // peers not from decode (no addr field) are matched by host:port
    expect(
      run(
        'return peers.pick({ { host = "10.0.0.1", port = 80 } }, 1, ' +
          '{ ["10.0.0.1:80"] = true }) == nil and "none" or "some"',
      ),
    ).toBe('none');
  });

  it('a retry reads the peers already tried from $upstream_addr, across internal redirects', () => {
    const tried = (s: string) =>
      run(`local t = peers.tried_from_upstream_addr(${s}); local out = {}
        for a in pairs(t) do out[#out + 1] = a end; table.sort(out); return table.concat(out, " ")`);
    expect(tried('"10.0.0.1:9298, 10.0.0.2:9299, "')).toBe('10.0.0.1:9298 10.0.0.2:9299');
    expect(tried('"10.0.0.1:80 : 10.0.0.2:81"')).toBe('10.0.0.1:80 10.0.0.2:81');
    expect(tried('""')).toBe('');
    expect(tried('nil')).toBe('');
    // and pick skips exactly those: three peers, two tried, the third is the answer from anywhere
    expect(
      run(`
      local r = peers.rotation(peers.decode("10.0.0.1:80:1,10.0.0.2:80:1,10.0.0.3:80:1"))
      local t = peers.tried_from_upstream_addr("10.0.0.3:80, 10.0.0.1:80")
      local out = {}
      for n = 1, 3 do out[#out + 1] = peers.pick(r, n, t).host end
      return table.concat(out, " ")`),
    ).toBe('10.0.0.2 10.0.0.2 10.0.0.2');
  });

  it('healthy leaves out peers marked down, and falls back to all when every one is down', () => {
    expect(
      run(`
      local list = peers.decode("10.0.0.1:80:1,10.0.0.2:80:1")
      local some, all1 = peers.healthy(list, function(a) return a == "10.0.0.1:80" end)
      local every, all2 = peers.healthy(list, function() return true end)
      return peers.encode(some) .. " " .. tostring(all1) .. " | " .. peers.encode(every) .. " " .. tostring(all2)`),
    ).toBe('10.0.0.2:80:1 false | 10.0.0.1:80:1,10.0.0.2:80:1 true');
  });
});

describe('who may be a peer (Lua ipv4.peer_problem, used for Consul and the seed list)', () => {
  it('refuses this host, cloud metadata, 0.0.0.0, multicast and broadcast from Consul, and a NaN weight', () => {
    expect(
      run(`
      local list, skipped = peers.from_consul({
        { Service = { Address = "127.0.0.1", Port = 22 } },
        { Service = { Address = "169.254.169.254", Port = 80 } },
        { Service = { Address = "0.0.0.0", Port = 80 } },
        { Service = { Address = "255.255.255.255", Port = 80 } },
        { Service = { Address = "239.1.1.1", Port = 80 } },
        { Service = { Address = "127.0.0.010", Port = 80 } },
        { Service = { Address = "10.0.0.7", Port = 80, Weights = { Passing = 0/0 } } },
        { Service = { Address = "10.0.0.8", Port = 80 } },
      })
      return peers.encode(list) .. " | " .. table.concat(skipped, "; ")`),
    ).toBe(
      '10.0.0.8:80:1 | entry 1: address 127.0.0.1 is a loopback address; entry 2: address 169.254.169.254 is ' +
        'link-local (169.254.0.0/16: cloud metadata lives here); entry 3: address 0.0.0.0 is in 0.0.0.0/8 (this ' +
        'network); entry 4: address 255.255.255.255 is reserved or broadcast (240.0.0.0/4); entry 5: address ' +
        '239.1.1.1 is a multicast address; entry 6: address 127.0.0.010 is not an IPv4 address; entry 7: ' +
        'weight is not a number',
    );
  });

  it('site.peerNetworks is an allow-list: only peers inside it, and a special range only when listed', () => {
    expect(
      run(`
      local ipv4 = require("ha_gateway.ipv4")
      local allowed = ipv4.compile_all({ "10.1.0.0/16", "127.0.0.0/8" })
      local list, skipped = peers.from_consul({
        { Service = { Address = "10.1.2.3", Port = 80 } },
        { Service = { Address = "10.2.0.1", Port = 80 } },
        { Service = { Address = "127.0.0.1", Port = 8080 } },
      }, allowed)
      local seeds = peers.from_servers({ "10.1.0.9:80", "192.168.1.1:80" }, allowed)
      return peers.encode(list) .. " | " .. table.concat(skipped, "; ") .. " | " .. peers.encode(seeds)`),
    ).toBe(
      '10.1.2.3:80:1,127.0.0.1:8080:1 | entry 2: address 10.2.0.1 is outside the allowed peer networks | 10.1.0.9:80:1',
    );
    expect(run('return peers.encode(peers.from_servers({ "169.254.169.254:80", "10.0.0.1:80" }))')).toBe(
      '10.0.0.1:80:1',
    );
  });
});
