import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { sha256, silentLogger, validateConfig, type Digest } from '@krill/lib';
import { headStatus, randomBlob, trackedOriginClusters, type OriginCluster } from '../../origin/testing/origin-cluster.js';
import { proxyConfigSchema, type ProxyConfig } from '../config.js';
import { createMemoryBuildIndexClient } from '../testing/index.js';
import { startProxy } from './proxy-server.js';

const cluster = trackedOriginClusters();
const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

/** A proxy over real origins: chunks stream through to an upload on one of them. */
async function proxyOver(c: OriginCluster) {
  const root = mkdtempSync(join(tmpdir(), 'krill-proxy-stream-'));
  const config = validateConfig<ProxyConfig>(proxyConfigSchema, {
    listen: { port: 0 }, origins: { urls: c.urls, replicas: 1 }, buildIndex: { urls: ['http://127.0.0.1:1'] }, uploadDir: join(root, 'uploads'),
  });
  const proxy = await startProxy(config, { logger: silentLogger(), buildIndexClient: createMemoryBuildIndexClient() });
  closers.push(async () => {
    await proxy.close();
    rmSync(root, { recursive: true, force: true });
  });
  return { v2: `${proxy.url}/v2`, url: proxy.url, uploadDir: join(root, 'uploads') };
}

async function oci(res: Response): Promise<{ status: number; code: string | undefined }> {
  const body = (await res.json().catch(() => ({}))) as { errors?: Array<{ code: string }> };
  return { status: res.status, code: body.errors?.[0]?.code };
}
const withDigest = (url: string, d: Digest) => `${url}?digest=${encodeURIComponent(d)}`;

async function session(base: string, v2: string): Promise<string> {
  const res = await fetch(`${v2}/team/app/blobs/uploads/`, { method: 'POST' });
  expect(res.status).toBe(202);
  return new URL(res.headers.get('location')!, base).toString();
}

/** Origins whose upload area holds a non-empty upload: where a session's chunks went. */
function holders(c: OriginCluster): number[] {
  return c.urls.map((_, i) => i).filter((i) => {
    const d = join(c.root, `o${i}`, 'uploads');
    return existsSync(d) && readdirSync(d).length > 0;
  });
}

/** Declares `declared` bytes, sends `sent` and keeps the connection open; resolves the socket and the start of its reply. */
function stalledPatch(url: string, declared: number, sent: Buffer): Promise<{ sock: Socket; reply: Promise<string> }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const sock = connect(Number(u.port), u.hostname, () => {
      let text = '';
      const reply = new Promise<string>((r) => {
        sock.on('data', (c) => {
          text += c;
          // The status line is enough: the server may keep reading the rest of the body.
          if (text.includes('\r\n')) r(text);
        });
        sock.on('close', () => r(text));
        sock.on('error', () => r(text));
      });
      sock.write(`PATCH ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\nContent-Length: ${declared}\r\n\r\n`);
      sock.write(sent, () => setTimeout(() => resolve({ sock, reply }), 200));
    });
    sock.once('error', reject);
  });
}

describe('proxy: chunks stream through to an origin upload', () => {
  it('a chunked push lands on an origin, verified, with nothing spooled at the proxy', async () => {
    const c = await cluster(2, { replicas: 1 });
    const p = await proxyOver(c);
    const { b, d } = randomBlob(3 * 1024 * 1024);
    const url = await session(p.url, p.v2);
    expect((await fetch(url, { method: 'PATCH', body: b.subarray(0, 1_000_000), headers: { 'content-range': '0-999999' } })).status).toBe(202);
    expect(holders(c)).toHaveLength(1);
    expect(readdirSync(p.uploadDir)).toEqual([]);
    expect((await fetch(url, { method: 'PATCH', body: b.subarray(1_000_000) })).status).toBe(202);
    const done = await fetch(withDigest(url, d), { method: 'PUT' });
    expect(done.status).toBe(201);
    expect(holders(c)).toEqual([]);
    const got = Buffer.from(await (await fetch(`${p.v2}/team/app/blobs/${d}`)).arrayBuffer());
    expect(sha256(got)).toBe(d);
  });

  it('a chunk that breaks off or has the wrong length is rolled back on the origin; a resend completes the blob', async () => {
    const c = await cluster(1, { replicas: 1 });
    const p = await proxyOver(c);
    const url = await session(p.url, p.v2);
    expect((await fetch(url, { method: 'PATCH', body: 'first-' })).status).toBe(202);
    const cut = await stalledPatch(url, 100_000, Buffer.alloc(40_000, 1));
    cut.sock.destroy();
    expect(await oci(await fetch(url, { method: 'PATCH', body: 'sec', headers: { 'content-range': '6-11' } }))).toEqual({ status: 416, code: 'RANGE_INVALID' });
    const retry = await fetch(url, { method: 'PATCH', body: 'second', headers: { 'content-range': '6-11' } });
    expect([retry.status, retry.headers.get('range')]).toEqual([202, '0-11']);
    expect((await fetch(withDigest(url, sha256('first-second')), { method: 'PUT' })).status).toBe(201);
    expect(await headStatus(c.urls[0]!, sha256('first-second'))).toBe(200);
  });

  it('an origin that dies mid-session fails the chunk cleanly: nothing stored, the session ends, a new one goes to a live origin', async () => {
    const c = await cluster(2, { replicas: 2 });
    const p = await proxyOver(c);
    const { b, d } = randomBlob(2 * 1024 * 1024);
    const url = await session(p.url, p.v2);
    expect((await fetch(url, { method: 'PATCH', body: b.subarray(0, 1_000_000) })).status).toBe(202);
    const [dead] = holders(c);
    const live = 1 - dead!;
    // The next chunk is in flight when its origin goes away.
    const inflight = await stalledPatch(url, b.length - 1_000_000, b.subarray(1_000_000, 1_500_000));
    await c.origins[dead!]!.close();
    const reply = await Promise.race([inflight.reply, new Promise<string>((r) => setTimeout(() => r('no reply'), 5_000))]);
    inflight.sock.destroy();
    expect(reply).toMatch(/^HTTP\/1\.1 5\d\d /);
    expect(await oci(await fetch(url))).toEqual({ status: 404, code: 'BLOB_UPLOAD_UNKNOWN' });
    expect(await headStatus(c.urls[live]!, d)).toBe(404);
    expect(existsSync(join(c.root, `o${dead}`, 'blobs', d.slice(7, 9), d.slice(7)))).toBe(false);
    // The client starts again; the session goes to the origin that answers.
    const again = await session(p.url, p.v2);
    expect((await fetch(again, { method: 'PATCH', body: b })).status).toBe(202);
    expect((await fetch(withDigest(again, d), { method: 'PUT' })).status).toBe(201);
    expect(await headStatus(c.urls[live]!, d)).toBe(200);
  });

  it('an origin that dies before the PUT makes the commit a 5xx and stores nothing', async () => {
    const c = await cluster(2, { replicas: 2 });
    const p = await proxyOver(c);
    const { b, d } = randomBlob(500_000);
    const url = await session(p.url, p.v2);
    expect((await fetch(url, { method: 'PATCH', body: b })).status).toBe(202);
    const [dead] = holders(c);
    await c.origins[dead!]!.close();
    expect((await oci(await fetch(withDigest(url, d), { method: 'PUT' }))).status).toBeGreaterThanOrEqual(500);
    expect(await oci(await fetch(url))).toEqual({ status: 404, code: 'BLOB_UPLOAD_UNKNOWN' });
    expect(await headStatus(c.urls[1 - dead!]!, d)).toBe(404);
  });
});
