import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PieceFile, PieceHasher, sha256 } from '@krill/lib';
import { startCluster, type Cluster } from './harness/cluster.js';

/**
 * A full disk, for real: the cluster's directory is a 4 MiB tmpfs (mounted as root, like the
 * lab's namespaces), so writes fail with ENOSPC where a real origin's or agent's would.
 */
let dir: string;
let cluster: Cluster | undefined;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'krill-store-full-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', dir]);
});
afterAll(async () => {
  await cluster?.close();
  execFileSync('umount', [dir]);
  rmSync(dir, { recursive: true, force: true });
});

const put = (v2: string, repo: string, bytes: Buffer) =>
  fetch(`${v2}/${repo}/blobs/uploads/?digest=${encodeURIComponent(sha256(bytes))}`, { method: 'POST', body: bytes, headers: { 'content-type': 'application/octet-stream' } });

describe('a full disk', () => {
  it('a push the origin has no room for gets 507 saying so, and nothing is stored; a smaller one then fits', async () => {
    cluster = await startCluster({ dir, origins: 1 });
    const v2 = `${cluster.proxyUrl}/v2`;
    const big = randomBytes(6 * 1024 * 1024);
    const res = await put(v2, 'team/app', big);
    const body = (await res.json()) as { errors: Array<{ code: string; message: string }> };
    expect(`${res.status} ${body.errors[0]?.message}`).toMatch(/^507 .*no space left on the device \(ENOSPC\)/);
    expect(await cluster.originClient.stat('team/app', sha256(big)).then(() => 'stored', (e: { code?: string }) => e.code)).toBe('ERR_BLOB_NOT_FOUND');
    // The partial copy is gone, so there is room again.
    const small = randomBytes(512 * 1024);
    const again = await put(v2, 'team/app', small);
    expect(`${again.status} ${await again.text()}`).toBe('201 ');
    await cluster.close();
    cluster = undefined;
  });

  it("an agent's piece write on a full disk fails with ERR_STORE_FULL", async () => {
    const bytes = randomBytes(8 * 1024 * 1024);
    const h = new PieceHasher(1024 * 1024);
    h.update(bytes);
    const file = await PieceFile.open(join(dir, 'blob'), h.finish(sha256(bytes)));
    let failure: unknown;
    try {
      for (let i = 0; i < 8; i++) await file.write(i, bytes.subarray(i * 1024 * 1024, (i + 1) * 1024 * 1024));
    } catch (err) {
      failure = err;
    }
    expect(failure).toMatchObject({ code: 'ERR_STORE_FULL', category: 'Unavailable' });
    expect((failure as Error).message).toMatch(/writing piece \d of sha256:[0-9a-f]{64}: no space left/);
    await file.close();
    rmSync(join(dir, 'blob'), { force: true });
  });
});
