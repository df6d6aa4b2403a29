import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { recordPinsInRunbook } from '../../src/runbook/io.js';
import { runbookSchema } from '../../src/runbook/schema.js';
import { validateRunbook } from '../../src/runbook/validate.js';
import { gitRefProblem, gitUrlProblem, rewriteGitUrl } from '../../src/sources/git-syntax.js';
import { prepareSources, sourceSpec } from '../../src/sources/prepare.js';

const fixture = () => parse(readFileSync(new URL('../fixtures/valid.yaml', import.meta.url), 'utf8'));

describe('git URLs and refs a runbook may give', () => {
  it.each([
    'https://github.com/yaoweibin/nginx_upstream_check_module.git',
    'http://git.internal/x.git',
    'git://10.213.0.1/owner/repo.git',
    'ssh://git@git.example.com:2222/owner/repo.git',
    'git@github.com:owner/repo.git',
    'file:///srv/git/repo.git',
  ])('accepts %s', (url) => expect(gitUrlProblem(url)).toBeUndefined());

  it.each([
    ['--upload-pack=touch /tmp/x', /starts with "-"/],
    ['-oProxyCommand=x', /starts with "-"/],
    ['ext::sh -c touch% /tmp/x', /whitespace|not a git URL/],
    ['ext::sh', /not a git URL/],
    ['ssh://-oProxyCommand=x/repo', /host starts with "-"/],
    ['ssh://-oProxyCommand=x@host/repo', /user name starts with "-"/],
    ['ssh://%2DoProxyCommand=x@host/repo', /user name starts with "-"/],
    ['https://exa mple.com/x', /whitespace/],
    ['file://relative/path', /absolute path/],
    ['ftp://host/x', /not a git URL/],
  ])('rejects %s', (url, why) => expect(gitUrlProblem(url)).toMatch(why));

  it.each(['v0.39', '1.2.6', 'release/1.x', 'e538034b6ad7992080d2403d6d3da56e4f7ac01e'])('accepts ref %s', (ref) =>
    expect(gitRefProblem(ref)).toBeUndefined(),
  );
  it.each(['--output=/tmp/x', '-b', 'a..b', 'a b', 'v1~1', 'v1^', 'x.lock', 'a@{1}', '', 'a/.hidden', 'end/'])(
    'rejects ref %j',
    (ref) => expect(gitRefProblem(ref)).toBeDefined(),
  );

  it('rewrites the longest matching prefix, like url.<base>.insteadOf', () => {
    const map = { 'https://github.com/': 'git://10.0.0.1/', 'https://github.com/openresty/': 'git://10.0.0.2/or/' };
    expect(rewriteGitUrl('https://github.com/kvspb/nginx-auth-ldap.git', map)).toBe(
      'git://10.0.0.1/kvspb/nginx-auth-ldap.git',
    );
    expect(rewriteGitUrl('https://github.com/openresty/lua-resty-http.git', map)).toBe(
      'git://10.0.0.2/or/lua-resty-http.git',
    );
    expect(rewriteGitUrl('https://gitlab.com/x.git', map)).toBe('https://gitlab.com/x.git');
  });
});

describe('source overrides in validation', () => {
  const problems = (mutate: (r: any) => void) => {
    const r = fixture();
    mutate(r);
    const v = validateRunbook(r);
    return v.ok ? [] : v.problems.map((p) => `${p.path}: ${p.message}`);
  };

  it.each<[string, (r: any) => void, RegExp]>([
    [
      'git as an option',
      (r) => {
        r.sources = { overrides: { ngx_cache_purge: { git: '--upload-pack=touch /tmp/x', ref: 'v1' } } };
      },
      /sources\.overrides\.ngx_cache_purge\.git: .*starts with "-"/,
    ],
    [
      'ref as an option',
      (r) => {
        r.sources = { overrides: { ngx_cache_purge: { ref: '--output=/tmp/x' } } };
      },
      /sources\.overrides\.ngx_cache_purge\.ref: .*starts with "-"/,
    ],
    [
      'git without ref',
      (r) => {
        r.sources = { overrides: { ngx_cache_purge: { git: 'https://example.com/x.git' } } };
      },
      /sources\.overrides\.ngx_cache_purge\.ref: a git source needs ref/,
    ],
    [
      'unknown source id',
      (r) => {
        r.sources = { overrides: { 'no-such-thing': { version: '1' } } };
      },
      /sources\.overrides\.no-such-thing: unknown source/,
    ],
    [
      'url and git together',
      (r) => {
        r.sources = {
          overrides: { ngx_cache_purge: { url: 'https://x/y.tar.gz', git: 'https://x/y.git', ref: 'v1' } },
        };
      },
      /give one of url, path or git/,
    ],
    [
      'sha256 on a git source',
      (r) => {
        r.sources = { overrides: { ngx_cache_purge: { sha256: 'a'.repeat(64) } } };
      },
      /held to its commit, not a tarball checksum/,
    ],
    [
      'ref on a tarball source',
      (r) => {
        r.sources = { overrides: { openresty: { ref: 'v1' } } };
      },
      /ref and commit apply to git sources/,
    ],
    [
      'commit not a full id',
      (r) => {
        r.sources = { overrides: { ngx_cache_purge: { commit: 'abc123' } } };
      },
      /full commit id/,
    ],
    [
      'version with a slash',
      (r) => {
        r.sources = { overrides: { ngx_cache_purge: { version: '../../etc' } } };
      },
      /version label/,
    ],
    [
      'core version differs from build.version',
      (r) => {
        r.sources = { overrides: { openresty: { version: '1.25.3.1', sha256: 'b'.repeat(64) } } };
      },
      /differs from the version in use \(1\.27\.1\.2\)/,
    ],
    [
      'download URL not http(s)',
      (r) => {
        r.sources = { overrides: { openresty: { url: 'file:///etc/passwd' } } };
      },
      /http:\/\/ or https:\/\//,
    ],
    [
      'gitRewrite target as an option',
      (r) => {
        r.sources = { gitRewrite: { 'https://github.com/': '--upload-pack=x' } };
      },
      /starts with "-"/,
    ],
  ])('rejects %s', (_, mutate, expected) => {
    expect(problems(mutate).join('\n')).toMatch(expected);
  });

  it('every catalog git source has a pinned default ref', () => {
    const rb = runbookSchema.parse(fixture());
    for (const id of [
      'ngx_cache_purge',
      'nginx_upstream_check_module',
      'nginx-sticky-module-ng',
      'nginx-auth-ldap',
      'headers-more-nginx-module',
      'nginx-module-vts',
    ]) {
      const spec = sourceSpec(rb, { id, version: defaultVersion(id) });
      expect(spec.kind).toBe('git');
      if (spec.kind === 'git') expect(spec.commit).toMatch(/^[0-9a-f]{40}$/);
    }
  });
});

