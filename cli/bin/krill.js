#!/usr/bin/env -S node --initial-old-space-size=64 --max-semi-space-size=4
// The `krill` program: a thin launcher for the compiled CLI (build with `npx tsc -b`).
// --initial-old-space-size: V8 starts a Node process with an old generation of a few megabytes
// and, while a process moves pieces, ran a full mark-compact every few hundred milliseconds to
// stay inside it (a fifth of an agent's CPU in the lab). 64 MB of room makes that a handful per
// blob; the resident size it costs was not measurable.
// --max-semi-space-size=4 (MB): V8's young generation grows to two semi-spaces of 16 MB, used in
// turn, so both stay resident: a third of an agent's heap. Pieces live outside the heap, and
// what a piece's messages allocate dies young at either size: with 4 MB an agent's heap was 43
// MB instead of 66 and the lab's 2 GB download peaked at 176-183 MB resident instead of 191-202,
// with the same CPU and completion times. Processes started as `node krill.js` by krill itself
// read these flags from this line (launcherNodeArgs in lib).
import { main } from '../dist/main.js';

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err) => { process.stderr.write(`krill: ${err?.stack ?? err}\n`); process.exitCode = 1; },
);
