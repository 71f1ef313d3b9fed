import { createHash } from 'node:crypto';
import { Pool } from 'undici';
import { connectAnnounceStream, type AnnounceConnection } from '@krill/cluster-services';
import type { Digest } from '@krill/lib';
import { cpuSeconds, ownCpuSeconds } from './cpu.js';

/**
 * The load side of `npm run bench:tracker`, forked by tracker.ts into its own process so that it
 * has its own core: simulated peers announce to one tracker over keep-alive connections, with a
 * fixed number of announces in flight (a closed loop), first for a warm-up and then for a
 * measured phase bounded in time and count. It takes its settings as one JSON argument and sends
 * one `LoadResult` to its parent over IPC, then exits.
 */
export interface LoadSettings {
  url: string;
  /** `POST /announce` over keep-alive HTTP, or the announce stream (binary frames on upgraded connections). */
  transport: 'http' | 'stream';
  /** The tracker's pid, whose CPU time is read from /proc at the measured phase's bounds. */
  trackerPid: number;
  peers: number;
  blobs: number;
  /** One peer in this many holds its whole blob; the others are downloading it. */
  completeEvery: number;
  connections: number;
  pipelining: number;
  inFlight: number;
  warmupMs: number;
  measureMs: number;
  /** The measured phase also stops after this many announces, so its latency buffer is bounded. */
  maxAnnounces: number;
}

export interface LoadResult {
  announces: number;
  /** Failed announces in the warm-up and the measured phase together. */
  errors: number;
  /** The first few error messages, for the report. */
  errorSamples: string[];
  wallMs: number;
  p50Ms: number;
  p99Ms: number;
  /** Peers handed out per announce, mean over the checked responses of downloaders. */
  meanHandout: number;
  trackerCores: number;
  loadCores: number;
}

interface Peer {
  id: string;
  digest: string;
  complete: boolean;
  /** The announce's JSON body, built once: the load process should spend its core on requests. */
  body: string;
  announce: { digest: Digest; namespace: string; peerId: string; ip: string; port: number; complete: boolean; origin: boolean };
}

/**
 * Peer i joins blob i % blobs; the first peer of each blob is its origin, one in `completeEvery`
 * is a finished agent still seeding, the rest are downloading. Ids and addresses are distinct.
 */
function makePeers(s: LoadSettings): Peer[] {
  const digests = Array.from({ length: s.blobs }, (_, b) => `sha256:${createHash('sha256').update(`bench-blob-${b}`).digest('hex')}`);
  return Array.from({ length: s.peers }, (_, i) => {
    const id = createHash('sha1').update(`bench-peer-${i}`).digest('hex');
    const digest = digests[i % s.blobs]!;
    const origin = i < s.blobs;
    const complete = origin || i % s.completeEvery === 0;
    const ip = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    const announce = { digest: digest as Digest, namespace: 'bench/app', peerId: id, ip, port: 16_000 + (i % 1000), complete, origin };
    return { id, digest, complete, body: JSON.stringify(announce), announce };
  });
}

/** One in this many responses is parsed and checked; parsing them all would cost the load core. */
const CHECK_EVERY = 64;
/** Error messages kept for the report; the count covers the rest. */
const MAX_ERROR_SAMPLES = 5;

function check(p: Peer, text: string): string | undefined {
  const r = JSON.parse(text) as { peers?: Array<{ peerId: string }>; intervalMs?: number };
  if (!Array.isArray(r.peers) || typeof r.intervalMs !== 'number') return `bad response shape: ${text.slice(0, 200)}`;
  if (p.complete && r.peers.length > 0) return 'a seeder was handed peers';
  if (r.peers.some((x) => x.peerId === p.id)) return 'a peer was handed itself';
  return undefined;
}

