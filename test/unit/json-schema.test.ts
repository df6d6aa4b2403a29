import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { RUNBOOK_JSON_SCHEMA, runbookJsonSchema } from '../../src/runbook/json-schema.js';
import { runbookToYaml } from '../../src/runbook/io.js';

// The shipped JSON Schema is generated from the zod schema: regenerate it with UPDATE_GOLDEN=1 like a golden file.
describe('runbook JSON Schema', () => {
  it('the committed schema/runbook.v1.schema.json is the zod schema as JSON Schema', () => {
    const text = `${JSON.stringify(runbookJsonSchema(), null, 2)}\n`;
    if (process.env.UPDATE_GOLDEN || !existsSync(RUNBOOK_JSON_SCHEMA)) {
      if (!process.env.UPDATE_GOLDEN && process.env.CI) throw new Error(`missing ${RUNBOOK_JSON_SCHEMA}`);
      writeFileSync(RUNBOOK_JSON_SCHEMA, text);
    }
    expect(readFileSync(RUNBOOK_JSON_SCHEMA, 'utf8')).toBe(text);
  });

  it('knows every top-level key, strict objects, enums and defaults', () => {
    const s = runbookJsonSchema() as {
      properties: Record<string, any>;
      required: string[];
      additionalProperties: boolean;
    };
    expect(Object.keys(s.properties)).toEqual([
      'version',
      'name',
      'ssh',
      'nodes',
      'vrrp',
      'build',
      'keepalived',
      'site',
      'sources',
      'logging',
      'firewall',
      'verify',
    ]);
    expect(s.additionalProperties).toBe(false);
    expect(s.properties.build.properties.flavor.enum).toEqual(['openresty', 'nginx']);
    expect(s.properties.vrrp.properties.version.default).toBe(3);
  });

  it('runbooks the wizard writes point editors at it', () => {
    const example = parse(
      readFileSync(join(import.meta.dirname, '..', '..', 'runbooks', 'example-openresty.yaml'), 'utf8'),
    );
    expect(runbookToYaml(example).split('\n')[0]).toBe(`# yaml-language-server: $schema=${RUNBOOK_JSON_SCHEMA}`);
  });
});
