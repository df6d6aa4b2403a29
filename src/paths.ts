import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// Works from src/ (tests run the TypeScript) and from dist/ (the built package):
// both sit one level below the package root.
export const packageRoot = dirname(dirname(fileURLToPath(import.meta.url)));
export const templatesDir = join(packageRoot, 'src', 'templates');
export const dataDir = join(packageRoot, 'src', 'data');
