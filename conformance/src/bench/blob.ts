import { execFileSync } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Agent, request } from 'undici';
import { startDockerRegistry } from '../harness/docker-registry.js';
import { benchNodeArgs, freePort, startKrillProcess, type KrillProcess } from '../harness/krill-process.js';
import { withCpu } from './cpu.js';

/**
 * `npm run bench:blob [-- --size-mib 1024 --runs 3 --origins 1]`: pushes and then pulls one blob
 * through krill's proxy and origin(s), each its own process, and the same blob to and from
 * Debian's docker-registry on the same machine, in one run; prints MB/s (10^6 bytes) for each
 * and the ratios. Both sides get the same client: POST, one streamed PATCH, PUT, then a GET
 * whose bytes are hashed and checked, following a redirect as registry clients do. krill's pull
 * is measured twice, through a proxy that streams blobs (the default) and through one with
 * `blobs.redirect` (a 307 to the origin); both proxies share the origins. Exits non-zero if any
 * digest comes back wrong.
 */
const { values } = parseArgs({ options: {
  'size-mib': { type: 'string', default: '1024' }, runs: { type: 'string', default: '3' }, origins: { type: 'string', default: '1' },
  backend: { type: 'string', default: 'none' },
} });
// docker-registry keeps one copy on local disk; by default krill's origin does the same (no
// backend, so no write-back). `--backend fs` adds the write-back to a filesystem backend, whose
// copy (and its verification) then competes for the same two cores.
const BACKEND = values.backend === 'fs' ? 'fs' : 'none';
const SIZE = Number(values['size-mib']) * 1024 * 1024;
const RUNS = Number(values.runs);
const ORIGINS = Number(values.origins);
/** KRILL_BENCH_PROF=DIR: the origins and proxies write V8 CPU profiles there (`--cpu-prof`); KRILL_BENCH_NODE_ARGS: more node flags for them. */
const profiling = () => ({ nodeArgs: benchNodeArgs({ prof: 'KRILL_BENCH_PROF', args: 'KRILL_BENCH_NODE_ARGS' }) });
const dispatcher = new Agent({ headersTimeout: 600_000, bodyTimeout: 600_000 });

