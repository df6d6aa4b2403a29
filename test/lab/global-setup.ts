import type { TestProject } from 'vitest/node';
import { platform } from 'node:os';

// The lab suites need root on Linux. Elsewhere they are skipped with one clear line, except in CI
// (root on Linux by contract), where a skip would hide that nothing was proven: there it fails.
export default function setup(project: TestProject) {
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const can = platform() === 'linux' && isRoot;
  if (!can) {
    const why = platform() !== 'linux' ? 'this is not Linux' : 'this process is not root';
    if (process.env.CI) throw new Error(`lab suites cannot run in CI because ${why}; CI must run them`);
    console.log(`lab suites skipped: ${why} (they need root on Linux to create containers)`);
  }
  project.provide('labAvailable', can);
  return async () => {
    if (!can || process.env.HA_SETUP_KEEP_LAB) return;
    const { labDown } = await import('../../src/lab/lab.js');
    await labDown(() => {});
  };
}

declare module 'vitest' {
  export interface ProvidedContext {
    labAvailable: boolean;
  }
}
