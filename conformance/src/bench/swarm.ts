import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { runSwarm, type SwarmRunResult } from '../harness/lab-swarm.js';

/**
 * `npm run bench:swarm -- --hosts N --size MB --cap MBps [--latency ms]` (1 MB = 10^6 bytes):
 * one origin host and N agent hosts in the lab, every link capped at `cap` both ways; all agents
 * ask for the same blob at the same moment. Then, in the same run, the same N hosts download it
 * straight from the origin over HTTP. Prints for each: p50, p90, p99 and max completion time,
 * the ideal (size / cap), p99 / ideal, the bytes the origin sent on its link, the agents' peak
 * resident memory, and how busy the machine's cores were (near 100% means the CPU, not the
 * network, was the limit).
 *
 * Warm-up (`--warmup MB`, default 100; 0 for none; `--warmup-blobs N`, default 2): before the
 * run, every agent fetches N other blobs of that size through the swarm, one after the other, so
 * the run measures agents as a node runs them, for days, with their code compiled by V8's
 * optimising compiler, rather than processes seconds old. Fresh agents run their hot paths in
 * V8's interpreter and baseline code, and compile them, during the first seconds of traffic (a
 * cold run spent 13% of the cores' time in the compiler alone); in a cluster every node pays that
 * once on its own cores, here all agents pay it at the same moment on the lab's two. One blob is
 * not enough: an agent's second swarm deoptimises some of what its first compiled (the swarm's
 * hot functions had been compiled against the first swarm's objects), and functions with little
 * work per call reach the optimising compiler only after a few hundred pieces. The origin's blob
 * stays cold: it is fetched from the backend on the run's first request, as before.
 *
 * `--trace ms` prints, for the krill run, the links' rates over each interval of that length.
 * KRILL_BENCH_KEEP=1 keeps the working directory (configs, logs, caches) and prints its path.
 */
const { values } = parseArgs({ options: {
  hosts: { type: 'string', default: '10' }, size: { type: 'string', default: '200' }, cap: { type: 'string', default: '25' },
  latency: { type: 'string', default: '0' }, 'skip-direct': { type: 'boolean', default: false },
  warmup: { type: 'string', default: '100' }, 'warmup-blobs': { type: 'string', default: '2' }, trace: { type: 'string', default: '0' },
} });
const hosts = Number(values.hosts);
const sizeMB = Number(values.size);
const cap = Number(values.cap);
const latencyMs = Number(values.latency);
const warmupMB = Number(values.warmup);
if (!(warmupMB >= 0)) throw new Error('--warmup must be a number of MB, 0 for none');
const warmupBlobs = Number(values['warmup-blobs']);
if (!(Number.isInteger(warmupBlobs) && warmupBlobs >= 1)) throw new Error('--warmup-blobs must be a whole number of blobs, at least 1');
const traceMs = Number(values.trace);
if (!(traceMs === 0 || traceMs >= 50)) throw new Error('--trace must be an interval of at least 50 ms, or 0 for none');
for (const [k, v] of [['hosts', hosts], ['size', sizeMB], ['cap', cap]] as const) {
  if (!(v > 0)) throw new Error(`--${k} must be a positive number`);
}
const ideal = sizeMB / cap;
const size = Math.round(sizeMB * 1e6);

function row(name: string, r: SwarmRunResult): string {
  const d = r.summary.completionMs;
  const s = (ms: number | undefined) => (ms === undefined ? '   -  ' : (ms / 1000).toFixed(1).padStart(6));
  const rss = r.peakRss.length ? `${(Math.max(...r.peakRss) / 1e6).toFixed(0)} MB` : '-';
  return [
    name.padEnd(7),
    `done ${r.summary.completed}/${hosts}${r.verified === r.summary.completed ? '' : ` (${r.verified} verified!)`}`,
    `p50 ${s(d?.p50)} p90 ${s(d?.p90)} p99 ${s(d?.p99)} max ${s(d?.max)} s`,
    `p99/ideal ${d ? (d.p99 / 1000 / ideal).toFixed(2) : '-'}`,
    `origin sent ${(r.originSent / 1e6).toFixed(0)} MB (${(r.originSent / size).toFixed(2)}x blob)`,
    `peak RSS ${rss}`,
    `cpu ${(r.cpuBusy * 100).toFixed(0)}%${r.cpuBusy > 0.9 ? ' (cores saturated: the CPU may have held the run back; a run at half the --cap tells)' : ''}`,
  ].join(' | ');
}

/** Where the cores' time went: user space (krill), kernel, softirq (the network stack and tc). */
function cpuRow(r: SwarmRunResult): string {
  const pct = (x: number) => `${(x * 100).toFixed(0)}%`;
  const { user, system, softirq } = r.cpuSplit;
  return `        cpu split: user ${pct(user)}, system ${pct(system)}, softirq ${pct(softirq)} | cpu seconds: agents ${r.processCpu.agentsUser.toFixed(1)} user + ${r.processCpu.agentsSystem.toFixed(1)} system, origin ${r.processCpu.origin.toFixed(1)}`;
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'krill-bench-swarm-'));
  process.stdout.write(`bench:swarm: ${hosts} agent hosts + 1 origin host, ${sizeMB} MB blob, ${cap} MB/s caps${latencyMs ? `, ${latencyMs} ms latency` : ''}; ideal ${ideal.toFixed(1)} s\n`);
  process.stdout.write(warmupMB > 0
    ? `        agents warmed up first: each fetched ${warmupBlobs === 1 ? `another ${warmupMB} MB blob` : `${warmupBlobs} other blobs of ${warmupMB} MB, one after the other,`} through the swarm (--warmup 0: agents fresh from start-up)\n`
    : '        no warm-up: the run starts with agents fresh from start-up\n');
  const timeoutMs = Math.max(60_000, ideal * 1000 * hosts * 3);
  try {
    const base = { agents: hosts, sizeBytes: size, capMBps: cap, timeoutMs, ...(latencyMs ? { latencyMs } : {}) };
    const krill = await runSwarm({ ...base, dir: join(work, 'krill'), mode: 'krill', ...(warmupMB > 0 ? { warmupBytes: Math.round(warmupMB * 1e6), warmupBlobs } : {}), ...(traceMs ? { traceMs } : {}) });
    if (krill.trace.length) process.stdout.write(`krill's links over the run, every ${traceMs} ms:\n${krill.trace.join('\n')}\n`);
    process.stdout.write(`${row('krill', krill)}\n`);
    const bySource = krill.summary.bytesBySource;
    process.stdout.write(`${cpuRow(krill)}\n`);
    process.stdout.write(`        bytes received: peers ${((bySource['peers'] ?? 0) / 1e6).toFixed(0)} MB, origins ${((bySource['origins'] ?? 0) / 1e6).toFixed(0)} MB, origins over HTTP ${((bySource['originHttp'] ?? 0) / 1e6).toFixed(0)} MB\n`);
    if (!values['skip-direct']) {
      const direct = await runSwarm({ ...base, dir: join(work, 'direct'), mode: 'direct' });
      process.stdout.write(`${row('direct', direct)}\n${cpuRow(direct)}\n`);
    }
    if (krill.summary.failed > 0 || krill.verified !== krill.summary.completed) process.exitCode = 1;
  } finally {
    if (process.env['KRILL_BENCH_KEEP']) process.stdout.write(`kept ${work}\n`);
    else rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`bench:swarm failed: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
