import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { sha256 } from '@krill/lib';
import { bufferSource, eventually, headStatus, randomBlob, readAll, trackedOriginClusters } from '../testing/origin-cluster.js';

const cluster = trackedOriginClusters();

describe('origin client', () => {
  it('fails over to the next owner when the first is down', async () => {
    const c = await cluster(3);
    const { b, d } = randomBlob(100_000);
    const first = c.client.owners(d)[0]!;
    await c.origins.find((o) => o.url === first)!.close();
    await c.client.upload('team/app', d, bufferSource(b));
    expect((await readAll((await c.client.download('team/app', d)).body)).equals(b)).toBe(true);
  });

  it('fails over when the first owner answers 503 (its store has no room)', async () => {
    const c = await cluster(2, { replicas: 1, configure: (i) => (i === 0 ? { store: { capacityBytes: 10 } } : {}) });
    const full = c.urls[0]!;
    let blob = randomBlob(1000);
    while (c.client.owners(blob.d)[0] !== full) blob = randomBlob(1000);
    await c.client.upload('team/app', blob.d, bufferSource(blob.b));
    expect(await headStatus(full, blob.d)).toBe(404);
    expect(await headStatus(c.urls[1]!, blob.d)).toBe(200);
  });

  it('resumes a download from another origin when the one serving it dies', async () => {
    const c = await cluster(2, { replicas: 2 });
    const { b, d } = randomBlob(24 * 1024 * 1024);
    await c.client.upload('team/app', d, bufferSource(b));
    await eventually(async () => (await Promise.all(c.urls.map((u) => headStatus(u, d)))).every((s) => s === 200));
    const { size, body } = await c.client.download('team/app', d);
    expect(size).toBe(b.length);
    const chunks: Buffer[] = [];
    let got = 0;
    let killed = false;
    for await (const chunk of body) {
      chunks.push(chunk as Buffer);
      got += (chunk as Buffer).length;
      if (!killed && got >= 1024 * 1024) {
        killed = true;
        // Closing ends its connections after the 200 ms shutdown bound, mid-body.
        await c.origins.find((o) => o.url === c.client.owners(d)[0])!.close();
      }
    }
    expect(killed).toBe(true);
    expect(Buffer.concat(chunks).equals(b)).toBe(true);
  });

  it('reads ranges, caps fetchBytes and reports a blob that nobody has', async () => {
    const c = await cluster(2);
    const { b, d } = randomBlob(5000);
    await c.client.upload('team/app', d, bufferSource(b));
    const part = await c.client.download('team/app', d, { range: { start: 10, end: 19 } });
    expect(part.size).toBe(5000);
    expect((await readAll(part.body)).equals(b.subarray(10, 20))).toBe(true);
    expect((await c.client.fetchBytes('team/app', d, 5000)).equals(b)).toBe(true);
    expect(await c.client.fetchBytes('team/app', d, 4999).catch((e) => e.code)).toBe('ERR_SIZE_INVALID');
    expect(await c.client.stat('team/app', d)).toEqual({ size: 5000 });
    expect((await c.client.metainfo('team/app', d)).pieces).toHaveLength(1);
    const absent = sha256('absent');
    expect(await c.client.download('team/app', absent).catch((e) => e.code)).toBe('ERR_BLOB_NOT_FOUND');
    expect(await c.client.upload('team/app', absent, { size: 3, open: () => Readable.from([Buffer.from('abc')]) }).catch((e) => e.code)).toBe('ERR_DIGEST_MISMATCH');
  });

  it('answers ERR_ORIGIN_UNAVAILABLE when every origin is down', async () => {
    const c = await cluster(2);
    await Promise.all(c.origins.map((o) => o.close()));
    const { b, d } = randomBlob(10);
    expect(await c.client.upload('team/app', d, bufferSource(b)).catch((e) => e.code)).toBe('ERR_ORIGIN_UNAVAILABLE');
    expect(await c.client.stat('team/app', d).catch((e) => e.code)).toBe('ERR_ORIGIN_UNAVAILABLE');
  });
});
