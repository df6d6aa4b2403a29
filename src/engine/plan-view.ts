import type { Runbook } from '../runbook/schema.js';
import { secretUses } from '../runbook/secrets.js';
import { emptySiteFiles, type SiteFiles } from '../runbook/site-files.js';
import { requiredSources } from '../runbook/derived.js';
import { mirrorFileName } from '../sources/mirror.js';
import { gitArchiveName, sourceCacheDir, sourceSpec } from '../sources/spec.js';
import { unpinnedSources } from '../runbook/release-rules.js';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { assumedFacts, type Facts } from './facts.js';
import { resolveNodes, appliesTo } from './nodes.js';
import type { LocalSource, PlanContext, ResolvedNode, Step, StepPlan } from './types.js';

export type StepStatus = { label: 'done' | 'will run' | 'will re-run'; why?: string };

export interface PlannedStep {
  step: Step;
  plan: StepPlan;
  status: StepStatus;
}

/** Sources as the plan sees them without fetching anything: pinned checksums only. */
export function offlineSources(
  rb: Runbook,
  opts: { useCache?: boolean; families?: string[] } = {},
): Record<string, LocalSource> {
  const out: Record<string, LocalSource> = {};
  const refs = [requiredSources(rb), ...(opts.families ?? []).map((f) => requiredSources(rb, f))].flat();
  for (const ref of refs) {
    const spec = sourceSpec(rb, ref);
    if (spec.kind === 'git') {
      const commit = spec.commit ?? 'unpinned';
      // The archive of a pinned commit is in the cache after the first apply: its checksum is what
      // the nodes recorded, so a connected plan compares like with like.
      const cached = join(sourceCacheDir(rb), gitArchiveName(ref, commit));
      const sha256 =
        opts.useCache && spec.commit && existsSync(cached)
          ? createHash('sha256').update(readFileSync(cached)).digest('hex')
          : `git:${commit}`;
      out[ref.id] = {
        id: ref.id,
        version: ref.version,
        path: `(control machine)/${gitArchiveName(ref, commit)}`,
        sha256,
        git: { url: spec.url, fetchedFrom: spec.fetchFrom, ref: spec.ref, commit },
      };
    } else {
      out[ref.id] = {
        id: ref.id,
        version: ref.version,
        path: `(control machine)/${mirrorFileName(ref)}`,
        sha256: spec.sha256 ?? 'unpinned',
      };
    }
  }
  return out;
}

export function planContexts(
  rb: Runbook,
  factsFor: (n: ResolvedNode) => Facts,
  sources: Record<string, LocalSource>,
  siteFiles: SiteFiles = emptySiteFiles(),
): PlanContext[] {
  const nodes = resolveNodes(rb);
  const clusterFacts = Object.fromEntries(nodes.map((n) => [n.name, factsFor(n)]));
  return nodes.map((node) => ({
    runbook: rb,
    node,
    cluster: nodes,
    facts: clusterFacts[node.name],
    sources,
    clusterFacts,
    siteFiles,
  }));
}

export function offlinePlan(
  rb: Runbook,
  steps: Step[],
  release = 'debian12',
  siteFiles: SiteFiles = emptySiteFiles(),
): Array<{ pc: PlanContext; steps: PlannedStep[] }> {
  return planContexts(
    rb,
    () => assumedFacts(release),
    offlineSources(rb, { families: [assumedFacts(release).family] }),
    siteFiles,
  ).map((pc) => ({
    pc,
    steps: steps
      .filter((s) => appliesTo(s, pc.node))
      .map((step) => ({ step, plan: step.plan(pc), status: { label: 'will run' as const } })),
  }));
}

const indent = (text: string, prefix: string) =>
  text
    .split('\n')
    .map((l) => (l === '' ? prefix.trimEnd() : prefix + l))
    .join('\n');

