#!/usr/bin/env node
// Thin launcher: all logic and the exit code live in dist/cli/main.js.
import { main } from '../dist/cli/main.js';

process.exitCode = await main(process.argv.slice(2));