function defaultVersion(id: string): string {
  const json = JSON.parse(readFileSync(new URL('../../src/data/sources.json', import.meta.url), 'utf8'));
  return json.sources[id].defaultVersion;
}

/** A throw-away repository with two tagged commits, served as file:// (real git, no network). */
function makeRepo(): { url: string; v1: string; v2: string; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'ha-setup-git-unit-'));
  const git = (...args: string[]) =>
    execFileSync('git', ['-C', dir, ...args], {
      encoding: 'utf8',
      env: {
        ...process.env,
        GIT_AUTHOR_NAME: 't',
        GIT_AUTHOR_EMAIL: 't@t',
        GIT_COMMITTER_NAME: 't',
        GIT_COMMITTER_EMAIL: 't@t',
      },
    }).trim();
  execFileSync('git', ['init', '-q', dir]);
  writeFileSync(join(dir, 'config'), 'ngx_addon_name=x\n');
  git('add', '.');
  git('commit', '-qm', 'one');
  git('tag', 'v1');
  const v1 = git('rev-parse', 'HEAD');
  writeFileSync(join(dir, 'config'), 'ngx_addon_name=x2\n');
  git('commit', '-qam', 'two');
  git('tag', 'v2');
  return { url: `file://${dir}`, v1, v2: git('rev-parse', 'HEAD'), dir };
}

