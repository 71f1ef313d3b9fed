import { execFileSync } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Agent, request } from 'undici';
import { startDockerRegistry } from '../harness/docker-registry.js';
import { freePort, startKrillProcess, type KrillProcess } from '../harness/krill-process.js';

/**
 * `npm run bench:blob [-- --size-mib 1024 --runs 3 --origins 1]`: pushes and then pulls one blob
 * through krill's proxy and origin(s), each its own process, and the same blob to and from
 * Debian's docker-registry on the same machine, in one run; prints MB/s (10^6 bytes) for each
 * and the ratios. Both sides get the same client: POST, one streamed PATCH, PUT, then a GET
 * whose bytes are hashed and checked. Exits non-zero if any digest comes back wrong.
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
const dispatcher = new Agent({ headersTimeout: 600_000, bodyTimeout: 600_000 });

async function makeBlob(dir: string): Promise<{ file: string; digest: string }> {
  const file = join(dir, `blob-${SIZE}.bin`);
  if (existsSync(`${file}.digest`)) return { file, digest: readFileSync(`${file}.digest`, 'utf8') };
  const cipher = createCipheriv('aes-128-ctr', Buffer.alloc(16, 7), Buffer.alloc(16));
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
  const res = await request(`${base}/v2/${repo}/blobs/${digest}`, { method: 'GET', dispatcher, maxRedirections: 0 } as Parameters<typeof request>[1]);
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

async function startKrill(dir: string): Promise<{ url: string; procs: KrillProcess[] }> {
  mkdirSync(dir, { recursive: true });
  const ports = await Promise.all(Array.from({ length: ORIGINS + 2 }, () => freePort()));
  const originUrls = ports.slice(0, ORIGINS).map((p) => `http://127.0.0.1:${p}`);
  const procs: KrillProcess[] = [];
  for (let i = 0; i < ORIGINS; i++) {
    procs.push(await startKrillProcess({ command: 'origin', name: `origin-${i}`, dir, config: {
      listen: { port: ports[i] }, cluster: { origins: originUrls, replicas: Math.min(3, ORIGINS) }, store: { dir: join(dir, `origin-${i}`) },
      backends: BACKEND === 'fs' ? [{ namespace: '.*', fs: { root: join(dir, 'backend') } }] : [], logLevel: 'warn',
    } }));
  }
  const biPort = ports[ORIGINS]!;
  procs.push(await startKrillProcess({ command: 'build-index', name: 'build-index', dir, config: { listen: { port: biPort }, db: join(dir, 'tags.db'), origins: { urls: originUrls }, logLevel: 'warn' } }));
  const proxyPort = ports[ORIGINS + 1]!;
  procs.push(await startKrillProcess({ command: 'proxy', name: 'proxy', dir, config: {
    listen: { port: proxyPort }, origins: { urls: originUrls }, buildIndex: { urls: [`http://127.0.0.1:${biPort}`] }, uploadDir: join(dir, 'uploads'), logLevel: 'warn',
  } }));
  return { url: `http://127.0.0.1:${proxyPort}`, procs };
}

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
  const blob = await makeBlob(cache);
  const results: Record<string, { push: number[]; pull: number[] }> = { krill: { push: [], pull: [] }, 'docker-registry': { push: [], pull: [] } };
  const krill = await startKrill(join(work, 'krill'));
  const registry = await startDockerRegistry({ dir: join(work, 'registry') });
  try {
    for (let run = 0; run < RUNS; run++) {
      // Alternate sides so neither always runs on a warmer page cache.
      for (const [name, base] of [['krill', krill.url], ['docker-registry', registry.url]] as const) {
        const repo = `bench/run${run}`;
        // Dirty pages left by the previous step would be flushed during this one and slow whichever
        // side comes next; each measurement starts with them written out.
        execFileSync('sync');
        results[name]!.push.push(mbps(await push(base, repo, blob.file, blob.digest)));
        execFileSync('sync');
        results[name]!.pull.push(mbps(await pull(base, repo, blob.digest)));
      }
      // Each run pushes the same digest: delete nothing, but use a fresh repository so both sides
      // store it again (krill's origin deduplicates by digest, as the registry does per repository).
    }
  } finally {
    await Promise.all(krill.procs.map((p) => p.kill('SIGTERM')));
    await registry.close();
    rmSync(work, { recursive: true, force: true });
  }
  const row = (name: string) => {
    const r = results[name]!;
    return `${name.padEnd(16)} push best ${Math.max(...r.push).toFixed(0).padStart(5)} median ${median(r.push).toFixed(0).padStart(5)} MB/s | pull best ${Math.max(...r.pull).toFixed(0).padStart(5)} median ${median(r.pull).toFixed(0).padStart(5)} MB/s`;
  };
  const k = results['krill']!;
  const d = results['docker-registry']!;
  process.stdout.write(`${row('krill')}\n${row('docker-registry')}\n`);
  process.stdout.write(`ratio krill/docker-registry (median): push ${(median(k.push) / median(d.push)).toFixed(2)}, pull ${(median(k.pull) / median(d.pull)).toFixed(2)}, push+pull ${((median(k.push) + median(k.pull)) / (median(d.push) + median(d.pull))).toFixed(2)} (goal >= 0.80)\n`);
}

main().catch((err) => {
  process.stderr.write(`bench:blob failed: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
}).finally(() => dispatcher.close());
