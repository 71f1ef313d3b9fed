import { Readable } from 'node:stream';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { MIN_PART_SIZE_BYTES, createS3Backend, instrumentBackend, type S3BackendOptions } from '@krill/cluster-services';
import { sha256, silentLogger } from '@krill/lib';
import { codeOf, defineBackendSuite, generatedBlob, hashStream } from './backend-suite.js';
import { startS3rver, type S3rverHandle } from './harness/s3rver.js';

function s3Options(s3: S3rverHandle, extra: Partial<S3BackendOptions> = {}): S3BackendOptions {
  return {
    bucket: s3.bucket,
    endpoint: s3.endpoint,
    forcePathStyle: true,
    accessKeyId: s3.accessKeyId,
    secretAccessKey: s3.secretAccessKey,
    // The smallest part S3 allows, so a 12 MiB blob takes three parts (5 + 5 + 2 MiB).
    partSizeBytes: MIN_PART_SIZE_BYTES,
    concurrency: 2,
    logger: silentLogger(),
    ...extra,
  };
}

defineBackendSuite(
  's3 (s3rver)',
  async () => {
    const s3 = await startS3rver();
    const backend = instrumentBackend(createS3Backend(s3Options(s3, { prefix: 'krill/' })), { metrics: new Registry() });
    return {
      backend,
      async cleanup() {
        await backend.close();
        await s3.close();
      },
    };
  },
  { largeBlobBytes: 12 * 1024 * 1024 + 12345 },
);

describe('s3 backend against s3rver', () => {
  it('sends a blob larger than one part as a multipart upload of 5 MiB parts, and a small one whole', async () => {
    const s3 = await startS3rver({ log: true });
    const backend = createS3Backend(s3Options(s3));
    try {
      const large = await generatedBlob('multipart', 2 * MIN_PART_SIZE_BYTES + 1);
      await backend.upload('team/app', large.digest, large.stream(), large.size);
      const parts = s3.logs.map((l) => /Stored part (\d+) of/.exec(l)?.[1]).filter((n) => n !== undefined);
      expect(parts.sort()).toEqual(['1', '2', '3']);
      expect(await hashStream(await backend.download('team/app', large.digest))).toEqual({ size: large.size, digest: large.digest });

      const small = await generatedBlob('single', MIN_PART_SIZE_BYTES);
      await backend.upload('team/app', small.digest, small.stream(), small.size);
      expect(s3.logs.filter((l) => /Stored part/.test(l))).toHaveLength(3);
      expect(await backend.stat('team/app', small.digest)).toEqual({ size: MIN_PART_SIZE_BYTES });
    } finally {
      await backend.close();
      await s3.close();
    }
  });

  it('gives ERR_BACKEND_UNAUTHORIZED for an access key id the store does not know', async () => {
    const s3 = await startS3rver();
    const backend = createS3Backend(s3Options(s3, { accessKeyId: 'WRONG', secretAccessKey: 'S3RVER' }));
    try {
      const bytes = Buffer.from('secret');
      expect(await codeOf(backend.stat('team/app', sha256(bytes)))).toBe('ERR_BACKEND_UNAUTHORIZED');
      expect(await codeOf(backend.upload('team/app', sha256(bytes), Readable.from([bytes]), bytes.length))).toBe('ERR_BACKEND_UNAUTHORIZED');
      expect(await codeOf(backend.list())).toBe('ERR_BACKEND_UNAUTHORIZED');
    } finally {
      await backend.close();
      await s3.close();
    }
  });

  it('gives ERR_BACKEND_UNAVAILABLE when the endpoint does not answer', async () => {
    const s3 = await startS3rver();
    const endpoint = s3.endpoint;
    await s3.close();
    const backend = createS3Backend({ ...s3Options(s3), endpoint, maxAttempts: 1 });
    try {
      expect(await codeOf(backend.stat('team/app', sha256('x')))).toBe('ERR_BACKEND_UNAVAILABLE');
    } finally {
      await backend.close();
    }
  });

  it('rejects a part size below the 5 MiB S3 minimum at construction', () => {
    expect(() => createS3Backend({ bucket: 'bucket', partSizeBytes: 1024 * 1024, logger: silentLogger() })).toThrow(/partSizeBytes/);
  });
});
