import { fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { freePort, startKrillProcess } from '../harness/krill-process.js';
import type { LoadResult, LoadSettings } from './tracker-load.js';

/**
 * `npm run bench:tracker [-- --seconds 12 --peers 20000 --blobs 100]`: how many announces per
 * second one tracker process sustains. The tracker runs as its own process (the `krill` CLI, log
 * level warn) on a loopback port; a separate load process (tracker-load.ts) plays 20,000 peers
 * over 100 blobs, keeping many announces in flight over keep-alive connections, first for a
 * warm-up and then for a measured phase bounded in time and count. Prints announces/s, latency
 * p50/p99, errors and the CPU each process used, so a reader can tell which one was the limit.
 * Exits non-zero if any announce failed.
 */
const { values } = parseArgs({ options: {
  seconds: { type: 'string', default: '12' }, 'warmup-seconds': { type: 'string', default: '3' },
  peers: { type: 'string', default: '20000' }, blobs: { type: 'string', default: '100' },
  transport: { type: 'string', default: 'both' },
  connections: { type: 'string', default: '32' }, pipelining: { type: 'string', default: '4' }, 'in-flight': { type: 'string', default: '128' },
} });
// The load defaults measured best here (against 8 or 16 connections and pipelining up to 32):
// enough announces in flight that the tracker is never idle waiting for the next, spread over
// enough connections that one slow response holds up few others.

// 15,000 hosts announcing every 3 s (Kraken's interval, and ours) make 5,000 announces/s; four
// times that leaves headroom for a burst of new pulls and for a tracker taking a dead one's share.
const TARGET = 20_000;
// Enough to hold about 12 s at 100,000/s, far above what one core serves, so the time bound is
// the one that ends the phase; the count bound only caps the latency buffer (8 bytes each).
const MAX_ANNOUNCES = 1_200_000;
const LOAD_SCRIPT = fileURLToPath(new URL('./tracker-load.js', import.meta.url));
// How long the load process may take beyond its two phases (building peers, closing) before the
// benchmark gives up on it, so a hung run still ends by itself.
const LOAD_GRACE_MS = 30_000;

function runLoad(settings: LoadSettings): Promise<LoadResult> {
  const child = fork(LOAD_SCRIPT, [JSON.stringify(settings)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise<LoadResult>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error('the load process did not finish in time'));
    }, settings.warmupMs + settings.measureMs + LOAD_GRACE_MS);
    child.on('message', (m: { type: 'result'; result: LoadResult } | { type: 'failed'; message: string }) => {
      clearTimeout(timer);
      if (m.type === 'result') resolve(m.result);
      else reject(new Error(`the load process failed: ${m.message}`));
    });
    child.once('exit', (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`the load process exited (${sig ?? code}) without a result`));
    });
  });
}

async function main(): Promise<void> {
  const transports: Array<LoadSettings['transport']> = values.transport === 'both' ? ['http', 'stream'] : [values.transport as LoadSettings['transport']];
  if (!transports.every((t) => t === 'http' || t === 'stream')) throw new Error(`--transport ${values.transport}: expected http, stream or both`);
  for (const transport of transports) await measure(transport);
}

/** One tracker process of its own, loaded over `transport`; prints the figures. */
async function measure(transport: LoadSettings['transport']): Promise<void> {
  const peers = Number(values.peers);
  const blobs = Number(values.blobs);
  const work = mkdtempSync(join(tmpdir(), 'krill-bench-tracker-'));
  const [port, unusedOrigin] = [await freePort(), await freePort()];
  // Announces never contact an origin (only /metainfo does), so the origin URL may be unused.
  // KRILL_BENCH_PROF=DIR: the tracker writes a V8 CPU profile there (`--cpu-prof`).
  const tracker = await startKrillProcess({ command: 'tracker', name: 'tracker', dir: work,
    ...(process.env['KRILL_BENCH_PROF'] ? { nodeArgs: ['--cpu-prof', '--cpu-prof-dir', process.env['KRILL_BENCH_PROF']] } : {}), config: {
    listen: { port }, origins: { urls: [`http://127.0.0.1:${unusedOrigin}`] }, logLevel: 'warn',
  } });
  let r: LoadResult;
  const settings: LoadSettings = {
    url: tracker.url, transport, trackerPid: tracker.child.pid!, peers, blobs,
    // One in ten finished and seeding: a pull in full swing, most peers still downloading.
    completeEvery: 10,
    connections: Number(values.connections), pipelining: Number(values.pipelining), inFlight: Number(values['in-flight']),
    warmupMs: Number(values['warmup-seconds']) * 1000, measureMs: Number(values.seconds) * 1000, maxAnnounces: MAX_ANNOUNCES,
  };
  const how = transport === 'http'
    ? `POST /announce over ${settings.connections} keep-alive connections (pipelining ${settings.pipelining})`
    : `the announce stream over ${settings.connections} connections`;
  try {
    process.stdout.write(`bench:tracker [${transport}]: ${peers} peers over ${blobs} blobs (1 in ${settings.completeEvery} complete, one origin each), `
      + `${settings.inFlight} announces in flight, ${how}, `
      + `${settings.warmupMs / 1000} s warm-up, ${settings.measureMs / 1000} s measured\n`);
    r = await runLoad(settings);
  } finally {
    await tracker.kill('SIGTERM');
    rmSync(work, { recursive: true, force: true });
  }
  const rate = r.announces / (r.wallMs / 1000);
  process.stdout.write(`  announces/s ${rate.toFixed(0)} (target >= ${TARGET}/s: ${rate >= TARGET ? 'met' : 'NOT met'}), `
    + `${r.announces} announces in ${(r.wallMs / 1000).toFixed(1)} s\n`);
  process.stdout.write(`  latency p50 ${r.p50Ms.toFixed(2)} ms, p99 ${r.p99Ms.toFixed(2)} ms; peers handed to a downloader ${r.meanHandout.toFixed(1)} on average; errors ${r.errors}\n`);
  // Cores busy on average (CPU seconds / wall seconds): the process near 1.0 was the limit.
  // CPU per announce says what one core of the tracker would sustain even when the machine is
  // shared and the tracker got less than a core.
  const usPerAnnounce = (r.trackerCores * r.wallMs * 1000) / r.announces;
  process.stdout.write(`  cores busy: tracker ${r.trackerCores.toFixed(2)}, load ${r.loadCores.toFixed(2)}; `
    + `tracker CPU ${usPerAnnounce.toFixed(0)} µs per announce (${(1e6 / usPerAnnounce).toFixed(0)}/s a full core)\n`);
  if (r.errors > 0) {
    process.stderr.write(`bench:tracker [${transport}]: ${r.errors} announces failed, e.g.:\n${r.errorSamples.map((e) => `  ${e}\n`).join('')}`);
    process.exitCode = 1;
  }
}

main().catch((err) => {
  process.stderr.write(`bench:tracker failed: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
