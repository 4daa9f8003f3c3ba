#!/usr/bin/env node
// The `sluice` command. Runs the compiled CLI (npm run build); see src/cli/main.ts.
import { main } from '../dist/src/cli/main.js';
await main();
// librdkafka keeps handles open a moment after clients close; the CLI's work is done.
process.exit(process.exitCode ?? 0);
