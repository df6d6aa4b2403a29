import nunjucks from 'nunjucks';
import { templatesDir } from './paths.js';
import { shq } from './shell.js';

// One nunjucks environment: templates are files in src/templates, never strings in steps.
// No autoescape (these are config files, not HTML); undefined variables are errors.
const env = new nunjucks.Environment(new nunjucks.FileSystemLoader(templatesDir, { noCache: false }), {
  autoescape: false,
  throwOnUndefined: true,
  trimBlocks: true,
  lstripBlocks: true,
});
// Shell templates quote every value with the one quoting function the commands use.
env.addFilter('shq', (v: unknown) => shq(String(v)));
// Lua templates render every string through this: a double-quoted Lua literal, nothing unescaped.
env.addFilter('luastr', (v: unknown) => luaString(String(v)));

// Markdown prose and table cells: text from a runbook or a host shows as text, never as HTML or a
// table column (code spans and blocks need nothing: Markdown renders nothing inside them).
env.addFilter('md', (v: unknown) => markdownText(String(v)));

export function markdownText(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/\|/g, '\\|')
    .replace(/`/g, '\\`');
}

export function luaString(s: string): string {
  const escaped = [...Buffer.from(s, 'utf8')].map((b) =>
    b === 0x22 || b === 0x5c
      ? `\\${String.fromCharCode(b)}`
      : b < 0x20 || b > 0x7e
        ? `\\${String(b).padStart(3, '0')}`
        : String.fromCharCode(b),
  );
  return `"${escaped.join('')}"`;
}

export const MANAGED = 'Managed by ha-setup: changes here are overwritten by the next `ha-setup apply`.';

export function render(name: string, vars: Record<string, unknown>): string {
  return env.render(name, { managed: MANAGED, ...vars });
}
