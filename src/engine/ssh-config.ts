import { expandTilde } from '../paths.js';

import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

// Just enough of ssh_config(5) for ha-setup: Host patterns (with * ? and !negation), HostName,
// User, Port, IdentityFile, IdentityAgent. As in OpenSSH, the first value found for a key wins.

export { expandTilde };

export interface SshHostConfig {
  hostName?: string;
  user?: string;
  port?: number;
  identityFiles: string[];
  identityAgent?: string;
}

function patternMatches(pattern: string, host: string): boolean {
  const re = new RegExp(
    `^${pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
    'i',
  );
  return re.test(host);
}

function hostMatches(patterns: string[], host: string): boolean {
  let matched = false;
  for (const p of patterns) {
    if (p.startsWith('!')) {
      if (patternMatches(p.slice(1), host)) return false;
    } else if (patternMatches(p, host)) matched = true;
  }
  return matched;
}

export function parseSshConfig(text: string, host: string, home = homedir()): SshHostConfig {
  const out: SshHostConfig = { identityFiles: [] };
  let active = true; // options before the first Host line apply to every host
  for (const rawLine of text.split('\n')) {
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(\S+?)\s*(?:=\s*|\s+)(.+)$/.exec(line);
    if (!m) continue;
    const key = m[1].toLowerCase();
    const value = m[2].replace(/^"(.*)"$/, '$1');
    if (key === 'host') {
      active = hostMatches(value.split(/\s+/), host);
      continue;
    }
    if (key === 'match') {
      active = false; // Match blocks are not supported; ignore them rather than guess
      continue;
    }
    if (!active) continue;
    if (key === 'hostname' && out.hostName === undefined) out.hostName = value.replace(/%h/g, host);
    else if (key === 'user' && out.user === undefined) out.user = value;
    else if (key === 'port' && out.port === undefined) out.port = Number(value);
    else if (key === 'identityfile') out.identityFiles.push(expandTilde(value, home));
    else if (key === 'identityagent' && out.identityAgent === undefined) out.identityAgent = expandTilde(value, home);
  }
  return out;
}

export function sshConfigFor(host: string, home = homedir()): SshHostConfig {
  const file = join(home, '.ssh', 'config');
  return existsSync(file) ? parseSshConfig(readFileSync(file, 'utf8'), host, home) : { identityFiles: [] };
}
