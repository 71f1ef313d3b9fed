import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { sha256, silentLogger, type Digest } from '@krill/lib';
import { createFsBackend, createOriginClient } from '@krill/cluster-services';
import { freePort, startKrillProcess, type KrillProcess } from './harness/krill-process.js';

const logger = silentLogger();
const MiB = 1024 * 1024;
let procs: KrillProcess[] = [];
afterEach(async () => {
  await Promise.all(procs.map((p) => p.kill('SIGKILL')));
  procs = [];
});

/** Emits `data` a MiB at a time with a pause between, so a transfer is still running when the test acts. */
function slow(data: Buffer, pauseMs: number): Readable {
  let off = 0;
  return new Readable({
    read() {
      if (off >= data.length) return void this.push(null);
      const chunk = data.subarray(off, off + MiB);
      off += MiB;
      setTimeout(() => this.push(chunk), pauseMs);
    },
  });
}

/** Every blob the origin's store shows must hash to its name: nothing partial, nothing corrupt. */
function verifyStore(storeDir: string): Digest[] {
  const seen: Digest[] = [];
  const blobs = join(storeDir, 'blobs');
  for (const shard of existsSync(blobs) ? readdirSync(blobs) : []) {
    for (const hex of readdirSync(join(blobs, shard))) {
      const data = readFileSync(join(blobs, shard, hex, 'data'));
      expect(createHash('sha256').update(data).digest('hex')).toBe(hex);
      seen.push(`sha256:${hex}`);
    }
  }
  return seen;
}

describe('origin crash (acceptance 4)', () => {
  it('SIGKILL mid-upload: nothing corrupt visible, the client finishes on another owner, queued write-backs complete after restart', async () => {
    const root = mkdtempSync(join(tmpdir(), 'krill-crash-'));
    const ports = [await freePort(), await freePort()];
    const urls = ports.map((p) => `http://127.0.0.1:${p}`);
    const config = (i: number) => ({
      listen: { host: '127.0.0.1', port: ports[i] },
      cluster: { origins: urls, replicas: 2 },
      store: { dir: join(root, `origin-${i}`) },
      backends: [{ namespace: '.*', fs: { root: join(root, `backend-${i}`) } }],
      writeback: { retryMinMs: 100, retryMaxMs: 300 },
    });
    const start = (i: number) => startKrillProcess({ command: 'origin', name: `origin-${i}`, dir: root, config: config(i) });
    // Origin 0's backend is blocked by a file where its directory should be, so its write-backs stay queued.
    writeFileSync(join(root, 'backend-0'), 'blocked');
    procs = [await start(0), await start(1)];
    const client = createOriginClient({ origins: urls, replicas: 2, logger });

    // A blob whose first owner is origin 0: its write-back task is pending when origin 0 dies.
    let queued: { b: Buffer; d: Digest };
    do {
      const b = randomBytes(256 * 1024);
      queued = { b, d: sha256(b) };
    } while (client.owners(queued.d)[0] !== urls[0]);
    await client.upload('team/app', queued.d, { size: queued.b.length, open: () => Readable.from([queued.b]) });

    // A 48 MiB upload to origin 0, streamed slowly; origin 0 is killed while it is in flight.
    let big: { b: Buffer; d: Digest };
    do {
      const b = randomBytes(48 * MiB);
      big = { b, d: sha256(b) };
    } while (client.owners(big.d)[0] !== urls[0]);
    const opens: number[] = [];
    const upload = client.upload('team/app', big.d, { size: big.b.length, open: () => { opens.push(Date.now()); return opens.length === 1 ? slow(big.b, 20) : Readable.from([big.b]); } });
    await new Promise((r) => setTimeout(r, 400));
    expect(await procs[0]!.kill('SIGKILL')).toBe('SIGKILL');
    await upload;
    expect(opens).toHaveLength(2);

    // The second owner has the whole blob, verified.
    const got = await client.download('team/app', big.d);
    const h = createHash('sha256');
    for await (const c of got.body) h.update(c as Buffer);
    expect(`sha256:${h.digest('hex')}`).toBe(big.d);

    // What the killed origin left on disk: a partial upload in its temporary area (so the kill
    // really came mid-transfer), and among its blobs only verified ones, not the partial upload.
    const partial = readdirSync(join(root, 'origin-0', 'tmp')).map((d) => join(root, 'origin-0', 'tmp', d, 'data')).filter(existsSync);
    expect(partial.length).toBeGreaterThan(0);
    expect(partial.every((f) => statSync(f).size < big.b.length)).toBe(true);
    const left = verifyStore(join(root, 'origin-0'));
    expect(left).not.toContain(big.d);
    expect(left).toContain(queued.d);

    // Restart with the backend unblocked: the write-back queued before the kill completes.
    rmSync(join(root, 'backend-0'));
    const leftovers = readdirSync(join(root, 'origin-0', 'tmp'));
    procs[0] = await start(0);
    // The killed origin's temporary files are gone; the restarted one may already have new ones
    // of its own (the write-back computing a metainfo sidecar), which is not what this checks.
    expect(readdirSync(join(root, 'origin-0', 'tmp')).filter((f) => leftovers.includes(f))).toEqual([]);
    expect((await fetch(`${urls[0]}/blobs/${big.d}?local=1`, { method: 'HEAD' })).status).toBe(404);
    // Everything the restarted origin serves hashes to its digest.
    for (const d of verifyStore(join(root, 'origin-0'))) {
      const res = await fetch(`${urls[0]}/blobs/${d}?local=1`);
      expect(res.status).toBe(200);
      expect(sha256(Buffer.from(await res.arrayBuffer()))).toBe(d);
    }
    const backend0 = createFsBackend({ root: join(root, 'backend-0'), logger });
    const deadline = Date.now() + 15_000;
    while (!(await backend0.stat('team/app', queued.d).then(() => true, () => false))) {
      if (Date.now() > deadline) throw new Error('write-back queued before the kill did not complete after restart');
      await new Promise((r) => setTimeout(r, 100));
    }
    await client.close();
  });
});