/** Text form of a plan: used by `ha-setup plan` and by the golden-file tests. */
export function renderPlanText(
  nodes: Array<{ pc: PlanContext; steps: PlannedStep[] }>,
  opts: { fileContents: boolean; ownLuaByHash?: boolean },
): string {
  const out: string[] = [];
  for (const { pc, steps } of nodes) {
    out.push(
      `== ${pc.node.name} (${pc.node.host}, ${pc.node.role}, priority ${pc.node.priority}, ${pc.facts.release})`,
    );
    for (const { step, plan, status } of steps) {
      out.push(`-- [${status.label}] ${step.id}: ${step.title}${status.why ? ` (because ${status.why})` : ''}`);
      for (const n of plan.notes) out.push(`   # ${n}`);
      for (const u of plan.uploads) out.push(`   upload ${u.remote} (sha256 ${u.sha256})`);
      for (const f of plan.files) {
        out.push(`   file ${f.path} (mode ${f.mode.toString(8)}${f.owner ? `, owner ${f.owner}` : ''})`);
        // ha-setup's own Lua ships verbatim: its name and hash say which version (its logic has its own tests).
        const own =
          opts.ownLuaByHash &&
          /\/ha-gateway\/ha_gateway\/[a-z_]+\.lua$/.test(f.path) &&
          !f.path.endsWith('/config.lua');
        if (own)
          out.push(
            `   | (src/lua/ha_gateway/${f.path.split('/').pop()}, ` +
              `sha256 ${createHash('sha256').update(f.content).digest('hex').slice(0, 16)})`,
          );
        else if (opts.fileContents) out.push(indent(f.content.trimEnd(), '   | '));
      }
      for (const c of plan.commands) out.push(indent(c, '   $ '));
    }
    out.push('');
  }
  return out.join('\n');
}

export interface PlanReviewOptions {
  fileContents: boolean;
  /** Where the OS of each node came from: the host itself, or --offline --os. */
  osSource: 'observed' | 'assumed';
  runbookPath: string;
  /** Terminal colour for the status labels. */
  colour?: (label: StepStatus['label'], text: string) => string;
  width?: number;
}

const KEEPALIVED_KEYS = [
  'state',
  'interface',
  'virtual_router_id',
  'priority',
  'advert_int',
  'nopreempt',
  'unicast_src_ip',
  'version',
  'vrrp_version',
  String.raw`\d+\.\d+\.\d+\.\d+\/\d+ dev`,
];

/** Directives a reviewer checks in each kind of file, shown by default (the whole file with --contents). */
const KEY_LINES: Array<[RegExp, RegExp]> = [
  [/keepalived\.conf$/, new RegExp(String.raw`^\s*(${KEEPALIVED_KEYS.join('|')})\b.*$|^\s*\d+\.\d+\.\d+\.\d+\s*$`)],
  [
    /\/conf\/(nginx\.conf|conf\.d\/[^/]+\.conf)$/,
    /^\s*(listen|server_name|server\s+\S+|upstream\s+\S+|proxy_pass|worker_processes|include)\b.*$/,
  ],
  [/\.service$/, /^\s*(Type|PIDFile|ExecStart|ExecReload|LimitNOFILE|Restart)=.*$/],
];

export function keyValues(path: string, content: string): string[] {
  const rule = KEY_LINES.find(([file]) => file.test(path));
  if (!rule) return [];
  return [
    ...new Set(
      content
        .split('\n')
        .filter((l) => rule[1].test(l) && !l.trim().startsWith('#'))
        .map((l) => l.trim().replace(/;$/, '')),
    ),
  ];
}

/**
 * Wrap a long shell line at spaces outside quotes with a backslash continuation: the wrapped text
 * is still the same command when pasted.
 */
