import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MediaType, NotFoundError, sha256, silentLogger, type Digest } from '@krill/lib';
import type { ManifestHead, RegistryClient } from '../../upstream/index.js';
import { openTagStore, type TagStore } from '../store/tag-store.js';
import { createBuildIndexMetrics } from './metrics.js';
import { CallerAnswers } from './caller-answers.js';
import { createTagResolver } from './resolver.js';

/**
 * An in-memory upstream with the real client's contract for `resolve` (NotFound
 * ERR_UPSTREAM_NOT_FOUND); each answer waits until the test releases it, so that concurrent
 * lookups can be made to overlap.
 */
function memoryRegistry(tags: Map<string, Digest>) {
  let calls = 0;
  const users: Array<string | undefined> = [];
  const waiting: Array<() => void> = [];
  const client: RegistryClient = {
    async resolve(namespace, reference, _signal, options): Promise<ManifestHead> {
      calls++;
      users.push(options?.credentials?.username);
      await new Promise<void>((r) => waiting.push(r));
      const digest = tags.get(`${namespace}:${reference}`);
      if (!digest) throw new NotFoundError(`${namespace}:${reference} not found upstream`, { code: 'ERR_UPSTREAM_NOT_FOUND' });
      return { digest, mediaType: MediaType.OciManifest, size: 1 };
    },
    stat: () => Promise.reject(new Error('not used here')),
    fetch: () => Promise.reject(new Error('not used here')),
  };
  return { client, calls: () => calls, users, release: () => waiting.splice(0).forEach((r) => r()), pending: () => waiting.length };
}

let dir: string;
let store: TagStore;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'krill-resolver-'));
  store = openTagStore({ path: join(dir, 'tags.db') });
});
afterEach(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

const metrics = () => createBuildIndexMetrics(new Registry());

describe('tag resolver', () => {
  it('shares one upstream lookup among concurrent readers of a tag', async () => {
    const v1 = sha256('v1');
    const upstream = memoryRegistry(new Map([['upstream.local/app:v1', v1]]));
    const resolver = createTagResolver({ store, rules: [{ namespace: '^upstream\\.local/', tagTtlSeconds: 0 }], registry: upstream.client, logger: silentLogger(), metrics: metrics() });
    const answers = Promise.all(Array.from({ length: 5 }, () => resolver.resolve('upstream.local/app', 'v1')));
    await new Promise((r) => setImmediate(r));
    expect(upstream.pending()).toBe(1);
    upstream.release();
    expect((await answers).map((a) => a.digest)).toEqual(Array(5).fill(v1));
    expect(upstream.calls()).toBe(1);
    // Once answered, the next reader asks again (TTL 0).
    const next = resolver.resolve('upstream.local/app', 'v1');
    await new Promise((r) => setImmediate(r));
    upstream.release();
    expect((await next).source).toBe('upstream');
    expect(upstream.calls()).toBe(2);
  });

  it('uses the first matching rule and reads other repositories from the local table only', async () => {
    const local = sha256('local');
    const remote = sha256('remote');
    const upstream = memoryRegistry(new Map([['mirror.local/app:v2', remote]]));
    const resolver = createTagResolver({
      store, registry: upstream.client, logger: silentLogger(), metrics: metrics(),
      rules: [{ namespace: '^mirror\\.local/', tagTtlSeconds: 60 }, { namespace: '^mirror', tagTtlSeconds: 0 }],
    });
    store.put('team/app', 'v1', local);
    expect(await resolver.resolve('team/app', 'v1')).toEqual({ digest: local, source: 'local' });
    expect(resolver.isPullThrough('team/app')).toBe(false);
    expect(resolver.isPullThrough('mirror.local/app')).toBe(true);
    // A local row under a pull-through name is never consulted: upstream decides.
    store.put('mirror.local/app', 'v1', local);
    const missing = resolver.resolve('mirror.local/app', 'v1');
    await new Promise((r) => setImmediate(r));
    upstream.release();
    await expect(missing).rejects.toMatchObject({ code: 'ERR_TAG_NOT_FOUND' });
    // The first rule's 60 s TTL applies, not the second rule's 0: the second read is cached.
    const first = resolver.resolve('mirror.local/app', 'v2');
    await new Promise((r) => setImmediate(r));
    upstream.release();
    expect(await first).toMatchObject({ digest: remote, source: 'upstream' });
    expect(await resolver.resolve('mirror.local/app', 'v2')).toMatchObject({ digest: remote, source: 'cache' });
    expect(upstream.calls()).toBe(2);
  });

  it('shares a lookup only among callers with the same credentials, and caches their answers apart', async () => {
    const v1 = sha256('v1');
    const upstream = memoryRegistry(new Map([['upstream.local/app:v1', v1]]));
    const resolver = createTagResolver({ store, rules: [{ namespace: '^upstream\\.local/', tagTtlSeconds: 60 }], registry: upstream.client, logger: silentLogger(), metrics: metrics() });
    const alice = { credentials: { username: 'alice', password: 'a' } };
    const answers = Promise.all([
      resolver.resolve('upstream.local/app', 'v1', alice), resolver.resolve('upstream.local/app', 'v1', alice),
      resolver.resolve('upstream.local/app', 'v1', { credentials: { username: 'alice', password: 'other' } }),
      resolver.resolve('upstream.local/app', 'v1'),
    ]);
    await new Promise((r) => setImmediate(r));
    upstream.release();
    expect((await answers).map((a) => a.source)).toEqual(['upstream', 'upstream', 'upstream', 'upstream']);
    expect(upstream.users).toEqual(['alice', 'alice', undefined]);
    expect((await resolver.resolve('upstream.local/app', 'v1', alice)).source).toBe('cache');
    // A caller's answer never enters the table that lookups without credentials share.
    store.deleteUpstream('upstream.local/app', 'v1');
    const none = resolver.resolve('upstream.local/app', 'v1');
    await new Promise((r) => setImmediate(r));
    upstream.release();
    expect((await none).source).toBe('upstream');
  });

  it('keeps at most its bound of callers\' answers, dropping the least recently used', () => {
    const answers = new CallerAnswers(2);
    const key = (p: string) => answers.keyOf('upstream.local/app', 'v1', { username: 'u', password: `pw-${p}` });
    expect(key('a')).not.toBe(key('b'));
    expect(key('a')).not.toContain('pw-a');
    answers.put(key('a'), sha256('a'), undefined, 1);
    answers.put(key('b'), sha256('b'), undefined, 1);
    expect(answers.get(key('a'))?.digest).toBe(sha256('a'));
    answers.put(key('c'), sha256('c'), undefined, 1);
    expect([answers.get(key('a'))?.digest, answers.get(key('b')), answers.size]).toEqual([sha256('a'), undefined, 2]);
  });
});
