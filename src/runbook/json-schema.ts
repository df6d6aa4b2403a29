import { join } from 'node:path';
import { z } from 'zod';
import { packageRoot } from '../paths.js';
import { runbookSchema } from './schema.js';

/** Where the package keeps the runbook's JSON Schema (generated from the zod schema, checked by a test). */
export const RUNBOOK_JSON_SCHEMA = join(packageRoot, 'schema', 'runbook.v1.schema.json');

/**
 * The runbook's JSON Schema for editors (yaml-language-server): types, enums, defaults and
 * descriptions come from the zod schema; the cross-field rules stay with `ha-setup validate`.
 */
export function runbookJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(runbookSchema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  return {
    ...schema,
    $id: 'https://ha-setup.invalid/schema/runbook.v1.schema.json',
    title: 'ha-setup runbook (v1)',
    description:
      'Checked by `ha-setup validate <file>`, which also applies the cross-field rules this schema cannot express.',
  };
}
