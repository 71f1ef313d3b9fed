import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runSwarm } from './harness/lab-swarm.js';

const MB = 1e6;
const work = mkdtempSync(join(tmpdir(), 'krill-lab-swarm-'));
afterAll(() => { if (!process.env.KEEP) rmSync(work, { recursive: true, force: true }); });

describe('the lab: agents on emulated hosts (issue 3, acceptance 5)', () => {
  it('4 agent hosts + 1 origin host at 5 MB/s each get a 40 MB blob, all verified, mostly from each other', async () => {
    const r = await runSwarm({ dir: join(work, 'run'), agents: 4, sizeBytes: 40 * MB, capMBps: 5, mode: 'krill', timeoutMs: 120_000 });
    expect(r.summary.failed).toBe(0);
    expect(r.summary.completed).toBe(4);
    // Each agent's cache file re-hashed to the digest here, after the agent's own checks.
    expect(r.verified).toBe(4);
    const b = r.summary.bytesBySource;
    expect((b['peers'] ?? 0) + (b['origins'] ?? 0) + (b['originHttp'] ?? 0)).toBe(4 * 40 * MB);
    // Served to four hosts from a link that carries one copy in the time they take: the origin
    // sent well under the four copies a direct download needs (counted on its link).
    expect(r.originSent).toBeLessThan(3 * 40 * MB);
    expect(b['peers']).toBeGreaterThan(40 * MB);
  });

  it('an agent killed mid-transfer does not stop the others (after a warm-up blob, with a link trace)', async () => {
    const r = await runSwarm({
      dir: join(work, 'kill'), agents: 3, sizeBytes: 20 * MB, capMBps: 5, mode: 'krill', timeoutMs: 120_000, killFirstAgentAfterMs: 1500,
      warmupBytes: 5 * MB, traceMs: 500,
    });
    expect(r.summary.completed).toBe(2);
    expect(r.summary.failed).toBe(1);
    expect(r.verified).toBe(2);
    // The warm-up blob's bytes are not the run's: the two that finished got exactly the blob.
    const b = r.summary.bytesBySource;
    expect((b['peers'] ?? 0) + (b['origins'] ?? 0) + (b['originHttp'] ?? 0)).toBe(2 * 20 * MB);
    // The trace has a line per half second of the run (at least 20 MB at 5 MB/s), and the origin's
    // link carried the blob at up to its cap.
    expect(r.trace.length).toBeGreaterThanOrEqual(7);
    const originRates = r.trace.map((l) => Number(/origin sent\s+([\d.]+)/.exec(l)?.[1]));
    expect(Math.max(...originRates)).toBeGreaterThan(2);
    expect(Math.max(...originRates)).toBeLessThan(5.5);
  });
});
