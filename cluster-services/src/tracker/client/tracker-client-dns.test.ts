import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createMembership, sha256, silentLogger, startTestDnsServer, validateConfig, type Digest, type TestDnsServer } from '@krill/lib';
import { trackerConfigSchema, type TrackerConfig } from '../config.js';
import { startTracker } from '../server/tracker-server.js';
import { createTrackerClient } from './http-tracker-client.js';

const logger = silentLogger();
const SRV = '_tracker._tcp.trackers.krill.test';
const id = (n: number) => n.toString(16).padStart(40, '0');

describe('DNS membership: the tracker client follows the trackers SRV records name', () => {
  let dns: TestDnsServer;
  const closers: Array<() => Promise<void>> = [];
  beforeEach(async () => {
    dns = await startTestDnsServer();
  });
  afterEach(async () => {
    for (const c of closers.splice(0).reverse()) await c();
    await dns.close();
  });

  async function tracker(): Promise<{ url: string; port: number; close(): Promise<void> }> {
    const t = await startTracker(validateConfig<TrackerConfig>(trackerConfigSchema, { listen: { port: 0 }, origins: { urls: ['http://127.0.0.1:1'] } }), { logger });
    closers.push(() => t.close());
    return { ...t, port: Number(new URL(t.url).port) };
  }

  it('announces to the trackers DNS names, follows a scale-up, and fails over when one leaves', async () => {
    const a = await tracker();
    const b = await tracker();
    // SRV targets are 127.0.0.1 (a name HTTP can reach without this test's DNS), each with its own port.
    await dns.set({}, { [SRV]: [{ target: '127.0.0.1', port: a.port }] });
    const members = createMembership({ what: 'trackers', dns: { name: SRV, records: 'SRV', scheme: 'http', refreshMs: 100 }, resolver: dns.resolver, logger });
    const client = createTrackerClient({ urls: members, logger });
    closers.push(async () => client.close());

    const digest = sha256('blob-1') as Digest;
    const announce = (n: number) => client.announce({ digest, namespace: 'team/app', peerId: id(n), ip: '10.0.0.1', port: 16000 + n, complete: n === 1, origin: false });
    await announce(1);
    expect((await announce(2)).peers.map((p) => p.peerId)).toEqual([id(1)]);

    // Scale up to two trackers: the ring now has both; every announce still gets an answer.
    await dns.set({}, { [SRV]: [{ target: '127.0.0.1', port: a.port }, { target: '127.0.0.1', port: b.port }] });
    await members.refresh();
    expect(members.current()).toEqual([a.url, b.url].sort());
    // The first tracker goes away while DNS still names it: the client fails over to the other.
    await a.close();
    const other = sha256('blob-2') as Digest;
    await client.announce({ digest: other, namespace: 'team/app', peerId: id(3), ip: '10.0.0.1', port: 16003, complete: true, origin: false });
    const got = await client.announce({ digest: other, namespace: 'team/app', peerId: id(4), ip: '10.0.0.1', port: 16004, complete: false, origin: false });
    // Only the second tracker is up, so it answered both, and knows the first announcer.
    expect(got.peers.map((p) => p.peerId)).toEqual([id(3)]);
  });

  it('fails an announce with a clear error while DNS names no tracker', async () => {
    const members = createMembership({ what: 'trackers', dns: { name: SRV, records: 'SRV', scheme: 'http', refreshMs: 100 }, resolver: dns.resolver, logger });
    const client = createTrackerClient({ urls: members, logger });
    closers.push(async () => client.close());
    const err = (await client.announce({ digest: sha256('x') as Digest, namespace: 'n', peerId: id(1), ip: '10.0.0.1', port: 1, complete: false, origin: false }).catch((e: unknown) => e)) as { code: string; message: string };
    expect(err.code).toBe('ERR_TRACKER_UNAVAILABLE');
    expect(err.message).toMatch(/no members known: trackers from DNS SRV records of _tracker\._tcp\.trackers\.krill\.test \(last lookup: the name has no SRV records\)/);
  });
});
