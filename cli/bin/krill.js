#!/usr/bin/env node
// The `krill` program: a thin launcher for the compiled CLI (build with `npx tsc -b`).
import { main } from '../dist/main.js';

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err) => { process.stderr.write(`krill: ${err?.stack ?? err}\n`); process.exitCode = 1; },
);
