import { afterEach, beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import pino from 'pino';
import { createLiveRing, createMembership, type Membership } from './membership.js';
import { startTestDnsServer, type TestDnsServer } from './testing/dns-server.js';

const NAME = 'origins.krill.test';
const PORT = 15002;
const url = (ip: string) => `http://${ip}:${PORT}`;

/** A logger whose lines the test reads back. */
function capturingLogger() {
  const lines: Array<{ level: number; msg: string; added?: string[]; removed?: string[] }> = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  return { logger, lines, warnings: () => lines.filter((l) => l.level === 40).map((l) => l.msg) };
}

async function eventually(check: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('DNS membership', () => {
  let server: TestDnsServer;
  const open: Membership[] = [];
  beforeEach(async () => {
    server = await startTestDnsServer({ [NAME]: ['127.0.0.2', '127.0.0.3'] });
  });
  afterEach(async () => {
    for (const m of open.splice(0)) m.close();
    await server.close();
  });
  const follow = (o: { urls?: string[]; refreshMs?: number; logger?: pino.Logger } = {}) => {
    const m = createMembership({
      what: 'origins', urls: o.urls ?? [], dns: { name: NAME, records: 'A', port: PORT, scheme: 'http', refreshMs: o.refreshMs ?? 100 },
      resolver: server.resolver, logger: o.logger ?? pino({ level: 'silent' }),
    });
    open.push(m);
    return m;
  };

  it('follows the name as it grows and shrinks, with the static URLs kept, and logs each change', async () => {
    const log = capturingLogger();
    const m = follow({ urls: ['http://static:1'], logger: log.logger });
    const seen: Array<readonly string[]> = [];
    m.subscribe((members) => seen.push(members));
    await m.refresh();
    expect(m.current()).toEqual(['http://static:1', url('127.0.0.2'), url('127.0.0.3')]);

    await server.set({ [NAME]: ['127.0.0.2', '127.0.0.3', '127.0.0.4'] });
    await eventually(() => m.current().length === 4);
    await server.set({ [NAME]: ['127.0.0.4'] });
    await eventually(() => m.current().length === 2);
    expect(m.current()).toEqual(['http://static:1', url('127.0.0.4')]);
    expect(seen.at(-1)).toEqual(m.current());

    const changes = log.lines.filter((l) => l.msg === 'origins membership changed');
    expect(changes.map((c) => [c.added, c.removed])).toEqual([
      [[url('127.0.0.2'), url('127.0.0.3')], []],
      [[url('127.0.0.4')], []],
      [[], [url('127.0.0.2'), url('127.0.0.3')]],
    ]);
  });

  it('keeps the last good list when DNS fails or answers no address, and says so in a warning', async () => {
    const log = capturingLogger();
    const m = follow({ logger: log.logger });
    await m.refresh();
    const good = [url('127.0.0.2'), url('127.0.0.3')];
    expect(m.current()).toEqual(good);

    server.pause();
    await eventually(() => log.warnings().length > 0);
    expect(log.warnings()[0]).toMatch(`origins: DNS lookup of ${NAME} failed; keeping the last 2 members`);
    await m.refresh();
    expect(m.current()).toEqual(good);
    server.resume();

    // Every address gone at once (a DNS server that lost its records): still the last good list.
    await server.set({});
    await m.refresh();
    expect(m.current()).toEqual(good);
    expect(log.lines.some((l) => /no addresses/.test(JSON.stringify(l)))).toBe(true);

    await server.set({ [NAME]: ['127.0.0.5'] });
    await eventually(() => m.current().length === 1);
    expect(m.current()).toEqual([url('127.0.0.5')]);
    expect(log.lines.some((l) => l.msg === 'origins: DNS lookup succeeded again')).toBe(true);
  });

  it('uses AAAA records when the name has no A record', async () => {
    await server.set({ 'v6.krill.test': ['::1'] });
    const m = createMembership({ what: 'trackers', dns: { name: 'v6.krill.test', port: 15003, scheme: 'http', refreshMs: 60_000 }, resolver: server.resolver, logger: pino({ level: 'silent' }) });
    open.push(m);
    await m.refresh();
    expect(m.current()).toEqual(['http://[::1]:15003']);
  });

  it('gives a live ring that is swapped whole on a change and never emptied by a failure', async () => {
    const ring = createLiveRing({ membership: follow(), replicas: 3, code: 'ERR_TEST_UNAVAILABLE' });
    // The first lookup is still running: get() waits for it instead of failing.
    const first = await ring.get();
    expect([...first.nodes].sort()).toEqual([url('127.0.0.2'), url('127.0.0.3')]);
    await server.set({ [NAME]: ['127.0.0.2', '127.0.0.3', '127.0.0.4'] });
    await eventually(() => ring.current()!.nodes.length === 3);
    expect(first.nodes).toHaveLength(2);
    server.pause();
    await new Promise((r) => setTimeout(r, 500));
    expect(ring.current()!.nodes).toHaveLength(3);
    server.resume();
    ring.close();
  });

  it('fails calls with Unavailable, naming the DNS name, while no lookup has ever succeeded', async () => {
    await server.set({});
    const ring = createLiveRing({ membership: follow(), replicas: 3, code: 'ERR_TEST_UNAVAILABLE' });
    const err = (await ring.get().catch((e: unknown) => e)) as { code: string; message: string };
    expect(err.code).toBe('ERR_TEST_UNAVAILABLE');
    expect(err.message).toMatch(`no members known: origins from DNS A records of ${NAME} port ${PORT} (last lookup: the name has no addresses)`);
    ring.close();
  });
});

describe('static membership', () => {
  it('is the list as given, with no lookups', async () => {
    const m = createMembership({ what: 'origins', urls: ['http://b:1', 'http://a:1', 'http://b:1'], logger: pino({ level: 'silent' }) });
    await m.refresh();
    expect(m.current()).toEqual(['http://b:1', 'http://a:1']);
    m.close();
  });
  it('follows SRV records: one member per target under its own name and port, stable across a new address', async () => {
    const SRV = '_origin._tcp.origins.krill.test';
    const pod = (i: number) => ({ target: `krill-origin-${i}.origins.krill.test`, port: 15002 });
    const server = await startTestDnsServer({ 'krill-origin-0.origins.krill.test': ['127.0.0.2'] }, { [SRV]: [pod(0), pod(1)] });
    const open: Membership[] = [];
    onTestFinished(async () => {
      for (const m of open) m.close();
      await server.close();
    });
    const m = createMembership({
      what: 'origins', dns: { name: SRV, records: 'SRV', scheme: 'http', refreshMs: 100 }, resolver: server.resolver, logger: pino({ level: 'silent' }),
    });
    open.push(m);
    await m.refresh();
    expect(m.current()).toEqual(['http://krill-origin-0.origins.krill.test:15002', 'http://krill-origin-1.origins.krill.test:15002']);
    // A restarted pod has a new address but the same name: the ring does not change.
    const changes: Array<readonly string[]> = [];
    m.subscribe((members) => changes.push(members));
    await server.set({ 'krill-origin-0.origins.krill.test': ['127.0.0.9'] }, { [SRV]: [pod(0), pod(1)] });
    await m.refresh();
    expect(changes).toEqual([]);
    // Scaling to three adds krill-origin-2; a port given in the config overrides the records'.
    await server.set({}, { [SRV]: [pod(0), pod(1), pod(2)] });
    await eventually(() => m.current().length === 3);
    expect(m.current().at(-1)).toBe('http://krill-origin-2.origins.krill.test:15002');
    const pinned = createMembership({
      what: 'origins', dns: { name: SRV, records: 'SRV', port: 7000, scheme: 'http', refreshMs: 100 }, resolver: server.resolver, logger: pino({ level: 'silent' }),
    });
    open.push(pinned);
    await pinned.refresh();
    expect(pinned.current()).toEqual([0, 1, 2].map((i) => `http://krill-origin-${i}.origins.krill.test:7000`));
    // No SRV records under the name: the last good list stays.
    await server.set({}, {});
    await m.refresh();
    expect(m.current()).toHaveLength(3);
    expect(m.describe()).toMatch(/SRV records of _origin\._tcp\.origins\.krill\.test \(last lookup: the name has no SRV records\)/);
  });
});