/** The blob of run `run`: every run pushes new content, so neither side can skip storing it. */
async function makeBlob(dir: string, run: number): Promise<{ file: string; digest: string }> {
  const file = join(dir, `blob-${SIZE}-${run}.bin`);
  if (existsSync(`${file}.digest`)) return { file, digest: readFileSync(`${file}.digest`, 'utf8') };
  const cipher = createCipheriv('aes-128-ctr', Buffer.alloc(16, 7 + run), Buffer.alloc(16));
  const hash = createHash('sha256');
  const out = createWriteStream(`${file}.tmp`);
  const zero = Buffer.alloc(1024 * 1024);
  for (let left = SIZE; left > 0; left -= zero.length) {
    const chunk = cipher.update(zero.subarray(0, Math.min(zero.length, left)));
    hash.update(chunk);
    if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  await new Promise<void>((r, j) => out.end((err?: Error | null) => (err ? j(err) : r())));
  renameSync(`${file}.tmp`, file);
  const digest = `sha256:${hash.digest('hex')}`;
  writeFileSync(`${file}.digest`, digest);
  return { file, digest };
}

async function push(base: string, repo: string, file: string, digest: string): Promise<number> {
  const started = performance.now();
  const post = await request(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST', dispatcher });
  await post.body.dump();
  if (post.statusCode !== 202) throw new Error(`POST upload: HTTP ${post.statusCode}`);
  const loc = new URL(String(post.headers['location']), base);
  const patch = await request(loc, {
    method: 'PATCH', dispatcher, body: createReadStream(file, { highWaterMark: 1024 * 1024 }),
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(SIZE) },
  });
  await patch.body.dump();
  if (patch.statusCode !== 202) throw new Error(`PATCH upload: HTTP ${patch.statusCode}`);
  const next = new URL(String(patch.headers['location']), base);
  next.searchParams.set('digest', digest);
  const put = await request(next, { method: 'PUT', dispatcher, headers: { 'content-length': '0' } });
  const text = await put.body.text();
  if (put.statusCode !== 201) throw new Error(`PUT upload: HTTP ${put.statusCode} ${text}`);
  return performance.now() - started;
}

async function pull(base: string, repo: string, digest: string): Promise<number> {
  const started = performance.now();
  let url = new URL(`${base}/v2/${repo}/blobs/${digest}`);
  let res = await request(url, { method: 'GET', dispatcher });
  // Blob GETs may be redirected (distribution does it for S3 and GCS); clients follow a few.
  for (let hops = 0; [301, 302, 303, 307, 308].includes(res.statusCode) && hops < 5; hops++) {
    await res.body.dump();
    url = new URL(String(res.headers['location']), url);
    res = await request(url, { method: 'GET', dispatcher });
  }
  if (res.statusCode !== 200) throw new Error(`GET blob: HTTP ${res.statusCode}`);
  const hash = createHash('sha256');
  let n = 0;
  for await (const c of res.body) {
    hash.update(c as Buffer);
    n += (c as Buffer).length;
  }
  const got = `sha256:${hash.digest('hex')}`;
  if (got !== digest || n !== SIZE) throw new Error(`pulled blob is wrong: ${n} bytes hashing to ${got}, expected ${SIZE} bytes ${digest}`);
  return performance.now() - started;
}

async function startKrill(dir: string): Promise<{ url: string; redirectUrl: string; procs: KrillProcess[] }> {
  mkdirSync(dir, { recursive: true });
  const ports = await Promise.all(Array.from({ length: ORIGINS + 3 }, () => freePort()));
  const originUrls = ports.slice(0, ORIGINS).map((p) => `http://127.0.0.1:${p}`);
  const procs: KrillProcess[] = [];
  for (let i = 0; i < ORIGINS; i++) {
    procs.push(await startKrillProcess({ command: 'origin', name: `origin-${i}`, dir, ...profiling(), config: {
      listen: { port: ports[i] }, cluster: { origins: originUrls, replicas: Math.min(3, ORIGINS) }, store: { dir: join(dir, `origin-${i}`) },
      backends: BACKEND === 'fs' ? [{ namespace: '.*', fs: { root: join(dir, 'backend') } }] : [], logLevel: 'warn',
    } }));
  }
  const biPort = ports[ORIGINS]!;
  procs.push(await startKrillProcess({ command: 'build-index', name: 'build-index', dir, config: { listen: { port: biPort }, db: join(dir, 'tags.db'), origins: { urls: originUrls }, logLevel: 'warn' } }));
  const proxy = (name: string, port: number, redirect: boolean) => startKrillProcess({ command: 'proxy', name, dir, ...profiling(), config: {
    listen: { port }, origins: { urls: originUrls }, buildIndex: { urls: [`http://127.0.0.1:${biPort}`] }, uploadDir: join(dir, `uploads-${name}`),
    blobs: { redirect }, logLevel: 'warn',
  } });
  const proxyPort = ports[ORIGINS + 1]!;
  const redirectPort = ports[ORIGINS + 2]!;
  procs.push(await proxy('proxy', proxyPort, false), await proxy('proxy-redirect', redirectPort, true));
  return { url: `http://127.0.0.1:${proxyPort}`, redirectUrl: `http://127.0.0.1:${redirectPort}`, procs };
}

type Cpu = { serverCores: number; clientCores: number };
const mbps = (ms: number) => SIZE / 1e6 / (ms / 1000);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

async function main(): Promise<void> {
  const cache = join(tmpdir(), 'krill-bench');
  mkdirSync(cache, { recursive: true });
  const work = mkdtempSync(join(tmpdir(), 'krill-bench-blob-'));
  process.stdout.write(`bench:blob: ${SIZE / 1024 / 1024} MiB blob, ${RUNS} runs per side, krill with ${ORIGINS} origin(s) (${ORIGINS > 1 ? 'replicating' : 'no replicas'}), backend ${BACKEND}\n`);
  const blobs = [];
  for (let run = 0; run < RUNS; run++) blobs.push(await makeBlob(cache, run));
  type Side = { push: number[]; pull: number[]; cpu: { push: Cpu[]; pull: Cpu[] } };
  const side = (): Side => ({ push: [], pull: [], cpu: { push: [], pull: [] } });
  // `krill redirect` only pulls, what `krill` pushed, through the redirecting proxy.
  const results: Record<string, Side> = { krill: side(), 'krill redirect': side(), 'docker-registry': side() };
  const krill = await startKrill(join(work, 'krill'));
  const registry = await startDockerRegistry({ dir: join(work, 'registry') });
  try {
    for (let run = 0; run < RUNS; run++) {
      const blob = blobs[run]!;
      // Alternate sides so neither always runs on a warmer page cache.
      const krillPids = krill.procs.map((p) => p.child.pid!);
      const sides = [['krill', krill.url, krillPids], ['docker-registry', registry.url, [registry.pid]]] as const;
      for (const [name, base, pids] of sides) {
        const repo = `bench/run${run}`;
        const r = results[name]!;
        // Dirty pages left by the previous step would be flushed during this one and slow whichever
        // side comes next; each measurement starts with them written out.
        execFileSync('sync');
        const up = await withCpu([...pids], () => push(base, repo, blob.file, blob.digest));
        r.push.push(mbps(up.value));
        r.cpu.push.push(up);
        execFileSync('sync');
        const down = await withCpu([...pids], () => pull(base, repo, blob.digest));
        r.pull.push(mbps(down.value));
        r.cpu.pull.push(down);
        if (name !== 'krill') continue;
        const rr = results['krill redirect']!;
        execFileSync('sync');
        const redirected = await withCpu([...pids], () => pull(krill.redirectUrl, repo, blob.digest));
        rr.pull.push(mbps(redirected.value));
        rr.cpu.pull.push(redirected);
      }
    }
  } finally {
    await Promise.all(krill.procs.map((p) => p.kill('SIGTERM')));
    await registry.close();
    rmSync(work, { recursive: true, force: true });
  }
  const figures = (xs: number[]) => xs.length === 0 ? `${'-'.padStart(10)} ${'-'.padStart(12)}     ` : `best ${Math.max(...xs).toFixed(0).padStart(5)} median ${median(xs).toFixed(0).padStart(5)} MB/s`;
  const row = (name: string) => `${name.padEnd(16)} push ${figures(results[name]!.push)} | pull ${figures(results[name]!.pull)}`;
  const names = ['krill', 'krill redirect', 'docker-registry'];
  const k = results['krill']!;
  const kr = results['krill redirect']!;
  const d = results['docker-registry']!;
  process.stdout.write(`${names.map(row).join('\n')}\n`);
  // Cores busy on average during each step (CPU seconds / wall seconds), medians over the runs:
  // with 2 cores, a side whose server + client come near 2.0 was bound by CPU, not by disk.
  const cores = (xs: Cpu[]) => xs.length === 0 ? '-' : `server ${median(xs.map((c) => c.serverCores)).toFixed(2)} + client ${median(xs.map((c) => c.clientCores)).toFixed(2)}`;
  for (const name of names) {
    const c = results[name]!.cpu;
    process.stdout.write(`${name.padEnd(16)} cores busy: push ${cores(c.push)} | pull ${cores(c.pull)}\n`);
  }
  const ratio = (a: number[], b: number[]) => (median(a) / median(b)).toFixed(2);
  process.stdout.write(`ratio krill/docker-registry (median): push ${ratio(k.push, d.push)}, pull ${ratio(k.pull, d.pull)} streamed, ${ratio(kr.pull, d.pull)} redirected, `
    + `push+pull ${((median(k.push) + median(k.pull)) / (median(d.push) + median(d.pull))).toFixed(2)} streamed (goal >= 0.80)\n`);
}

main().catch((err) => {
  process.stderr.write(`bench:blob failed: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
}).finally(() => dispatcher.close());
