import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync } from 'node:fs';
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
  }, 300_000);
});
