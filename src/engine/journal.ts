import { existsSync, mkdirSync, readFileSync, writeFileSync, renameSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Transport } from './transport.js';

export const REMOTE_JOURNAL = '/var/lib/ha-setup/journal.json';

export interface JournalEntry {
  fingerprint: string;
  status: 'running' | 'done' | 'failed';
  startedAt: string;
  endedAt?: string;
  durationMs?: number;
  commands?: string[];
  files?: string[];
}

export interface Journal {
  version: 1;
  runbook: string;
  steps: Record<string, JournalEntry>;
}

export function parseJournal(text: string, runbook: string): Journal {
  try {
    const j = JSON.parse(text) as Journal;
    if (j && j.version === 1 && typeof j.steps === 'object') return j;
  } catch {
    // unreadable: start afresh (every step's check still decides from the host)
  }
  return { version: 1, runbook, steps: {} };
}

/** Host copy first (the truth for resume), then the local mirror next to the runbook. */
export async function saveJournal(t: Transport, journal: Journal, localPath: string): Promise<void> {
  const json = JSON.stringify(journal, null, 1);
  // Over SFTP, never through a command's stdin (which sudo shares); root only, no .bak copies.
  await t.writeFile(REMOTE_JOURNAL, json, { mode: 0o600, backup: false });
  mirrorJournal(journal, localPath);
}

/** The local mirror next to the runbook (what `docs` lists per node), written from the host's copy. */
export function mirrorJournal(journal: Journal, localPath: string): void {
  mkdirSync(dirname(localPath), { recursive: true });
  writeFileSync(`${localPath}.tmp`, JSON.stringify(journal, null, 1));
  renameSync(`${localPath}.tmp`, localPath);
}

export function readLocalJournal(localPath: string, runbook: string): Journal | undefined {
  return existsSync(localPath) ? parseJournal(readFileSync(localPath, 'utf8'), runbook) : undefined;
}
