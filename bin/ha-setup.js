#!/usr/bin/env node
// Thin launcher: all logic and the exit code live in dist/cli/main.js.
const entry = new URL('../dist/cli/main.js', import.meta.url);
const { main } = await import(entry.href).catch((e) => {
  if (e?.code !== 'ERR_MODULE_NOT_FOUND') throw e;
  process.stderr.write('error: ha-setup is not built in this checkout: run `npm run build` (npm test builds too)\n');
  process.exit(2);
});
process.exitCode = await main(process.argv.slice(2));