describe('git sources on the control machine (real git, file:// repository)', () => {
  const runbookWith = (override: Record<string, string>, dir: string) => {
    const r = fixture();
    // An unpinned core from a local path (accepted as given) keeps the test on the git source.
    r.build = { ...r.build, flavor: 'nginx', version: '1.0.99', prefix: '/usr/local/nginx', modules: ['cache-purge'] };
    r.sources = {
      cacheDir: join(dir, 'cache'),
      mirror: join(dir, 'empty-mirror'),
      overrides: { ngx_cache_purge: override, nginx: { path: fileURLToPath(import.meta.url) } },
    };
    r.keepalived.install = 'package';
    const v = validateRunbook(r);
    if (!v.ok) throw new Error(v.problems.map((p) => `${p.path}: ${p.message}`).join('\n'));
    return v.runbook;
  };

  it('fetches a pinned tag, archives it and records the commit', async () => {
    const repo = makeRepo();
    const work = mkdtempSync(join(tmpdir(), 'ha-setup-rb-'));
    const rb = runbookWith({ git: repo.url, ref: 'v1', commit: repo.v1, version: '1' }, work);
    const { sources, learned } = await prepareSources(rb, work);
    expect(learned).toEqual([]);
    expect(sources.ngx_cache_purge.git).toEqual({ url: repo.url, fetchedFrom: repo.url, ref: 'v1', commit: repo.v1 });
    const listing = execFileSync('tar', ['-tf', sources.ngx_cache_purge.path], { encoding: 'utf8' });
    expect(listing).toContain('ngx_cache_purge-1/config');
    // Second run: from the cache, same archive, same checksum.
    const again = await prepareSources(rb, work);
    expect(again.sources.ngx_cache_purge.sha256).toBe(sources.ngx_cache_purge.sha256);
  });

  it('refuses a tag that resolves to another commit than the pin (a moved tag)', async () => {
    const repo = makeRepo();
    const work = mkdtempSync(join(tmpdir(), 'ha-setup-rb-'));
    const rb = runbookWith({ git: repo.url, ref: 'v2', commit: repo.v1, version: '2' }, work);
    await expect(prepareSources(rb, work)).rejects.toThrow(/resolves to [0-9a-f]{40}, not the pinned/);
  });

  it('refuses an unpinned tag, and --trust-on-first-download records its commit in the runbook', async () => {
    const repo = makeRepo();
    const work = mkdtempSync(join(tmpdir(), 'ha-setup-rb-'));
    const rb = runbookWith({ git: repo.url, ref: 'v2', version: '2' }, work);
    await expect(prepareSources(rb, work)).rejects.toThrow(/is not held to a commit/);
    const { learned } = await prepareSources(rb, work, { trustOnFirstDownload: true });
    expect(learned).toEqual([{ id: 'ngx_cache_purge', version: '2', commit: repo.v2 }]);

    const file = join(work, 'rb.yaml');
    writeFileSync(file, `# my comment\n${readFileSync(new URL('../fixtures/valid.yaml', import.meta.url), 'utf8')}`);
    recordPinsInRunbook(file, learned);
    const text = readFileSync(file, 'utf8');
    expect(text).toContain('# my comment');
    expect(parse(text).sources.overrides.ngx_cache_purge).toMatchObject({ version: '2', commit: repo.v2 });
  });

  it('a fetch that fails names the source and says how to reach a git server', async () => {
    const work = mkdtempSync(join(tmpdir(), 'ha-setup-rb-'));
    const missing = join(work, 'no-such-repo');
    const rb = runbookWith({ git: `file://${missing}`, ref: 'v1', commit: 'a'.repeat(40), version: '1' }, work);
    await expect(prepareSources(rb, work)).rejects.toThrow(/cannot fetch ngx_cache_purge from file:\/\//);
    expect(existsSync(missing)).toBe(false);
  });
});

describe('property: no runbook string can start an option', () => {
  // A runbook with every optional string field present, so the walk reaches all of them.
  const full = () => {
    const r = fixture();
    r.ssh = {
      ...r.ssh,
      identityFile: '~/.ssh/id_ed25519',
      knownHostsFile: './known_hosts',
      sudoPasswordEnv: 'HA_SUDO',
    };
    Object.assign(r.nodes[0], { name: 'web1', user: 'deploy', interface: 'eth0' });
    r.sources = {
      mirror: '/srv/mirror',
      cacheDir: '/var/cache/ha',
      gitRewrite: { 'https://github.com/': 'git://10.0.0.1/' },
      overrides: {
        ngx_cache_purge: { version: '2.5.6', git: 'https://github.com/x/y.git', ref: 'v1', commit: 'a'.repeat(40) },
        openresty: { version: '1.27.1.2', url: 'https://example.com/o.tar.gz', sha256: 'b'.repeat(64) },
        'ngx-fancyindex': { path: './fancy.tar.gz' },
      },
    };
    r.site.include = { http: ['http.conf'], server: ['server.conf'], lua: ['lua'] };
    if (r.build.flavor === 'nginx' && !r.build.modules.includes('lua')) r.build.modules.push('lua');
    r.build.configureArgs = ['--with-http_sub_module'];
    return r;
  };
  const leaves: Array<Array<string | number>> = [];
  const walk = (v: unknown, path: Array<string | number>) => {
    if (typeof v === 'string') leaves.push(path);
    else if (Array.isArray(v)) for (const [i, x] of v.entries()) walk(x, [...path, i]);
    else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(x, [...path, k]);
  };
  walk(full(), []);
  // configure options are options by design (and must look like `--name[=value]`).
  const optionsByDesign = (p: Array<string | number>) => p[0] === 'build' && p[1] === 'configureArgs';

  it('covers the string fields', () => {
    expect(validateRunbook(full()).ok).toBe(true);
    expect(leaves.length).toBeGreaterThan(30);
  });

  it.each(['-x', '--upload-pack=touch /tmp/pwned', '-oProxyCommand=sh'])(
    'every string field set to %j is rejected at that field',
    (evil) => {
      const accepted: string[] = [];
      for (const path of leaves) {
        if (optionsByDesign(path)) continue;
        const r = full();
        let o: any = r;
        for (const k of path.slice(0, -1)) o = o[k];
        o[path[path.length - 1]] = evil;
        const v = validateRunbook(r);
        if (v.ok) accepted.push(path.join('.'));
      }
      expect(accepted).toEqual([]);
    },
  );

  it('configure arguments must be single options', () => {
    const r = full();
    r.build.configureArgs = ['--with-cc-opt=-O2 -g'];
    expect(validateRunbook(r).ok).toBe(true); // one argv word (quoted), whatever its value holds
    for (const bad of ['rm -rf /', '--with-x; rm -rf /', '-x']) {
      r.build.configureArgs = [bad];
      expect(validateRunbook(r).ok, bad).toBe(false);
    }
  });
});
