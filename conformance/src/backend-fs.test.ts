import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createFsBackend, instrumentBackend } from '@krill/cluster-services';
import { sha256, silentLogger } from '@krill/lib';
import { codeOf, defineBackendSuite } from './backend-suite.js';

defineBackendSuite('fs', async () => {
  const root = await mkdtemp(join(tmpdir(), 'krill-fs-backend-'));
  const backend = instrumentBackend(createFsBackend({ root, logger: silentLogger() }), { metrics: new Registry() });
  return {
    backend,
    async cleanup() {
      await backend.close();
      await rm(root, { recursive: true, force: true });
    },
  };
});

describe('fs backend layout', () => {
  it('stores blobs where docker/distribution does and leaves no temporary file behind', async () => {
    const root = await mkdtemp(join(tmpdir(), 'krill-fs-layout-'));
    try {
      const backend = createFsBackend({ root, logger: silentLogger() });
      const bytes = Buffer.from('layout');
      const digest = sha256(bytes);
      const hex = digest.slice(7);
      await backend.upload('team/app', digest, Readable.from([bytes]), bytes.length);
      expect(await readdir(join(root, 'blobs', 'sha256', hex.slice(0, 2), hex))).toEqual(['data']);
      expect(await codeOf(backend.upload('team/app', sha256('other'), Readable.from([bytes]), bytes.length))).toBe('ERR_DIGEST_MISMATCH');
      expect(await readdir(join(root, '_uploads'))).toEqual([]);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('refuses a list cursor it did not issue', async () => {
    const root = await mkdtemp(join(tmpdir(), 'krill-fs-cursor-'));
    try {
      const backend = createFsBackend({ root, logger: silentLogger() });
      expect(await codeOf(backend.list({ cursor: '../../etc' }))).toBe('ERR_BACKEND_CURSOR_INVALID');
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
