import { createCipheriv, createHash } from 'node:crypto';
import { createReadStream, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { createFsBackend } from '@krill/cluster-services';
import { PieceHasher, pieceLengthFor, silentLogger, type Digest } from '@krill/lib';
import { createLab, createRunRecorder, type Lab, type LabHost, type LabProcess, type RunSummary } from '../lab/index.js';
import { cpuSeconds, cpuTimes } from '../bench/cpu.js';
import { KRILL_ARGV, benchNodeArgs } from './krill-process.js';
import { startLinkTrace } from './link-trace.js';

/** Fixed ports on every lab host: each host has its own address, so they never collide. */
const PORT = { origin: 15002, originPeer: 15001, tracker: 15003, agent: 15005, agentPeer: 15006 } as const;
const NAMESPACE = 'bench/blob';

export interface SwarmRunOptions {
  /** Working directory: configs, caches, the backend, logs. */
  dir: string;
  agents: number;
  sizeBytes: number;
  capMBps: number;
  latencyMs?: number;
  /** 'krill': agents pull through P2P; 'direct': each host GETs the blob from the origin over HTTP. */
  mode: 'krill' | 'direct';
  /** How long a host may take before the run counts it as failed. */
  timeoutMs: number;
  /** Kills agent 0 this long after the start (fault injection). */
  killFirstAgentAfterMs?: number;
  /**
   * krill mode: every agent first fetches `warmupBlobs` (default 1) other blobs of this many
   * bytes, each all at once and one blob after the other, and only then is the run's blob asked
   * for (see warm-up in bench/swarm.ts). Absent: the run starts with agents that have just
   * started.
   */
  warmupBytes?: number;
  warmupBlobs?: number;
  /** krill mode: samples the links this often during the run (see link-trace.ts). */
  traceMs?: number;
}

export interface SwarmRunResult {
  summary: RunSummary;
  /** Bytes the origin host sent on its link (headers included). */
  originSent: number;
  /** Peak resident set of each agent process, in bytes (krill mode). */
  peakRss: number[];
  /** Share of all cores busy during the run (0..1). */
  cpuBusy: number;
  /** The same share split by where the time went (user space, kernel, softirq: the network stack and shaping). */
  cpuSplit: { user: number; system: number; softirq: number };
  /** CPU seconds the agent processes (all together, user and kernel) and the origin used during the run. */
  processCpu: { agentsUser: number; agentsSystem: number; origin: number };
  /** The digest of the blob every host fetched. */
  digest: Digest;
  /** Whole-blob SHA-256 of every host's copy that completed (krill mode: the agent's cache file). */
  verified: number;
  /** The link trace's lines, when one was asked for. */
  trace: string[];
}

/**
 * One lab run: an origin host (origin + tracker) and `agents` agent hosts, every link capped at
 * `capMBps` both ways, every host asked for the same blob at the same moment. The blob is put in
 * the origin's filesystem backend beforehand (with its metainfo sidecar), so the origin fetches it
 * on the first request and the network carries only the run itself.
 */
export async function runSwarm(o: SwarmRunOptions): Promise<SwarmRunResult> {
  mkdirSync(o.dir, { recursive: true });
  const lab = await createLab({ hosts: [{ name: 'origin', capMBps: o.capMBps, ...(o.latencyMs ? { latencyMs: o.latencyMs } : {}) },
    ...Array.from({ length: o.agents }, (_, i) => ({ name: `agent-${i}`, capMBps: o.capMBps, ...(o.latencyMs ? { latencyMs: o.latencyMs } : {}) }))] });
  try {
    const digest = await seedBackend(join(o.dir, 'backend'), o.sizeBytes, 9);
    const warmup: Digest[] = [];
    for (let i = 0; o.mode === 'krill' && o.warmupBytes && i < (o.warmupBlobs ?? 1); i++) {
      warmup.push(await seedBackend(join(o.dir, 'backend'), o.warmupBytes, 100 + i));
    }
    const originHost = lab.host('origin');
    const originUrl = `http://${originHost.ip}:${PORT.origin}`;
    const trackerUrl = `http://${originHost.ip}:${PORT.tracker}`;
    const [origin] = await Promise.all([
      service(o.dir, originHost, 'origin', {
        listen: { host: originHost.ip, port: PORT.origin }, peer: { host: originHost.ip, port: PORT.originPeer, egressMBps: pacedMBps(o.capMBps) },
        cluster: { origins: [originUrl], replicas: 1 }, store: { dir: join(o.dir, 'origin-store') }, trackers: { urls: [trackerUrl] },
        backends: [{ namespace: '.*', fs: { root: join(o.dir, 'backend') } }], logLevel: 'info',
      }),
      service(o.dir, originHost, 'tracker', { listen: { host: originHost.ip, port: PORT.tracker }, origins: { urls: [originUrl] }, logLevel: 'info' }),
    ]);
    const agentHosts = lab.hosts.filter((h) => h.name !== 'origin');
    const probe = originProbe(originHost, origin.pid);
    const run = o.mode === 'krill'
      ? await krillRun(o, lab, agentHosts, { originUrl, trackerUrl, digest, origin: probe, warmup })
      : await directRun(o, agentHosts, `${originUrl}/blobs/${digest}?namespace=${encodeURIComponent(NAMESPACE)}`, digest, probe);
    // The machine's cores over the run itself: from the common start until every host was done.
    const [cpu0, cpu1] = run.ticks;
    const total = Math.max(1, cpu1.total - cpu0.total);
    const share = (k: 'busy' | 'user' | 'system' | 'softirq') => (cpu1[k] - cpu0[k]) / total;
    return {
      ...run, originSent: run.origin.sent, digest, cpuBusy: share('busy'),
      cpuSplit: { user: share('user'), system: share('system'), softirq: share('softirq') },
      processCpu: { agentsUser: run.agentCpu.user, agentsSystem: run.agentCpu.system, origin: run.origin.cpu },
    };
  } finally {
    await lab.close();
  }
}

/** What the origin host sent and the origin process used from `start()` on. */
function originProbe(host: LabHost, pid: number) {
  let sent0 = 0;
  let cpu0 = 0;
  return {
    pid,
    async start() {
      sent0 = (await host.counters()).sent;
      cpu0 = cpuSeconds(pid);
    },
    async read() {
      return { sent: (await host.counters()).sent - sent0, cpu: cpuSeconds(pid) - cpu0 };
    },
  };
}

/**
 * Every agent HEADs `digest` on its own host and waits for its "blob complete" line; `onDone`
 * gets each line, `onFail` each failure. A HEAD starts the download and answers once the
 * metainfo is known; no blob bytes cross the agent's link towards the benchmark.
 */
async function fetchAll(hosts: LabHost[], agents: LabProcess[], digest: Digest, timeoutMs: number, onDone: (i: number, line: Record<string, number>) => void, onFail: (i: number, err: unknown) => void): Promise<void> {
  const complete = new RegExp(`"digest":"${digest}".*"msg":"blob complete"`);
  await Promise.all(hosts.map(async (h, i) => {
    try {
      const res = await request(`http://${h.ip}:${PORT.agent}/v2/${NAMESPACE}/blobs/${digest}`, { method: 'HEAD' });
      await res.body.dump();
      if (res.statusCode !== 200) throw new Error(`HEAD answered ${res.statusCode}`);
      onDone(i, JSON.parse(await agents[i]!.waitForLine(complete, { timeoutMs })) as Record<string, number>);
    } catch (err) {
      onFail(i, err);
    }
  }));
}

async function krillRun(o: SwarmRunOptions, lab: Lab, hosts: LabHost[], c: { originUrl: string; trackerUrl: string; digest: Digest; warmup: Digest[]; origin: ReturnType<typeof originProbe> }) {
  const agents = await Promise.all(hosts.map((h) => service(o.dir, h, 'agent', {
    listen: { host: h.ip, port: PORT.agent }, peer: { host: h.ip, port: PORT.agentPeer },
    trackers: { urls: [c.trackerUrl] }, origins: { urls: [c.originUrl], replicas: 1 },
    // Tags are not used: every host asks for the blob by digest. Nothing listens there.
    buildIndex: { urls: [`http://${lab.gatewayIp}:9`] }, cache: { dir: join(o.dir, `cache-${h.name}`) },
    limits: { egressMBps: pacedMBps(o.capMBps) }, stallTimeoutMs: o.timeoutMs, logLevel: 'info',
  })));
  for (const blob of c.warmup) {
    const failures: unknown[] = [];
    await fetchAll(hosts, agents, blob, o.timeoutMs, () => undefined, (_, err) => failures.push(err));
    if (failures.length > 0) throw new Error(`warm-up: ${failures.length} agents failed; first: ${(failures[0] as Error).message}`);
  }
  // The peak resident set is the run's own: each agent's high-water mark starts again at what it
  // holds now (what the warm-up left resident still counts; its own peak, another blob's, does not).
  if (c.warmup.length > 0) for (const a of agents) resetPeakRss(a.pid);
  const rec = createRunRecorder();
  // The agents' CPU from here on: their start-up (loading modules) is not part of the run.
  const cpuAt = () => agents.map((a) => cpuTimes(a.pid)).reduce((s, t) => ({ user: s.user + t.user, system: s.system + t.system }), { user: 0, system: 0 });
  await c.origin.start();
  const cpuStart = cpuAt();
  const ticks0 = cpuTicks();
  const t0 = Date.now();
  // KRILL_BENCH_MARKS: the run's start and end on CLOCK_MONOTONIC, in seconds, on stderr (for
  // `perf record -k CLOCK_MONOTONIC` and `perf report --time start,end`).
  const mark = (what: string) => { if (process.env['KRILL_BENCH_MARKS']) process.stderr.write(`bench mark ${Number(process.hrtime.bigint()) / 1e9} ${what}\n`); };
  mark(`start origin-pid ${c.origin.pid}`);
  const trace = o.traceMs ? startLinkTrace(lab.host('origin'), hosts, t0, o.traceMs) : undefined;
  for (const h of hosts) rec.start(h.name, t0);
  if (o.killFirstAgentAfterMs !== undefined) setTimeout(() => void agents[0]!.kill('SIGKILL'), o.killFirstAgentAfterMs);
  const peakRss: number[] = [];
  const done: LabHost[] = [];
  let verified = 0;
  await fetchAll(hosts, agents, c.digest, o.timeoutMs, (i, line) => {
    const h = hosts[i]!;
    rec.finish(h.name, line['time']!);
    for (const s of ['peers', 'origins', 'originHttp']) rec.addBytes(h.name, s, line[s] ?? 0);
    peakRss.push(peakRssOf(agents[i]!.pid));
    done.push(h);
  }, (i, err) => rec.fail(hosts[i]!.name, err));
  // Sampled once every host is done, before they stop.
  mark('end');
  const traceRows = trace?.stop() ?? [];
  const cpuEnd = cpuAt();
  const origin = await c.origin.read();
  const ticks1 = cpuTicks();
  const agentCpu = { user: cpuEnd.user - cpuStart.user, system: cpuEnd.system - cpuStart.system };
  await Promise.all(agents.map((a) => a.kill('SIGTERM')));
  // Every copy checked once all are done, so the checking does not take CPU from hosts still
  // downloading.
  for (const h of done) if ((await sha256File(join(o.dir, `cache-${h.name}`, 'blobs', c.digest.slice(7)))) === c.digest) verified++;
  return { summary: rec.summary(), peakRss, verified, agentCpu, origin, trace: traceRows, ticks: [ticks0, ticks1] as const };
}

/** The baseline: every host GETs the whole blob from the origin at the same moment, hashing it. */
async function directRun(o: SwarmRunOptions, hosts: LabHost[], url: string, digest: Digest, originAt: ReturnType<typeof originProbe>) {
  // Processes start at once but wait for a common start time, so none gets a head start.
  const startAt = Date.now() + 2000;
  const script = `const [url, at] = process.argv.slice(1); const h = require('crypto').createHash('sha256');
    setTimeout(async () => { const res = await fetch(url); let n = 0; for await (const c of res.body) { n += c.length; h.update(c); }
    console.log(JSON.stringify({ done: Date.now(), bytes: n, digest: 'sha256:' + h.digest('hex'), status: res.status })); }, Number(at) - Date.now());`;
  const rec = createRunRecorder();
  let verified = 0;
  let ticks0 = cpuTicks();
  await originAt.start();
  const started = new Promise<void>((resolve) => setTimeout(() => { ticks0 = cpuTicks(); resolve(); }, startAt - Date.now()));
  await Promise.all(hosts.map(async (h) => {
    rec.start(h.name, startAt);
    const p = h.spawn(process.execPath, ['-e', script, url, String(startAt)]);
    try {
      const line = JSON.parse(await p.waitForLine(/"done"/, { timeoutMs: o.timeoutMs + 2000 })) as { done: number; bytes: number; digest: string };
      rec.finish(h.name, line.done);
      rec.addBytes(h.name, 'originHttp', line.bytes);
      if (line.digest === digest) verified++;
    } catch (err) {
      rec.fail(h.name, err);
    } finally {
      await p.kill('SIGKILL');
    }
  }));
  await started;
  const ticks1 = cpuTicks();
  return { summary: rec.summary(), peakRss: [], verified, agentCpu: { user: 0, system: 0 }, origin: await originAt.read(), trace: [], ticks: [ticks0, ticks1] as const };
}

/**
 * The egress cap krill is configured with on a link of `cap` MB/s, as an operator would set it:
 * just under the link, whose cap counts Ethernet, IP and TCP headers too (about 3% at full
 * frames). Pacing in the process, not in the kernel's buffers, keeps the choice of which piece
 * to send next close to the moment it goes out.
 */
const pacedMBps = (cap: number) => cap * 0.95;

/** Starts `krill <command>` on a host and waits until it listens. */
async function service(dir: string, host: LabHost, command: string, config: Record<string, unknown>): Promise<LabProcess> {
  const file = join(dir, `${command}-${host.name}.yaml`);
  // JSON is YAML; the config loader validates it as any operator's file.
  writeFileSync(file, JSON.stringify(config));
  // KRILL_BENCH_PROF=DIR: every krill process writes a V8 CPU profile there when it stops;
  // KRILL_BENCH_NODE_ARGS: more node flags for them (e.g. --perf-basic-prof for `perf`).
  const prof = benchNodeArgs({ prof: 'KRILL_BENCH_PROF', args: 'KRILL_BENCH_NODE_ARGS' });
  const p = host.spawn(process.execPath, [...prof, ...KRILL_ARGV, command, '--config', file], { logFile: join(dir, `${command}-${host.name}.log`) });
  await p.waitForLine(new RegExp(`"msg":"${command} listening"`), { timeoutMs: 20_000 });
  return p;
}

/** Writes a deterministic blob (one per `seed`) and its metainfo sidecar into a filesystem backend. */
async function seedBackend(root: string, size: number, seed: number): Promise<Digest> {
  const cipher = createCipheriv('aes-128-ctr', Buffer.alloc(16, seed), Buffer.alloc(16));
  const bytes = cipher.update(Buffer.alloc(size));
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}` as Digest;
  const hasher = new PieceHasher(pieceLengthFor(size));
  hasher.update(bytes);
  const backend = createFsBackend({ root, logger: silentLogger() });
  await backend.upload(NAMESPACE, digest, Readable.from([bytes]), size);
  await backend.putMetainfo?.(NAMESPACE, digest, hasher.finish(digest));
  return digest;
}

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  try {
    for await (const c of createReadStream(path, { highWaterMark: 1024 * 1024 })) h.update(c as Buffer);
  } catch {
    return '';
  }
  return `sha256:${h.digest('hex')}`;
}

/** Starts a process's VmHWM again from its VmRSS now (proc(5), /proc/pid/clear_refs). */
function resetPeakRss(pid: number): void {
  writeFileSync(`/proc/${pid}/clear_refs`, '5');
}

/** VmHWM: the peak resident set of a live process, in bytes (0 once it has exited). */
function peakRssOf(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/**
 * All CPUs' ticks from /proc/stat: busy (everything but idle and iowait), user (with nice),
 * system, softirq, and total. Fields: user nice system idle iowait irq softirq steal ...
 */
function cpuTicks(): { busy: number; user: number; system: number; softirq: number; total: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - f[3]! - (f[4] ?? 0), user: f[0]! + f[1]!, system: f[2]! + (f[5] ?? 0), softirq: f[6] ?? 0, total };
}
