import type { Command } from 'commander';
import type { CliContext } from './context.js';

type Register = (program: Command, ctx: CliContext) => void;

/**
 * The command table. Each command's module (and what it imports: the engine, zod, ssh, listr...) is
 * loaded only when that command runs or its help is asked for: `ha-setup --version` and `--help`
 * load none of them. `summary` and `usage` stand in for the command in the top-level help.
 */
export const COMMANDS: Array<{ name: string; usage: string; summary: string; load: () => Promise<Register> }> = [
  {
    name: 'init',
    usage: '[options]',
    summary: 'guided wizard: ask for the cluster and write runbooks/<name>.yaml',
    load: async () => (await import('./init.js')).registerInit,
  },
  {
    name: 'validate',
    usage: '[options] <runbook>',
    summary:
      'check a runbook (schema, cross-field rules, source pins; ' +
      "with --os the nodes' release) without contacting any host",
    load: async () => (await import('./validate.js')).registerValidate,
  },
  {
    name: 'plan',
    usage: '[options] <runbook>',
    summary: 'dry run: per node, each step with its status and the exact commands and files; changes nothing',
    load: async () => (await import('./plan.js')).registerPlan,
  },
  {
    name: 'apply',
    usage: '[options] <runbook>',
    summary: 'execute the runbook on every node over SSH (resumable: run it again after a failure)',
    load: async () => (await import('./apply.js')).registerApply,
  },
  {
    name: 'verify',
    usage: '[options] <runbook>',
    summary: 'measured VIP failover test: by default the zero-loss planned move and back; crash scenarios only by name',
    load: async () => (await import('./verify.js')).registerVerify,
  },
  {
    name: 'failover',
    usage: '[options] <runbook>',
    summary: 'planned maintenance: move the VIP away from its holder (to --to) before stopping anything there',
    load: async () => (await import('./verify.js')).registerFailover,
  },
  {
    name: 'rollback',
    usage: '[options] <runbook>',
    summary: 'bring the previous nginx build back (sbin/nginx.old), one node at a time with the VIP moved away first',
    load: async () => (await import('./verify.js')).registerRollback,
  },
  {
    name: 'status',
    usage: '[options] <runbook>',
    summary: 'per node: reachable, nginx active, keepalived state, VIP holder, versions, last verification',
    load: async () => (await import('./verify.js')).registerStatus,
  },
  {
    name: 'docs',
    usage: '<runbook>',
    summary: 'write the handover document runbooks/<name>.handover.md',
    load: async () => (await import('./docs.js')).registerDocs,
  },
  {
    name: 'gray',
    usage: '[options] <runbook> [action] [value]',
    summary: 'gray release rules in Redis (site.gray): which clients the canary upstream gets',
    load: async () => (await import('./gray.js')).registerGray,
  },
  {
    name: 'lab',
    usage: '[command]',
    summary: 'local lab: real Debian hosts (systemd, sshd, own IPs) in systemd-nspawn containers on this Linux machine',
    load: async () => (await import('./lab.js')).registerLab,
  },
  {
    name: 'completion',
    usage: '<shell>',
    summary: 'print a shell completion script: eval "$(ha-setup completion bash)" (or zsh) in your shell\'s rc file',
    load: async () => (await import('./completion.js')).registerCompletion,
  },
];
