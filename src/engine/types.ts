import type { Runbook } from '../runbook/schema.js';
import type { SiteFiles } from '../runbook/site-files.js';
import type { Facts } from './facts.js';
import type { Transport } from './transport.js';

export interface ResolvedNode {
  index: number;
  /** Stable name: the runbook's `name`, else derived from the host. */
  name: string;
  host: string;
  role: 'master' | 'backup';
  priority: number;
  interface: string;
  user: string;
  port: number;
}

export interface PlannedFile {
  path: string;
  content: string;
  mode: number;
  owner?: string;
  group?: string;
}

export interface PlannedUpload {
  local: string;
  remote: string;
  sha256: string;
  mode: number;
}

/** What a step will do on one node: the exact commands and files. Also its fingerprint input. */
export interface StepPlan {
  files: PlannedFile[];
  uploads: PlannedUpload[];
  commands: string[];
  /** Human notes for `plan` output and docs (e.g. the recorded configure arguments). */
  notes: string[];
}

/** A source tarball prepared on the control machine, ready to upload. */
export interface LocalSource {
  id: string;
  version: string;
  path: string;
  sha256: string;
  /** Set for sources cloned from git: what was asked for and what was built (run record, docs). */
  git?: GitOrigin;
}

export interface GitOrigin {
  /** The URL as the catalog or runbook names it. */
  url: string;
  /** Where it was really fetched from, after sources.gitRewrite. */
  fetchedFrom: string;
  ref: string;
  commit: string;
}

export interface PlanContext {
  runbook: Runbook;
  node: ResolvedNode;
  cluster: ResolvedNode[];
  facts: Facts;
  /** Sources resolved on the control machine, by source id. */
  sources: Record<string, LocalSource>;
  /** Facts of every node in this run, by node name (clock skew, peers). */
  clusterFacts: Record<string, Facts>;
  /** Contents of the runbook's site.include files, read on the control machine (by runbook path). */
  siteFiles?: SiteFiles;
}

export interface StepContext extends PlanContext {
  t: Transport;
  plan: StepPlan;
  /** Shows a line of progress in the task list. */
  progress: (line: string) => void;
  /** Secret values by environment variable name, substituted into files at write time only. */
  secrets: Record<string, string>;
  /** Records a warning shown in the summary (the step still succeeds). */
  warn: (message: string) => void;
}

/** What a step's check may look at: the plan and the secrets its files are written with, no host. */
export type CheckContext = PlanContext & Pick<StepContext, 'plan' | 'secrets'>;

export type AppliesTo = 'all' | 'master' | 'backups';

export interface Step {
  id: string;
  title: string;
  appliesTo: AppliesTo;
  /** Steps whose re-run makes this one re-run (order itself comes from the steps array). */
  dependsOn: string[];
  plan(pc: PlanContext): StepPlan;
  /**
   * Is it done already, judged from the host itself (not only from the journal)? A read-only shell
   * script that exits 0 when it is. Pure: the engine runs it, batched with the other steps' checks
   * in one round trip per node.
   */
  check(ctx: CheckContext): string;
  /** Defaults to: write files, upload, run commands in order. */
  run?(ctx: StepContext): Promise<void>;
  /** Runs always (never skipped by the journal), e.g. preflight. */
  always?: boolean;
  /**
   * Changes nothing another step checks (preflight: it reads, at most adds diagnostic tools): no journal entry, and the
   * checks made before it still hold.
   */
  readOnly?: boolean;
  /**
   * Running it on a serving node interrupts traffic there (stops or restarts nginx or keepalived,
   * replaces what they run). The engine, not the step, decides the order: on a serving cluster such
   * steps run one node at a time, the VIP moved away from a node first.
   */
  disruptive?: boolean | ((pc: PlanContext) => boolean);
  /**
   * Compiles (takes every core of the node for minutes). `apply --build-concurrency N` lets at most N
   * nodes run such steps at the same time.
   */
  compiles?: boolean | ((pc: PlanContext) => boolean);
}

export const emptyPlan = (): StepPlan => ({ files: [], uploads: [], commands: [], notes: [] });

/** Placeholder for a secret inside planned file content; replaced only when the file is written. */
export const secretRef = (envName: string) => `@@secret:${envName}@@`;