export function wrapCommand(line: string, width: number): string[] {
  if (line.length <= width) return [line];
  const out: string[] = [];
  let rest = line;
  while (rest.length > width) {
    let quote = '';
    let cut = -1;
    // A long single-quoted word (configure arguments) is cut at a space inside it: `'a b '\` then
    // `'c d'` on the next line, unindented, is the same word once the shell joins the lines.
    // Only a word that could never fit on a line is cut.
    let cutInQuote = -1;
    let quoteStart = -1;
    for (let i = 0; i < Math.min(rest.length, width); i++) {
      const ch = rest[i];
      if (quote) {
        if (ch === quote) quote = '';
        else if (
          ch === ' ' &&
          i > 20 &&
          i < width - 2 &&
          !(quote === '"' && rest.slice(quoteStart, i).includes('\\'))
        ) {
          const end = rest.indexOf(quote, i);
          if ((end < 0 ? rest.length : end) - quoteStart + 1 > width - 4) cutInQuote = i;
        }
        continue;
      }
      if (ch === "'" || ch === '"') {
        quote = ch;
        quoteStart = i;
      } else if (ch === ' ' && i > 20 && i <= width - 2) cut = i; // room for ' \'
    }
    if (cut < 0 && cutInQuote > 0) {
      const q = rest[quoteStart];
      out.push(`${rest.slice(0, cutInQuote + 1)}${q}\\`);
      rest = `${q}${rest.slice(cutInQuote + 1)}`;
      continue;
    }
    if (cut < 0) break;
    out.push(`${rest.slice(0, cut)} \\`);
    rest = `    ${rest.slice(cut + 1)}`;
  }
  out.push(rest);
  return out;
}

function wrapText(text: string, width: number): string[] {
  const out: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && line.length + 1 + word.length > width) {
      out.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  out.push(line);
  return out;
}

function stepBody(plan: StepPlan, opts: PlanReviewOptions): string[] {
  const width = (opts.width ?? 120) - 5;
  const out: string[] = [];
  for (const n of plan.notes) out.push(...wrapText(n, width).map((l, i) => `   #${i ? '   ' : ' '}${l}`));
  // The full checksum is in the notes above; the upload line names it.
  for (const u of plan.uploads) {
    const sum = u.sha256.startsWith('git:') ? u.sha256.slice(0, 16) : `sha256 ${u.sha256.slice(0, 12)}`;
    out.push(`   upload ${u.remote} (${sum}…)`);
  }
  for (const f of plan.files) {
    out.push(`   file ${f.path} (mode ${f.mode.toString(8)}${f.owner ? `, owner ${f.owner}` : ''})`);
    if (opts.fileContents) out.push(indent(f.content.trimEnd(), '   | '));
    else for (const k of keyValues(f.path, f.content)) out.push(`   = ${k}`);
  }
  for (const c of plan.commands)
    for (const l of c.split('\n')) out.push(...wrapCommand(l, width).map((w, i) => `   ${i ? ' ' : '$'} ${w}`));
  return out;
}

/** Sources a reviewer must notice: no pin means apply refuses them (or trusts them on first download). */
export function planWarnings(nodes: Array<{ pc: PlanContext }>): string[] {
  if (!nodes[0]) return [];
  const families = [...new Set(nodes.map((n) => n.pc.facts.family))];
  return unpinnedSources(nodes[0].pc.runbook, families).map(
    (s) => `source ${s.id} ${s.version} has no pin (${s.where}): apply refuses it unless --trust-on-first-download`,
  );
}

/**
 * `ha-setup plan` as a document to review before apply: a header (runbook, nodes, where their OS
 * came from), a summary per node, warnings, then each step once when it is the same on every node
 * and per node where it differs, with the key values of every file.
 */
