import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '..', '..');

describe('npm package', () => {
  it('npm pack, npm install <tarball> in an empty folder, npx ha-setup --help', () => {
    const packDir = mkdtempSync(join(tmpdir(), 'ha-setup-pack-'));
    execFileSync('npm', ['pack', '--pack-destination', packDir], { cwd: root, stdio: 'pipe' });
    const tarball = readdirSync(packDir).find((f) => f.endsWith('.tgz'));
    expect(tarball).toBeDefined();

    const app = mkdtempSync(join(tmpdir(), 'ha-setup-install-'));
    execFileSync('npm', ['init', '-y'], { cwd: app, stdio: 'pipe' });
    execFileSync('npm', ['install', '--no-audit', '--no-fund', join(packDir, tarball!)], { cwd: app, stdio: 'pipe' });
    const help = execFileSync('npx', ['ha-setup', '--help'], { cwd: app, encoding: 'utf8' });
    expect(help).toMatch(/Usage: ha-setup/);
    expect(help).toMatch(/validate/);
    // Templates and data files ship with the package: validate needs the module catalog.
    const version = execFileSync('npx', ['ha-setup', '--version'], { cwd: app, encoding: 'utf8' });
    expect(version.trim()).toMatch(/^\d+\.\d+\.\d+$/);
    // What a publishable package carries: the licence, the example runbooks (valid as shipped); no
    // source maps (src/*.ts is not shipped) and no install-time script for npm to warn about.
    const pkg = join(app, 'node_modules', 'ha-setup');
    expect(readdirSync(pkg)).toEqual(expect.arrayContaining(['LICENSE', 'README.md', 'CHANGELOG.md']));
    // The JSON Schema editors are pointed at ships too.
    expect(JSON.parse(readFileSync(join(pkg, 'schema', 'runbook.v1.schema.json'), 'utf8')).title).toBe(
      'ha-setup runbook (v1)',
    );
    const examples = readdirSync(join(pkg, 'runbooks')).filter((f) => f.startsWith('example-'));
    expect(examples.length).toBeGreaterThanOrEqual(3);
    for (const ex of examples)
      execFileSync('npx', ['ha-setup', 'validate', join(pkg, 'runbooks', ex)], { cwd: app, encoding: 'utf8' });
    // The gateway's Lua ships with the package: its plan lists every module file.
    const gw = execFileSync(
      'npx',
      ['ha-setup', 'plan', join(pkg, 'runbooks', 'example-gateway.yaml'), '--offline', '--os', 'debian12'],
      { cwd: app, encoding: 'utf8' },
    );
    expect(gw).toContain('file /usr/local/nginx/conf/ha-gateway/ha_gateway/balancer.lua');
    const files = (dir: string): string[] =>
      readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : [e.name]));
    expect(files(join(pkg, 'dist')).filter((f) => f.endsWith('.map'))).toEqual([]);
    expect(JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8')).scripts?.prepare).toBeUndefined();
  }, 300_000);
});
