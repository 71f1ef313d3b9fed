import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sha256, silentLogger, validateConfig } from '@krill/lib';
import { backendRulesSchema, type BackendRuleConfig } from './config.js';
import { createBackendRouter } from './router.js';

function thrown(fn: () => unknown): { code?: string; message: string } {
  try {
    fn();
  } catch (err) {
    return err as { code?: string; message: string };
  }
  throw new Error('expected a throw');
}

describe('backend router', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'krill-router-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const open = (rules: BackendRuleConfig[], metrics?: Registry) =>
    createBackendRouter({ rules, registries: {}, logger: silentLogger(), ...(metrics ? { metrics } : {}) });

  it('sends each namespace to the first rule that matches', async () => {
    const router = open([
      { namespace: '^team/', fs: { root: join(dir, 'team') } },
      { namespace: '^team/special$', fs: { root: join(dir, 'never') } },
      { namespace: '.*', fs: { root: join(dir, 'rest') } },
    ]);
    try {
      const bytes = Buffer.from('routed');
      const digest = sha256(bytes);
      await router.route('team/special').upload('team/special', digest, Readable.from([bytes]), bytes.length);
      expect(await readdir(join(dir, 'team', 'blobs', 'sha256'))).toEqual([digest.slice(7, 9)]);
      expect(await readdir(dir)).not.toContain('never');
      const missing = await router.route('other/app').stat('other/app', digest).then(() => 'found', (e: { code: string }) => e.code);
      expect(missing).toBe('ERR_BACKEND_BLOB_NOT_FOUND');
      expect(router.route('team/app')).toBe(router.route('team/special'));
      expect(router.route('other/app')).not.toBe(router.route('team/app'));
    } finally {
      await router.close();
    }
  });

  it('uses the expressions unanchored, as written', async () => {
    const router = open([{ namespace: 'library', fs: { root: dir } }]);
    try {
      expect(router.tryRoute('docker.io/library/busybox')).toBeDefined();
      expect(router.tryRoute('team/app')).toBeUndefined();
    } finally {
      await router.close();
    }
  });

  it('answers ERR_BACKEND_NO_ROUTE when no rule matches, and refuses an invalid namespace', async () => {
    const router = open([{ namespace: '^only/', fs: { root: dir } }]);
    try {
      expect(thrown(() => router.route('team/app')).code).toBe('ERR_BACKEND_NO_ROUTE');
      expect(router.tryRoute('team/app')).toBeUndefined();
      expect(thrown(() => router.route('only/../etc')).code).toBe('ERR_BACKEND_NAMESPACE_INVALID');
    } finally {
      await router.close();
    }
  });

  it('names the rule whose regular expression is invalid', () => {
    const err = thrown(() => open([{ namespace: '.*', fs: { root: dir } }, { namespace: '^team/(', fs: { root: dir } }]));
    expect(err.code).toBe('ERR_CONFIG_INVALID');
    expect(err.message).toMatch(/backend rule 1: namespace "\^team\/\(" is not a valid regular expression/);
  });

  it('wants exactly one kind per rule and names a bad key inside a kind', () => {
    const two = thrown(() => open([{ namespace: '.*', fs: { root: dir }, s3: { bucket: 'bucket' } }]));
    expect(two.code).toBe('ERR_CONFIG_INVALID');
    expect(two.message).toMatch(/backend rule 0: needs exactly one of fs, s3, http, registry \(got fs and s3\)/);
    const none = thrown(() => open([{ namespace: '.*' }]));
    expect(none.message).toMatch(/backend rule 0: .*\(got none\)/);
    const bad = thrown(() => open([{ namespace: '.*', s3: { bucket: 'bucket', partSizeBytes: 1024 } }]));
    expect(bad.message).toMatch(/s3\.partSizeBytes in backend rule 0: must be >= 5242880/);
  });

  it('gives config errors that name the key through the rules schema', () => {
    const check = (rules: unknown) => thrown(() => validateConfig({ type: 'object', properties: { backends: backendRulesSchema } }, { backends: rules }));
    expect(check([{ namespace: '.*', gcs: {} }]).message).toMatch(/config key backends\.0\.gcs: unknown key/);
    expect(check([{ namespace: '.*' }]).message).toMatch(/config key backends\.0: must NOT have fewer than 2 properties/);
    expect(check([{ namespace: '.*', fs: { root: '/x' }, s3: { bucket: 'bucket' } }]).message).toMatch(/config key backends\.0: must NOT have more than 2 properties/);
    expect(check([{ namespace: '.*', s3: { bucket: 'bucket', partsize: 1 } }]).message).toMatch(/config key backends\.0\.s3\.partsize: unknown key/);
    expect(check([{ fs: { root: '/x' } }]).message).toMatch(/config key backends\.0\.namespace: is required/);
    const filled = validateConfig<{ backends: BackendRuleConfig[] }>(
      { type: 'object', properties: { backends: backendRulesSchema } },
      { backends: [{ namespace: '.*', s3: { bucket: 'bucket' } }] },
    );
    expect(filled.backends[0]!.s3).toMatchObject({ region: 'us-east-1', forcePathStyle: false, prefix: '', partSizeBytes: 64 * 1024 * 1024, concurrency: 4 });
  });

  it('records krill_backend_* metrics for every routed backend in one registry', async () => {
    const metrics = new Registry();
    const router = open([{ namespace: '^a/', fs: { root: join(dir, 'a') } }, { namespace: '.*', fs: { root: join(dir, 'b') } }], metrics);
    try {
      const bytes = Buffer.from('counted');
      await router.route('a/x').upload('a/x', sha256(bytes), Readable.from([bytes]), bytes.length);
      await router.route('b/x').stat('b/x', sha256(bytes)).catch(() => undefined);
      const text = await metrics.metrics();
      expect(text).toContain('krill_backend_operations_total{backend="fs",op="upload",result="ok"} 1');
      expect(text).toContain('krill_backend_operations_total{backend="fs",op="stat",result="NotFound"} 1');
      expect(text).toContain('krill_backend_bytes_total{backend="fs",direction="upload"} 7');
    } finally {
      await router.close();
    }
  });
});
