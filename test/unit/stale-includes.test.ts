import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { wrapScript } from '../../src/engine/transport.js';
import { staleIncludesProbe, staleIncludesScript } from '../../src/steps/nginx-config.js';

// These scripts run on hosts under the transport's `set -euo pipefail`; run them the same way here.
function bash(script: string): number {
  try {
    execFileSync('bash', ['-c', wrapScript(script)], { stdio: 'pipe' });
    return 0;
  } catch (e) {
    return (e as { status: number }).status;
  }
}

function confDir(files: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'ha-conf-'));
  for (const f of files) {
    mkdirSync(join(dir, f, '..'), { recursive: true });
    writeFileSync(join(dir, f), 'x');
  }
  return dir;
}

const planned = (dir: string, rels: string[]) => rels.map((r) => ({ path: `${dir}/${r}`, content: '', mode: 0o644 }));

describe('stale include files', () => {
  it('a conf directory without any include file is not stale and cleaning it succeeds', () => {
    const dir = confDir(['nginx.conf', 'conf.d/ha-site.conf']);
    expect(bash(staleIncludesProbe(dir, ['nginx.conf', 'conf.d/ha-site.conf']))).toBe(0);
    expect(bash(staleIncludesScript(dir, planned(dir, ['nginx.conf', 'conf.d/ha-site.conf']), dir))).toBe(0);
    expect(existsSync(join(dir, 'ha-site.d'))).toBe(true);
  });

  it('keeps planned includes and Lua files, removes the ones no longer in the runbook', () => {
    const kept = ['nginx.conf', 'conf.d/site-http-a.conf', 'ha-site.d/b.conf', 'ha-lua/lab/greet.lua'];
    const gone = ['conf.d/site-http-old.conf', 'ha-site.d/old.conf', 'ha-lua/lab/old.lua'];
    const dir = confDir([...kept, ...gone]);
    expect(bash(staleIncludesProbe(dir, kept))).toBe(1);
    expect(bash(staleIncludesScript(dir, planned(dir, kept), dir))).toBe(0);
    for (const f of kept) expect(existsSync(join(dir, f)), f).toBe(true);
    for (const f of gone) expect(existsSync(join(dir, f)), f).toBe(false);
    expect(bash(staleIncludesProbe(dir, kept))).toBe(0);
  });

  it('the .bak copies writeFile keeps are neither stale nor removed', () => {
    const dir = confDir([
      'nginx.conf',
      'ha-lua/x.lua',
      'ha-lua/x.lua.ha-setup-20261125094119.bak',
      'conf.d/site-http-a.conf.ha-setup-20261125094119.bak',
    ]);
    expect(bash(staleIncludesProbe(dir, ['nginx.conf', 'ha-lua/x.lua']))).toBe(0);
    expect(bash(staleIncludesScript(dir, planned(dir, ['nginx.conf', 'ha-lua/x.lua']), dir))).toBe(0);
    expect(existsSync(join(dir, 'ha-lua/x.lua.ha-setup-20261125094119.bak'))).toBe(true);
  });

  it('only Lua files present (no .conf includes) are still checked', () => {
    const dir = confDir(['nginx.conf', 'ha-lua/x.lua']);
    expect(bash(staleIncludesProbe(dir, ['nginx.conf']))).toBe(1);
    expect(bash(staleIncludesProbe(dir, ['nginx.conf', 'ha-lua/x.lua']))).toBe(0);
  });
});
