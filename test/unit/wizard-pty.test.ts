import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

// The wizard in a real pseudo-terminal (120x40, TERM=xterm-256color), typed into as a user would:
// what the stream-driven tests cannot show (raw mode, cursor, colour, Ctrl-C as a signal key).
// Runs the built CLI: `npm test` builds first.
const root = join(import.meta.dirname, '..', '..');
const bin = join(root, 'bin', 'ha-setup.js');
const driver = join(root, 'test', 'helpers', 'pty-session.py');
const ENTER = '\r';
const DOWN = '\u001b[B';
const BACKSPACE = '\u007f';
const CTRL_C = '\u0003';

function inTerminal(steps: Array<[string, string]>, env: Record<string, string> = {}, args: string[] = []) {
  if (!existsSync(join(root, 'dist', 'cli', 'main.js')))
    throw new Error('dist/ is missing: run `npm run build` (npm test does)');
  const cwd = mkdtempSync(join(tmpdir(), 'ha-setup-pty-'));
  // A home of its own: no ~/.ssh/config or agent of the machine running the tests leaks in.
  const r = spawnSync('python3', [driver, '120', '40', '--', process.execPath, bin, 'init', ...args], {
    cwd,
    input: JSON.stringify(steps),
    encoding: 'utf8',
    timeout: 120_000,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: cwd, LANG: 'C.UTF-8', ...env },
  });
  if (r.status !== 0) throw new Error(`pty driver failed: ${r.stderr}`);
  const out = JSON.parse(r.stdout) as {
    code: number | null;
    transcript: string;
    timedOut: { step: number; waitFor: string } | null;
  };
  // eslint-disable-next-line no-control-regex
  const text = out.transcript.replace(/\u001b\[[0-9;?]*[ -/]*[@-~]/g, '');
  return { ...out, text, cwd };
}

