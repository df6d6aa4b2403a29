import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { offlinePlan, planJson, renderPlanReview, renderPlanText, wrapCommand } from '../../src/engine/plan-view.js';
import { loadRunbook } from '../../src/runbook/io.js';
import { emptySiteFiles } from '../../src/runbook/site-files.js';
import { INSTALL_STEPS } from '../../src/steps/index.js';
import { assumedFacts } from '../../src/engine/facts.js';
import { handoffCommands, handoffScript } from '../../src/verify/handoff.js';

// Every rendered file and command list, per OS family and flavor. Regenerate after an intended
// change with: npx vitest run test/unit/golden.test.ts -u (and review the diff). ha-setup's own Lua
// appears by name and hash (its logic has tests of its own: lua-*.test.ts, gray.test.ts).
const goldenDir = join(import.meta.dirname, '..', 'golden');
const runbooks = {
  openresty: 'runbooks/example-openresty.yaml',
  'openresty-modules': 'runbooks/example-openresty-modules.yaml',
  nginx: 'runbooks/example-nginx-lua.yaml',
};
const releases = ['debian12', 'ubuntu22', 'el7', 'el9'];

describe('golden plans', () => {
  for (const [flavor, file] of Object.entries(runbooks)) {
    for (const release of releases) {
      it(`${flavor} on ${release}`, async () => {
        const { runbook } = loadRunbook(join(import.meta.dirname, '..', '..', file));
        const text = renderPlanText(offlinePlan(runbook, INSTALL_STEPS, release), {
          fileContents: true,
          ownLuaByHash: true,
        });
        await expect(text).toMatchFileSnapshot(join(goldenDir, `${flavor}.${release}.txt`));
      });
    }
  }

  // Not OS-specific: sh, ip, ss, nft and systemd-run are the same on every family ha-setup supports.
  it('connection handoff script and the commands each side runs', async () => {
    const { runbook } = loadRunbook(join(import.meta.dirname, '..', '..', runbooks.nginx));
    const c = handoffCommands(runbook);
    const commands = { release: c.release, takeover: c.takeover('192.0.2.11'), connections: c.connections, end: c.end };
    const text = `${handoffScript(runbook, 'eth0')}\n--- commands\n${Object.entries(commands)
      .map(([k, v]) => `${k}: ${v}`)
      .join('\n')}\n`;
    await expect(text).toMatchFileSnapshot(join(goldenDir, 'handoff.txt'));
  });

  // The gateway (Consul discovery): the nginx flavor takes lua-cjson from the archive, so Debian family only.
  for (const release of ['debian12', 'ubuntu22']) {
    it(`gateway on ${release}`, async () => {
      const { runbook } = loadRunbook(join(import.meta.dirname, '..', '..', 'runbooks/example-gateway.yaml'));
      const text = renderPlanText(offlinePlan(runbook, INSTALL_STEPS, release), {
        fileContents: true,
        ownLuaByHash: true,
      });
      await expect(text).toMatchFileSnapshot(join(goldenDir, `gateway.${release}.txt`));
    });
  }

  // Gray release from Redis on OpenResty (cjson bundled, so EL too).
  for (const release of ['debian12', 'el9']) {
    it(`gray release on ${release}`, async () => {
      const { runbook } = loadRunbook(join(import.meta.dirname, '..', '..', 'runbooks/example-gray.yaml'));
      const text = renderPlanText(offlinePlan(runbook, INSTALL_STEPS, release), {
        fileContents: true,
        ownLuaByHash: true,
      });
      await expect(text).toMatchFileSnapshot(join(goldenDir, `gray.${release}.txt`));
    });
  }

  // HTTPS: a certificate from files (OpenResty: `http2 on`) and from ACME (nginx 1.22: `listen ... http2`).
  for (const release of ['debian12', 'el9']) {
    it(`https from certificate files on ${release}`, async () => {
      const dir = join(import.meta.dirname, '..', 'fixtures', 'tls');
      const { runbook } = loadRunbook(join(dir, 'runbook-https.yaml'));
      const siteFiles = { ...emptySiteFiles(), tls: { chain: readFileSync(join(dir, 'chain.pem'), 'utf8') } };
      const text = renderPlanText(offlinePlan(runbook, INSTALL_STEPS, release, siteFiles), {
        fileContents: true,
        ownLuaByHash: true,
      });
      // The key is a placeholder in every plan: its content is substituted only when the file is written.
      expect(text).toContain('@@secret:__ha_setup_tls_key@@');
      expect(text).not.toContain('PRIVATE KEY');
      await expect(text).toMatchFileSnapshot(join(goldenDir, `https.${release}.txt`));
    });
    it(`https from ACME on ${release}`, async () => {
      const { runbook } = loadRunbook(join(import.meta.dirname, '..', '..', 'runbooks/example-acme.yaml'));
      const text = renderPlanText(offlinePlan(runbook, INSTALL_STEPS, release), {
        fileContents: true,
        ownLuaByHash: true,
      });
      await expect(text).toMatchFileSnapshot(join(goldenDir, `acme.${release}.txt`));
    });
  }

  // What `ha-setup plan` prints for a reviewer (the goldens above hold every file and command).
  for (const release of releases) {
    it(`plan review of the nginx example on ${release}`, async () => {
      const { runbook } = loadRunbook(join(import.meta.dirname, '..', '..', runbooks.nginx));
      const text = renderPlanReview(offlinePlan(runbook, INSTALL_STEPS, release), {
        fileContents: false,
        osSource: 'assumed',
        runbookPath: runbooks.nginx,
        width: 120,
      });
      await expect(text).toMatchFileSnapshot(join(goldenDir, `plan-review.nginx.${release}.txt`));
    });
  }

  it(
    'plan review: a header, a summary, each identical step once, per-node differences, key values, ' +
      'no line past 120 columns outside file contents',
    () => {
      const { runbook } = loadRunbook(join(import.meta.dirname, '..', '..', runbooks.nginx));
      const nodes = offlinePlan(runbook, INSTALL_STEPS, 'el9');
      const text = renderPlanReview(nodes, {
        fileContents: false,
        osSource: 'assumed',
        runbookPath: 'x.yaml',
        width: 120,
      });
      expect(text).toMatch(/^plan for x\.yaml \(runbook "/);
      expect(text).toMatch(/el9 \(assumed: --offline\)/);
      expect(text).toContain(
        `summary:\n  ${nodes[0].pc.node.name}: ${nodes[0].steps.length} will run, 0 done, 0 will re-run`,
      );
      expect(text.match(/-- \[will run\] packages: .*\[every node\]/g)).toHaveLength(1);
      // keepalived.conf differs per node (priority): one block per node, with its key values.
      const ka = [...text.matchAll(/-- \[will run\] keepalived-config: .*\[(\S+)\]/g)].map((m) => m[1]);
      expect(ka).toEqual(nodes.map((n) => n.pc.node.name));
      expect(text).toMatch(new RegExp(`= priority ${nodes[0].pc.node.priority}\\n`));
      expect(text).toMatch(/= virtual_router_id \d+/);
      // Only a quoted string too long to break may pass the width (breaking it would change the command).
      for (const line of text.split('\n').filter((l) => l.length > 120))
        expect(line, line).toMatch(/(['"])[^'"]{80,}\1/);
      const json = planJson(nodes, 'assumed', 'x.yaml') as {
        nodes: Array<{ steps: Array<{ id: string; files: Array<{ keyValues: string[] }> }> }>;
      };
      expect(json.nodes[0].steps.find((s) => s.id === 'keepalived-config')!.files[0].keyValues).toContain(
        `priority ${nodes[0].pc.node.priority}`,
      );
    },
  );

  it('plan review warns about unpinned sources with their URL', () => {
    const { runbook } = loadRunbook(join(import.meta.dirname, '..', '..', runbooks.nginx));
    const unpinned = { ...runbook, keepalived: { ...runbook.keepalived, version: '2.2.8' } };
    const text = renderPlanReview(offlinePlan(unpinned, INSTALL_STEPS, 'debian12'), {
      fileContents: false,
      osSource: 'assumed',
      runbookPath: 'x.yaml',
    });
    expect(text).toContain(
      'warning: source keepalived 2.2.8 has no pin (https://www.keepalived.org/software/keepalived-2.2.8.tar.gz): ' +
        'apply refuses it unless --trust-on-first-download',
    );
  });

  it('wraps long commands only at spaces outside quotes, as a backslash continuation', () => {
    const cmd =
      `echo 'a b c d e f g h i j k l m n o p q r s t u v w x y z' && printf '%s\\n' one two three four ` +
      `five six seven eight nine ten eleven`;
    const lines = wrapCommand(cmd, 60);
    expect(lines.length).toBeGreaterThan(1);
    expect(lines.slice(0, -1).every((l) => l.endsWith(' \\'))).toBe(true);
    expect(lines[0]).toContain("'a b c d e f g h i j k l m n o p q r s t u v w x y z'");
    expect(lines.map((l) => l.replace(/ \\$/, '').trim()).join(' ')).toBe(cmd);
  });

  it('cuts a long single-quoted word inside the quotes; bash reads the wrapped lines as the same words', async () => {
    const { execFileSync } = await import('node:child_process');
    const args = Array.from({ length: 30 }, (_, i) => `--with-option-${i}=/usr/local/x${i}`).join(' ');
    const cmd = `printf '%s\\n' '${args}' > /tmp/args`;
    const lines = wrapCommand(cmd, 80);
    expect(lines.length).toBeGreaterThan(3);
    expect(Math.max(...lines.map((l) => l.length))).toBeLessThanOrEqual(80);
    const words = (script: string) =>
      execFileSync('bash', ['-c', `set -- ${script.replace(/ > \/tmp\/args$/, '')}; printf '%s|' "$@"`], {
        encoding: 'utf8',
      });
    expect(words(lines.join('\n'))).toBe(words(cmd));
    const dq = `echo "${args}" > /tmp/args`;
    const dqLines = wrapCommand(dq, 80);
    expect(Math.max(...dqLines.map((l) => l.length))).toBeLessThanOrEqual(80);
    expect(words(dqLines.join('\n'))).toBe(words(dq));
  });

  it('puts the upstream-check patch inside the OpenResty bundle', async () => {
    const { runbook } = loadRunbook(join(import.meta.dirname, '..', '..', runbooks['openresty-modules']));
    const text = renderPlanText(offlinePlan(runbook, INSTALL_STEPS, 'el9'), { fileContents: false });
    expect(text).toContain(
      'patch -p1 -f -d /usr/local/src/ha-setup/src/openresty/bundle/nginx-1.27.1 ' +
        '< /usr/local/src/ha-setup/src/nginx_upstream_check_module/check_1.16.1+.patch; fi',
    );
    expect(text).toMatch(/openldap-devel/);
    expect(text).toMatch(/--add-module=\/usr\/local\/src\/ha-setup\/src\/ngx_cache_purge/);
    expect(text).toContain(
      `firewall-cmd --permanent --add-rich-rule='rule family="ipv4" source address="192.168.56.102" ` +
        `protocol value="vrrp" accept'`,
    );
  });

  it('builds lua on the nginx flavor against LuaJIT with an rpath', async () => {
    const { runbook } = loadRunbook(join(import.meta.dirname, '..', '..', runbooks.nginx));
    const text = renderPlanText(offlinePlan(runbook, INSTALL_STEPS, 'debian12'), {
      fileContents: true,
      ownLuaByHash: true,
    });
    expect(text).toMatch(
      /env LUAJIT_LIB=\/usr\/lib\/x86_64-linux-gnu LUAJIT_INC=\/usr\/include\/luajit-2\.1 \.\/configure/,
    );
    expect(text).toMatch(/--with-ld-opt=-Wl,-rpath,\/usr\/lib\/x86_64-linux-gnu/);
    expect(text).toMatch(/libluajit2-5\.1-dev/);
    expect(text).toMatch(/lua_package_path "\/usr\/local\/share\/ha-setup\/lua\/usr\/share\/lua\/5\.1\/\?\.lua;;"/);
    // VRRPv2 auth: the password is a placeholder in every plan, never the value.
    expect(text).toMatch(/auth_pass @@secret:HA_SETUP_VRRP_PASSWORD@@/);
    expect(text).toMatch(/nopreempt/);
    expect(text).toMatch(/unicast_src_ip 10\.10\.0\.11\n.*unicast_peer \{\n.*10\.10\.0\.12\n/);
  });

  it('on EL, lua-resty-core and lrucache are pinned sources copied to where lua_package_path points', () => {
    const { runbook } = loadRunbook(join(import.meta.dirname, '..', '..', runbooks.nginx));
    const el = renderPlanText(offlinePlan(runbook, INSTALL_STEPS, 'el9'), { fileContents: true, ownLuaByHash: true });
    expect(el).toMatch(/lua-resty-core 0\.1\.25 git .* = commit 0173d96c9eb77b513b989b765716fd2498f09dd9/);
    expect(el).toMatch(
      /cp -a \/usr\/local\/src\/ha-setup\/src\/lua-resty-core\/lib\/\. \/usr\/local\/share\/ha-setup\/lua\/lib\//,
    );
    expect(el).toMatch(/lua_package_path "\/usr\/local\/share\/ha-setup\/lua\/lib\/\?\.lua;;"/);
    // Debian unpacks the distribution's packages instead; no extra sources there.
    const deb = renderPlanText(offlinePlan(runbook, INSTALL_STEPS, 'debian12'), { fileContents: false });
    expect(deb).not.toMatch(/lua-resty-core 0\.1\.25 git/);
  });
});

describe('firewall commands per firewall kind', () => {
  const { runbook } = loadRunbook(join(import.meta.dirname, '..', '..', 'runbooks', 'example-nginx-lua.yaml'));
  const pcFor = (firewall: 'iptables' | 'nftables' | 'none', firewallChain = '') => {
    const [first] = offlinePlan(runbook, [], 'debian12');
    return { ...first.pc, facts: { ...first.pc.facts, firewall, firewallChain } };
  };

  it('iptables: accept VRRP from each peer and the site port, idempotently, and persist', async () => {
    const { firewallCommands } = await import('../../src/steps/firewall.js');
    const { apply, verify } = firewallCommands(pcFor('iptables'));
    expect(apply[0]).toBe(
      'iptables -C INPUT -p vrrp -s 10.10.0.12 -j ACCEPT 2>/dev/null || iptables -I INPUT -p vrrp -s ' +
        '10.10.0.12 -j ACCEPT',
    );
    expect(apply[1]).toContain('--dport 8080');
    expect(apply[2]).toMatch(/netfilter-persistent save/);
    expect(verify).toHaveLength(2);
  });

  it('nftables: rules go into the chain found on the host', async () => {
    const { firewallCommands } = await import('../../src/steps/firewall.js');
    const { apply } = firewallCommands(pcFor('nftables', 'inet filter input'));
    expect(apply[0]).toBe(
      "nft list chain inet filter input | grep -F 'ip saddr 10.10.0.12 ip protocol vrrp accept' >/dev/null || nft " +
        'insert rule inet filter input ip saddr 10.10.0.12 ip protocol vrrp accept',
    );
  });

  it('no active firewall: nothing to do', async () => {
    const { firewallCommands } = await import('../../src/steps/firewall.js');
    expect(firewallCommands(pcFor('none'))).toEqual({ apply: [], verify: [] });
  });
});

describe('preflight on an EL 7 node', () => {
  it('refuses lua on the nginx flavor (EPEL 7 has LuaJIT 2.0) before anything changes', async () => {
    const { preflightProblems } = await import('../../src/steps/preflight.js');
    const { resolveNodes } = await import('../../src/engine/nodes.js');
    const { runbook } = loadRunbook(join(import.meta.dirname, '..', '..', runbooks.nginx));
    const nodes = resolveNodes(runbook);
    const facts = { ...assumedFacts('el7'), interfaces: { [nodes[0].interface]: [`${nodes[0].host}/24`] } };
    const quietHost = { exec: async () => ({ code: 0, stdout: '', stderr: '' }) };
    const problems = await preflightProblems({
      runbook,
      node: nodes[0],
      cluster: nodes,
      facts,
      sources: {},
      clusterFacts: { [nodes[0].name]: facts },
      t: quietHost as never,
      plan: { files: [], uploads: [], commands: [], notes: [] },
      progress: () => {},
      secrets: {},
      warn: () => {},
    });
    expect(problems.join('\n')).toContain(
      'build.modules: lua on the nginx flavor needs LuaJIT 2.1 and EPEL 7 ships 2.0 (el7); use the openresty flavor',
    );
  });

  // A newcomer's trial: validate passed what plan and apply then refused. One set of rules now.
  it('validate and plan --offline refuse what apply would: an unpinned source, lua on nginx on el7', async () => {
    const { main } = await import('../../src/cli/main.js');
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const run = async (argv: string[]) => {
      let out = '';
      let err = '';
      const code = await main(argv, {
        interactive: false,
        stdout: (s) => {
          out += s;
        },
        stderr: (s) => {
          err += s;
        },
      });
      return { code, out, err };
    };
    const dir = mkdtempSync(join(tmpdir(), 'ha-setup-rules-'));
    const unpinned = join(dir, 'unpinned.yaml');
    writeFileSync(
      unpinned,
      readFileSync(join(import.meta.dirname, '..', '..', runbooks.openresty), 'utf8').replace(
        /version: 1\.27\.1\.2/,
        'version: 1.25.3.1',
      ),
    );
    const v = await run(['validate', unpinned]);
    expect(v.code).toBe(2);
    expect(v.err).toContain(
      'sources.overrides.openresty: openresty 1.25.3.1 has no pin ' +
        '(https://openresty.org/download/openresty-1.25.3.1.tar.gz)',
    );
    const nginxLua = join(import.meta.dirname, '..', '..', runbooks.nginx);
    expect((await run(['validate', nginxLua])).code).toBe(0);
    const el7 = await run(['validate', nginxLua, '--os', 'el7']);
    expect(el7.code).toBe(2);
    expect(el7.err).toMatch(/build\.modules: lua on the nginx flavor needs LuaJIT 2\.1/);
    const plan = await run(['plan', nginxLua, '--offline', '--os', 'el7']);
    expect(plan.code).toBe(2);
    expect(plan.err).toMatch(/build\.modules: lua on the nginx flavor needs LuaJIT 2\.1/);
    // The EPEL hint names the package manager of the release (yum on el7, not dnf).
    const { runbook } = loadRunbook(join(import.meta.dirname, '..', '..', runbooks['openresty-modules']));
    const lua = {
      ...runbook,
      build: {
        ...runbook.build,
        flavor: 'nginx' as const,
        version: '1.22.1',
        prefix: '/usr/local/nginx',
        modules: ['lua'],
      },
    };
    const notes = (release: string) =>
      offlinePlan(lua, INSTALL_STEPS, release)[0]
        .steps.find((s) => s.step.id === 'packages')!
        .plan.notes.join('\n');
    expect(notes('el8')).toMatch(/\(dnf install epel-release\)/);
    expect(notes('el7')).toMatch(/\(yum install epel-release\)/);
  });
});
