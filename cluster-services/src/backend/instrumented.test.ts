import { Readable } from 'node:stream';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { sha256, type Digest } from '@krill/lib';
import type { Backend } from './backend.js';
import { instrumentBackend } from './instrumented.js';

/**
 * A backend over a flaky store: it fails the way an SDK or a socket does, with plain errors,
 * and its downloads deliver `served` and then break.
 */
function flakyBackend(served: Buffer): Backend {
  return {
    kind: 'flaky',
    readOnly: false,
    async stat() {
      throw new Error('socket hang up');
    },
    async download() {
      return Readable.from(
        (function* () {
          yield served;
          throw new Error('ECONNRESET');
        })(),
        { objectMode: false },
      );
    },
    async upload(_ns, _digest, body, _size, signal) {
      await new Promise((_resolve, reject) => {
        signal?.addEventListener('abort', () => reject(Object.assign(new Error('This operation was aborted'), { name: 'AbortError' })));
      });
      body.destroy();
    },
    async list() {
      throw 'a string, not an Error';
    },
    async close() {},
  };
}

const digest: Digest = sha256('x');
const errorOf = (p: Promise<unknown>) => p.then(() => ({ code: 'resolved', message: '' }), (e: { code: string; message: string }) => e);

describe('instrumented backend', () => {
  it('turns unknown errors into ERR_BACKEND_UNAVAILABLE with the operation and digest as context', async () => {
    const b = instrumentBackend(flakyBackend(Buffer.alloc(0)));
    const err = await errorOf(b.stat('team/app', digest));
    expect(err.code).toBe('ERR_BACKEND_UNAVAILABLE');
    expect(err.message).toBe(`flaky stat ${digest}: socket hang up`);
    expect((await errorOf(b.list())).code).toBe('ERR_BACKEND_UNAVAILABLE');
  });

  it('reports a cancelled operation as ERR_BACKEND_CANCELED', async () => {
    const b = instrumentBackend(flakyBackend(Buffer.alloc(0)));
    const controller = new AbortController();
    const upload = errorOf(b.upload('team/app', digest, Readable.from([Buffer.from('x')]), 1, controller.signal));
    controller.abort();
    expect((await upload).code).toBe('ERR_BACKEND_CANCELED');
  });

  it('validates arguments before the backend sees them', async () => {
    const b = instrumentBackend(flakyBackend(Buffer.alloc(0)));
    expect((await errorOf(b.stat('a//b', digest))).code).toBe('ERR_BACKEND_NAMESPACE_INVALID');
    expect((await errorOf(b.stat('team/app', 'sha256:XYZ' as Digest))).code).toBe('ERR_DIGEST_INVALID');
    expect((await errorOf(b.upload('team/app', digest, Readable.from([]), -1))).code).toBe('ERR_SIZE_INVALID');
    expect((await errorOf(b.upload('team/app', digest, Readable.from([]), 1.5))).code).toBe('ERR_SIZE_INVALID');
    expect((await errorOf(b.list({ limit: 0 }))).code).toBe('ERR_BACKEND_LIMIT_INVALID');
  });

  it('normalises a download that breaks midway and counts the bytes that did flow', async () => {
    const metrics = new Registry();
    const b = instrumentBackend(flakyBackend(Buffer.alloc(1234)), { metrics });
    const stream = await b.download('team/app', digest);
    const err = await errorOf(
      (async () => {
        for await (const _chunk of stream) {
          // Drain.
        }
      })(),
    );
    expect(err.code).toBe('ERR_BACKEND_UNAVAILABLE');
    expect(err.message).toBe(`flaky download ${digest}: ECONNRESET`);
    const text = await metrics.metrics();
    expect(text).toContain('krill_backend_bytes_total{backend="flaky",direction="download"} 1234');
    expect(text).toContain('krill_backend_operations_total{backend="flaky",op="download",result="ok"} 1');
  });

  it('shares one set of metrics between backends decorated into the same registry', async () => {
    const metrics = new Registry();
    instrumentBackend(flakyBackend(Buffer.alloc(0)), { metrics });
    const b = instrumentBackend(flakyBackend(Buffer.alloc(0)), { metrics });
    await errorOf(b.stat('team/app', digest));
    expect(await metrics.metrics()).toContain('krill_backend_operations_total{backend="flaky",op="stat",result="Unavailable"} 1');
  });
});