export function renderPlanReview(
  nodes: Array<{ pc: PlanContext; steps: PlannedStep[] }>,
  opts: PlanReviewOptions,
): string {
  const colour = opts.colour ?? ((_l, t) => t);
  const rb = nodes[0]?.pc.runbook;
  const out: string[] = [];
  if (!rb) return 'no nodes selected\n';
  out.push(
    `plan for ${opts.runbookPath} (runbook "${rb.name}")`,
    `  ${rb.build.flavor} ${rb.build.version}, keepalived ${rb.keepalived.version}, ` +
      `VIP ${rb.vrrp.vip} on ${rb.vrrp.interface}, VRID ${rb.vrrp.virtualRouterId}`,
  );
  for (const { pc } of nodes) {
    out.push(
      `  ${pc.node.name.padEnd(10)} ${pc.node.host.padEnd(15)} ${pc.node.role.padEnd(6)} ` +
        `priority ${String(pc.node.priority).padEnd(4)} ${pc.facts.release} ` +
        `(${opts.osSource === 'observed' ? 'observed on the host' : 'assumed: --offline'})`,
    );
  }
  const count = (steps: PlannedStep[], label: StepStatus['label']) =>
    steps.filter((s) => s.status.label === label).length;
  out.push('summary:');
  for (const { pc, steps } of nodes) {
    const rerun = steps.filter((s) => s.status.label === 'will re-run').map((s) => `${s.step.id} (${s.status.why})`);
    const counts = `${count(steps, 'will run')} will run, ${count(steps, 'done')} done`;
    const reruns = `${count(steps, 'will re-run')} will re-run${rerun.length ? `: ${rerun.join('; ')}` : ''}`;
    out.push(`  ${pc.node.name}: ${counts}, ${reruns}`);
  }
  const warnings = planWarnings(nodes);
  for (const w of warnings) out.push(`warning: ${w}`);
  // Which variable goes where: a reviewer sees every host a secret is sent to (never the value).
  const secrets = secretUses(rb);
  if (secrets.length > 0) out.push('secrets (values never shown):');
  for (const s of secrets) out.push(`  ${s.file ? `file ${s.file}` : s.name} (${s.field}) -> ${s.goesTo}`);
  out.push('');
  const ids = [...new Set(nodes.flatMap((n) => n.steps.map((s) => s.step.id)))];
  for (const id of ids) {
    const variants = new Map<string, { names: string[]; s: PlannedStep }>();
    for (const n of nodes) {
      const s = n.steps.find((x) => x.step.id === id);
      if (!s) continue;
      const key = JSON.stringify([s.status, stepBody(s.plan, opts)]);
      const v = variants.get(key) ?? { names: [], s };
      v.names.push(n.pc.node.name);
      variants.set(key, v);
    }
    const all = variants.size === 1 && [...variants.values()][0].names.length === nodes.length;
    for (const { names, s } of variants.values()) {
      const where = all ? (nodes.length > 1 ? 'every node' : names[0]) : names.join(', ');
      out.push(
        `-- ${colour(s.status.label, `[${s.status.label}]`)} ${s.step.id}: ${s.step.title} [${where}]` +
          (s.status.why ? ` (because ${s.status.why})` : ''),
      );
      out.push(...stepBody(s.plan, opts));
    }
  }
  out.push('');
  return out.join('\n');
}

/** `plan --json`: the same facts for a machine. */
export function planJson(
  nodes: Array<{ pc: PlanContext; steps: PlannedStep[] }>,
  osSource: 'observed' | 'assumed',
  runbookPath: string,
): unknown {
  return {
    runbook: runbookPath,
    name: nodes[0]?.pc.runbook.name,
    warnings: planWarnings(nodes),
    secrets: nodes[0]
      ? secretUses(nodes[0].pc.runbook).map(({ name, field, goesTo }) => ({ name, field, goesTo }))
      : [],
    nodes: nodes.map(({ pc, steps }) => ({
      name: pc.node.name,
      host: pc.node.host,
      role: pc.node.role,
      priority: pc.node.priority,
      os: pc.facts.release,
      osSource,
      steps: steps.map(({ step, plan, status }) => ({
        id: step.id,
        title: step.title,
        status: status.label,
        why: status.why ?? null,
        commands: plan.commands,
        notes: plan.notes,
        uploads: plan.uploads.map((u) => ({ remote: u.remote, sha256: u.sha256 })),
        files: plan.files.map((f) => ({
          path: f.path,
          mode: f.mode.toString(8),
          sha256: createHash('sha256').update(f.content).digest('hex'),
          keyValues: keyValues(f.path, f.content),
        })),
      })),
    })),
  };
}
