import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { smallImage } from './fixtures/oci-image.js';
import { KRILL_BIN, freePort } from './harness/krill-process.js';
import { createCriClient } from './harness/cri-client.js';
import { copy, inspect } from './harness/skopeo.js';

// A failed assertion must not leave the cluster running: its processes and state go in any case.
const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

describe('krill devcluster', () => {
  it('starts origins, tracker, build-index, proxy, an agent, containerd and a node daemon, serves a push, pulls through the proxy, both registries and the CRI socket, and stops them all on SIGINT', async () => {
    const work = mkdtempSync(join(tmpdir(), 'krill-devcluster-'));
    // The layout uses base..base+22; a free base below the ephemeral range almost always has them free too.
    const base = await freePort();
    const child = spawn(process.execPath, [KRILL_BIN, 'devcluster', '--dir', join(work, 'cluster'), '--base-port', String(base)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (out += c));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    cleanups.push(() => {
      // SIGINT stops the components too; a cluster that already stopped ignores it.
      if (child.exitCode === null) child.kill('SIGINT');
      void exited.then(() => rmSync(work, { recursive: true, force: true }));
    });
    const deadline = Date.now() + 60_000;
    while (!out.includes('devcluster is up')) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`devcluster did not come up:\n${out}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    for (const port of [base, base + 2, base + 3, base + 4, base + 5, base + 12, base + 15, base + 22]) expect(out).toContain(`http://127.0.0.1:${port}`);
    const img = await smallImage(join(work, 'img'), 'v1', 'devcluster');
    const ref = `docker://127.0.0.1:${base}/demo/app:v1`;
    await copy(`oci:${img.dir}:v1`, ref);
    await copy(ref, `oci:${join(work, 'out')}:v1`);
    expect((await inspect(`oci:${join(work, 'out')}:v1`))['Digest']).toBe(img.manifest.digest);
    // Through each node agent: every blob over the peer wire, from the origins and the other agent.
    for (const agentPort of [base + 5, base + 15]) {
      const out = join(work, `out-${agentPort}`);
      await copy(`docker://127.0.0.1:${agentPort}/demo/app:v1`, `oci:${out}:v1`);
      expect((await inspect(`oci:${out}:v1`))['Digest']).toBe(img.manifest.digest);
      const metrics = await (await fetch(`http://127.0.0.1:${agentPort}/metrics`)).text();
      const got = [...metrics.matchAll(/^krill_agent_received_bytes\{source="(peers|origins)"[^}]*\} (\d+)/gm)].reduce((n, m) => n + Number(m[2]), 0);
      expect(got).toBeGreaterThan(0);
    }
    // The last agent is a node daemon in front of the devcluster's own containerd: PullImage
    // through its CRI socket puts the image into containerd.
    const cri = createCriClient(join(work, 'cluster', 'node-1', 'cri.sock'));
    try {
      expect(await cri.pullImage(`127.0.0.1:${base}/demo/app:v1`)).toBe(img.images[0]!.config.digest);
    } finally {
      cri.close();
    }
    const images = execFileSync('ctr', ['--address', join(work, 'cluster', 'containerd', 'containerd.sock'), '-n', 'k8s.io', 'images', 'ls', '-q'], { encoding: 'utf8' });
    expect(images).toContain(`127.0.0.1:${base}/demo/app:v1`);
    child.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(out).toContain('devcluster stopped');
    await expect(fetch(`http://127.0.0.1:${base}/health`)).rejects.toThrow();
    await expect(fetch(`http://127.0.0.1:${base + 2}/health`)).rejects.toThrow();
    expect(existsSync(join(work, 'cluster', 'containerd', 'containerd.sock'))).toBe(false);
  });
});