describe('wizard in a real terminal (pty, 120x40)', () => {
  it(
    'a wrong VIP is corrected in place, every default taken with Enter, the summary confirmed: ' +
      'the runbook is written',
    () => {
      const t = inTerminal([
        ['Cluster name', `edge${ENTER}`],
        ['Node addresses', `10.0.0.11, 10.0.0.12${ENTER}`],
        ['Which node is the master', ENTER],
        ['Priorities', ENTER],
        ['SSH user', ENTER],
        ['SSH port', ENTER],
        ['SSH private key', ENTER],
        ['Virtual IP', `10.9.9.9/24${ENTER}`],
        ["the VIP must share the nodes' subnet", `${BACKSPACE.repeat(11)}10.0.0.100/24${ENTER}`],
        ['Look up the first node', ENTER],
        ['Network interface', `eth0${ENTER}`],
        ['virtual router id', ENTER],
        ['VRRP version', ENTER],
        ['Customize tuning', ENTER],
        ['unicast', ENTER],
        ['preempt', ENTER],
        ['What to build', ENTER],
        ['Third-party modules', `${DOWN}${' '}${ENTER}`],
        ['Site listen port', ENTER],
        ['Upstream servers', ENTER],
        ['HTTPS on the VIP', ENTER],
        ['failover test', ENTER],
        ['Write runbooks/edge.yaml?', ENTER],
        ['wrote runbooks/edge.yaml', ''],
      ]);
      expect(t.timedOut, t.text.slice(-1500)).toBeNull();
      expect(t.code).toBe(0);
      const doc = parse(readFileSync(join(t.cwd, 'runbooks', 'edge.yaml'), 'utf8'));
      expect(doc.vrrp).toMatchObject({ vip: '10.0.0.100/24', interface: 'eth0', virtualRouterId: 100 });
      expect(doc.nodes).toEqual([
        { host: '10.0.0.11', role: 'master', priority: 100 },
        { host: '10.0.0.12', role: 'backup', priority: 90 },
      ]);
      expect(doc.build).toMatchObject({ flavor: 'openresty', version: '1.27.1.2', modules: ['cache-purge'] });
      // Modules are offered for the version that will be built (the note once said "openresty undefined").
      const note = /not offered for openresty 1\.27\.1\.2: [^\n]*/.exec(t.text)?.[0] ?? '';
      expect(note).toMatch(/: sticky \(does not compile/);
      expect(note).not.toContain('upstream-check');
      expect(t.text).toMatch(/◻ upstream-check: /);
      expect(t.text).toContain('common names: eth0');
      expect(t.transcript).toMatch(/\u001b\[3\dm/); // colour on a terminal
      // the cursor is shown again after the last prompt hid it
      expect(t.transcript.lastIndexOf('\u001b[?25h')).toBeGreaterThan(t.transcript.lastIndexOf('\u001b[?25l'));
    },
  );

  // A newcomer's trial: a VIP that is the broadcast address passed its question, failed the whole-runbook
  // check, and going back to it crashed ("--lookup-interface: --interface already names the interface",
  // exit 2, every answer lost). Now it is caught at its question, and going back keeps answers as answers.
  it(
    'the broadcast VIP is refused at its question; a problem only the whole runbook shows goes back to its ' +
      'question and keeps the rest',
    () => {
      const t = inTerminal(
        [
          ['Cluster name', `edge${ENTER}`],
          ['Node addresses', `10.0.0.11, 10.0.0.12${ENTER}`],
          ['Which node is the master', ENTER],
          ['Priorities', ENTER],
          ['SSH user', ENTER],
          ['SSH port', ENTER],
          ['SSH private key', ENTER],
          ['Virtual IP', `10.0.0.255/24${ENTER}`],
          ['network or broadcast address', `${BACKSPACE.repeat(13)}10.0.0.100/24${ENTER}`],
          ['Look up the first node', ENTER],
          ['Network interface', `eth0${ENTER}`],
          ['virtual router id', ENTER],
          ['VRRP version', ENTER],
          ['Customize tuning', ENTER],
          ['unicast', ENTER],
          ['preempt', ENTER],
          ['What to build', ENTER],
          ['Third-party modules', ENTER],
          ['Site listen port', ENTER],
          ['Upstream servers', ENTER],
          ['HTTPS on the VIP', ENTER],
          ['failover test', ENTER],
          // --check-weight 5 passed its own check; with priorities 100/90 it cannot flip the election.
          ['cannot flip the election', ''],
          ['Check weight', `${BACKSPACE.repeat(3)}-20${ENTER}`],
          ['Write runbooks/edge.yaml?', ENTER],
          ['wrote runbooks/edge.yaml', ''],
        ],
        {},
        ['--check-weight', '5'],
      );
      expect(t.timedOut, t.text.slice(-1500)).toBeNull();
      expect(t.code, t.text.slice(-800)).toBe(0);
      const doc = parse(readFileSync(join(t.cwd, 'runbooks', 'edge.yaml'), 'utf8'));
      expect(doc.keepalived.check.weight).toBe(-20);
      expect(doc.vrrp).toMatchObject({ vip: '10.0.0.100/24', interface: 'eth0' });
      expect(t.text).not.toContain('already names the interface');
    },
  );

  it('Ctrl-C at a question exits 130, writes nothing and gives the cursor back', () => {
    const t = inTerminal([
      ['Cluster name', `edge${ENTER}`],
      ['Node addresses', `10.0.0.11, 10.0.0.12${ENTER}`],
      ['Which node is the master', CTRL_C],
    ]);
    expect(t.timedOut).toBeNull();
    expect(t.code).toBe(130);
    expect(t.text).toMatch(/cancelled; nothing was written/);
    expect(existsSync(join(t.cwd, 'runbooks'))).toBe(false);
    expect(t.transcript.lastIndexOf('\u001b[?25h')).toBeGreaterThan(t.transcript.lastIndexOf('\u001b[?25l'));
  });

  it('NO_COLOR: the same terminal gets no colour codes', () => {
    const t = inTerminal([['Cluster name', CTRL_C]], { NO_COLOR: '1' });
    expect(t.code).toBe(130);
    expect(t.transcript).not.toMatch(/\u001b\[3\dm/);
  });
});