async function run(s: LoadSettings, send: (r: LoadResult) => void): Promise<void> {
  const peers = makePeers(s);
  const pool = new Pool(s.url, { connections: s.connections, pipelining: s.pipelining, keepAliveTimeout: 60_000 });
  const streams: AnnounceConnection[] = s.transport === 'stream'
    ? Array.from({ length: s.connections }, () => connectAnnounceStream(s.url, { timeoutMs: 10_000 }))
    : [];
  const headers = { 'content-type': 'application/json' };
  let next = 0;
  let measuring = false;
  let announces = 0;
  let errors = 0;
  let handedOut = 0;
  let checked = 0;
  const errorSamples: string[] = [];
  const latencies = new Float64Array(s.maxAnnounces);
  const fail = (msg: string) => {
    errors++;
    if (errorSamples.length < MAX_ERROR_SAMPLES) errorSamples.push(msg);
  };

  async function announce(n: number): Promise<void> {
    const p = peers[n % peers.length]!;
    if (streams.length > 0) return announceStream(n, p);
    try {
      const res = await pool.request({ path: '/announce', method: 'POST', headers, body: p.body });
      const text = await res.body.text();
      if (res.statusCode !== 200) return fail(`HTTP ${res.statusCode}: ${text.slice(0, 200)}`);
      if (n % CHECK_EVERY !== 0) return;
      const bad = check(p, text);
      if (bad) return fail(bad);
      if (!p.complete) {
        handedOut += (JSON.parse(text) as { peers: unknown[] }).peers.length;
        checked++;
      }
    } catch (err) {
      fail((err as Error).message);
    }
  }

  async function announceStream(n: number, p: Peer): Promise<void> {
    try {
      const r = await streams[n % streams.length]!.announce(p.announce);
      // Only checked answers are decoded (their peers are decoded when first read).
      if (n % CHECK_EVERY !== 0) return;
      if (p.complete && r.peers.length > 0) return fail('a seeder was handed peers');
      if (r.peers.some((x) => x.peerId === p.id)) return fail('a peer was handed itself');
      if (!p.complete) {
        handedOut += r.peers.length;
        checked++;
      }
    } catch (err) {
      fail((err as Error).message);
    }
  }

  // Each worker keeps one announce in flight until `done`; peers take turns in order, so every
  // swarm is full after the first pass and each peer re-announces every peers / rate seconds.
  const phase = (done: () => boolean) => Promise.all(Array.from({ length: s.inFlight }, async () => {
    while (!done()) {
      const t0 = performance.now();
      await announce(next++);
      if (measuring && announces < s.maxAnnounces) latencies[announces++] = performance.now() - t0;
    }
  }));

  // The warm-up lasts at least one pass over all peers, so the measured phase sees full swarms.
  const warmEnd = performance.now() + s.warmupMs;
  await phase(() => next >= peers.length && performance.now() >= warmEnd);
  // Errors count over both phases; the handout figure over the measured one only.
  handedOut = 0;
  checked = 0;
  measuring = true;
  const tracker0 = cpuSeconds(s.trackerPid);
  const own0 = ownCpuSeconds();
  const t0 = performance.now();
  await phase(() => announces >= s.maxAnnounces || performance.now() - t0 >= s.measureMs);
  const wallMs = performance.now() - t0;
  const tracker1 = cpuSeconds(s.trackerPid);
  const own1 = ownCpuSeconds();
  await pool.close();
  for (const c of streams) c.close();
  const sorted = latencies.subarray(0, announces).sort();
  const pct = (q: number) => (announces === 0 ? 0 : sorted[Math.min(announces - 1, Math.floor(q * announces))]!);
  send({
    announces, errors, errorSamples, wallMs, p50Ms: pct(0.5), p99Ms: pct(0.99),
    meanHandout: checked === 0 ? 0 : handedOut / checked,
    trackerCores: (tracker1 - tracker0) / (wallMs / 1000), loadCores: (own1 - own0) / (wallMs / 1000),
  });
}

if (process.send) {
  const settings = JSON.parse(process.argv[2] ?? '{}') as LoadSettings;
  run(settings, (r) => process.send!({ type: 'result', result: r }, () => process.exit(0))).catch((err: unknown) => {
    process.send!({ type: 'failed', message: (err as Error).stack ?? String(err) }, () => process.exit(1));
  });
}
