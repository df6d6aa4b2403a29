import { dirname, join, resolve } from 'node:path';
import { runApply } from './apply.js';
import type { Command } from 'commander';
import { InvalidInputError, RunFailedError } from '../errors.js';
import { DEFAULT_LAB, LAB_DISTROS, labPaths, type LabDistro } from '../lab/config.js';
import { findLabNode, labDown, labStatus, labSshInteractive, labUp, readState } from '../lab/lab.js';
import { LAB_SOURCES, labRunbook } from '../lab/runbook.js';
import { runbookToYaml, writeFileAtomic } from '../runbook/io.js';
import { validateRunbook } from '../runbook/validate.js';
import { fillMirror } from '../sources/mirror.js';
import { existsSync, readFileSync } from 'node:fs';
import type { CliContext } from './context.js';

export function registerLab(program: Command, ctx: CliContext): void {
  const lab = program
    .command('lab')
    .description(
      'local lab: real Debian hosts (systemd, sshd, own IPs) in systemd-nspawn containers on this Linux machine',
    );

  lab
    .command('up')
    .description('create (or confirm) the lab and write runbooks/lab.yaml')
    .option('--nodes <n>', 'number of nodes: 2 or 3', String(DEFAULT_LAB.nodes))
    .option('--distro <name>', `node distribution: ${LAB_DISTROS.join(' or ')}`, DEFAULT_LAB.distro)
    .option('--subnet <cidr>', 'lab subnet (bridge .1, nodes .11-.13, VIP .100)', DEFAULT_LAB.subnet)
    .option('--out <path>', 'where to write the lab runbook', join('runbooks', 'lab.yaml'))
    .option('--no-download', "fill the source mirror from Debian's source archive only (no official URLs)")
    .action(async (opts: { nodes: string; distro: string; subnet: string; out: string; download: boolean }) => {
      const started = Date.now();
      const { state, changed } = await labUp(
        { nodes: Number(opts.nodes), distro: opts.distro as LabDistro, subnet: opts.subnet },
        ctx.print,
      );
      const paths = labPaths();
      await fillMirror(paths.sourcesDir, LAB_SOURCES, { download: opts.download, log: ctx.print });
      const doc = labRunbook(state, paths);
      const check = validateRunbook(doc);
      if (!check.ok)
        throw new RunFailedError(
          'internal: the lab runbook does not validate',
          check.problems.map((p) => `${p.path}: ${p.message}`),
        );
      const out = resolve(ctx.cwd, opts.out);
      const yaml = runbookToYaml(doc);
      if (!existsSync(out) || readFileSync(out, 'utf8') !== yaml) writeFileAtomic(out, yaml);
      ctx.print(
        changed ? `lab is up in ${((Date.now() - started) / 1000).toFixed(1)}s` : 'lab is already up (nothing changed)',
      );
      for (const n of state.nodes) ctx.print(`  ${n.name}  ${n.ip}`);
      ctx.print(`  VIP ${state.vip}/${state.prefix} on host0, bridge ${state.bridge} ${state.bridgeIp}`);
      ctx.print(`runbook: ${out}`);
      ctx.print(
        `next:    ha-setup apply ${opts.out}    (ha-setup lab ssh node1 for a shell, ha-setup lab down to remove it)`,
      );
      ctx.result = 0;
    });

  lab
    .command('demo')
    .description(
      'the whole job on the embedded default: lab up, apply runbooks/lab.yaml (with the failover test), docs',
    )
    .option('--nodes <n>', 'number of nodes: 2 or 3', String(DEFAULT_LAB.nodes))
    .option('--no-download', "fill the source mirror from Debian's source archive only (no official URLs)")
    .action(async (opts: { nodes: string; download: boolean }) => {
      const started = Date.now();
      const { state } = await labUp({ ...DEFAULT_LAB, nodes: Number(opts.nodes) }, ctx.print);
      const paths = labPaths();
      await fillMirror(paths.sourcesDir, LAB_SOURCES, { download: opts.download, log: ctx.print });
      const out = resolve(ctx.cwd, 'runbooks', 'lab.yaml');
      writeFileAtomic(out, runbookToYaml(labRunbook(state, paths)));
      ctx.print(`lab is up; applying ${out}`);
      const code = await runApply(out, { renderer: ctx.interactive ? 'default' : 'simple' }, ctx);
      ctx.print('');
      ctx.print(`done in ${((Date.now() - started) / 1000).toFixed(0)} s. Look around:`);
      ctx.print(`  handover doc:  ${join(dirname(out), 'lab.handover.md')}`);
      ctx.print(`  the site:      curl http://${state.vip}/ha-health   (answers the VIP holder's name)`);
      ctx.print('  cluster state: ha-setup status runbooks/lab.yaml');
      ctx.print('  a failover:    ha-setup verify runbooks/lab.yaml --scenario nginx-stop');
      ctx.print('  a node shell:  ha-setup lab ssh node1');
      ctx.print('  clean up:      ha-setup lab down');
      ctx.result = code;
    });

  lab
    .command('down')
    .description('stop the nodes and remove bridge, NAT rules, forwarding change, mounts and node state')
    .action(async () => {
      await labDown(ctx.print);
      ctx.result = 0;
    });

  lab
    .command('status')
    .description('show the lab nodes and whether they answer')
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }) => {
      const { state, nodes } = await labStatus();
      if (opts.json) ctx.print(JSON.stringify({ up: Boolean(state), nodes }, null, 2));
      else if (!state) ctx.print('no lab is up (ha-setup lab up)');
      else
        for (const n of nodes)
          ctx.print(
            `${n.name}  ${n.ip}  ${n.running ? 'running' : 'stopped'}  ` +
              `ssh:${n.ssh ? 'ok' : 'no'}  systemd:${n.systemd}`,
          );
      ctx.result = state && nodes.every((n) => n.ssh) ? 0 : 1;
    });

  lab
    .command('ssh')
    .description('open a shell (or run a command) on a lab node: name, number or address')
    .argument('<node>', 'node1, 2, 10.213.0.12 ...')
    .argument('[command...]', 'command to run instead of a shell')
    .action(async (which: string, command: string[]) => {
      const state = readState(labPaths());
      if (!state) throw new InvalidInputError('no lab is up', ['run `ha-setup lab up` first']);
      const node = findLabNode(state, which);
      if (!node)
        throw new InvalidInputError(`no lab node "${which}"`, [`nodes: ${state.nodes.map((n) => n.name).join(', ')}`]);
      ctx.result = await labSshInteractive(labPaths(), node, command);
    });

  lab
    .command('sources')
    .description('fill the offline source mirror with the pinned tarballs the lab runbook uses')
    .option('--dir <path>', 'mirror directory', labPaths().sourcesDir)
    .option('--no-download', "use Debian's source archive only (no official URLs)")
    .action(async (opts: { dir: string; download: boolean }) => {
      const files = await fillMirror(resolve(ctx.cwd, opts.dir), LAB_SOURCES, {
        download: opts.download,
        log: ctx.print,
      });
      for (const [id, f] of Object.entries(files)) ctx.print(`${id}: ${f}`);
      ctx.result = 0;
    });
}
