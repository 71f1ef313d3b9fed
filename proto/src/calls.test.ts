import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MAX_MESSAGE_BYTES, channelOptions, containerdMetadata, serverStream, unary, unixTarget } from './calls.js';
import type { ImageStatusRequest, PullImageRequest, PullImageResponse, StreamImagesRequest, StreamImagesResponse } from './cri-image-types.js';
import { cri } from './loader.js';

/** A fake ImageService on a unix socket whose RPCs exercise the call helpers. */
interface Fixture {
  client: grpc.Client;
  /** Resolves when the server sees a call cancelled. */
  cancelled: () => Promise<void>;
  close(): Promise<void>;
}

async function startFixture(dir: string): Promise<Fixture> {
  let onCancel: () => void = () => {};
  let cancelled = new Promise<void>((r) => { onCancel = r; });
  const watch = (call: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown>) => call.on('cancelled', () => onCancel());
  const server = new grpc.Server(channelOptions);
  server.addService(cri().ImageService.service, {
    PullImage(call: grpc.ServerUnaryCall<PullImageRequest, PullImageResponse>, cb: grpc.sendUnaryData<PullImageResponse>) {
      const ns = call.metadata.get('containerd-namespace')[0] ?? '';
      const lease = call.metadata.get('containerd-lease')[0] ?? '';
      cb(null, { imageRef: `${call.request.image?.image}|${ns}|${lease}` });
    },
    // Never answers: the client's deadline or abort ends it.
    ImageStatus(call: grpc.ServerUnaryCall<ImageStatusRequest, unknown>) {
      watch(call);
    },
    StreamImages(call: grpc.ServerWritableStream<StreamImagesRequest, StreamImagesResponse>) {
      watch(call);
      const mode = call.request.filter?.image?.image;
      const batch = (id: string) => ({ images: [{ id, repoTags: [], repoDigests: [], size: 1, uid: null, username: '', spec: null, pinned: false }] });
      call.write(batch('a'));
      if (mode === 'two') {
        call.write(batch('b'));
        call.end();
      } else if (mode === 'fail') {
        call.emit('error', { code: grpc.status.NOT_FOUND, details: 'gone' });
      }
      // Any other mode keeps the stream open until the client cancels it.
    },
  });
  const socket = join(dir, 'images.sock');
  await new Promise<void>((resolve, reject) => server.bindAsync(unixTarget(socket), grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
  const { ImageService } = cri();
  const client = new ImageService(unixTarget(socket), grpc.credentials.createInsecure(), channelOptions);
  return {
    client,
    cancelled: () => cancelled.then(() => { cancelled = new Promise<void>((r) => { onCancel = r; }); }),
    async close() {
      client.close();
      await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
    },
  };
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const m of it) out.push(m);
  return out;
}

let dir: string;
let fx: Fixture;
beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'krill-calls-'));
  fx = await startFixture(dir);
});
afterEach(async () => {
  try {
    await fx?.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

describe('unary', () => {
  it('calls an RPC by its .proto name or its camelCase name, with metadata', async () => {
    const md = containerdMetadata({ namespace: 'k8s.io', lease: 'l1' });
    expect(await unary<PullImageResponse>(fx.client, 'PullImage', { image: { image: 'busybox' } }, { metadata: md })).toEqual({ imageRef: 'busybox|k8s.io|l1' });
    expect(await unary<PullImageResponse>(fx.client, 'pullImage', { image: { image: 'x' } })).toEqual({ imageRef: 'x||' });
  });

  it('cancels the call when the signal aborts and rejects with CANCELLED', async () => {
    const ac = new AbortController();
    const call = unary(fx.client, 'ImageStatus', {}, { signal: ac.signal });
    setTimeout(() => ac.abort(), 50);
    await expect(call).rejects.toMatchObject({ code: grpc.status.CANCELLED });
    await fx.cancelled();
  });

  it('rejects with CANCELLED when the signal was aborted before the call', async () => {
    await expect(unary(fx.client, 'PullImage', {}, { signal: AbortSignal.abort() })).rejects.toMatchObject({ code: grpc.status.CANCELLED });
  });

  it('rejects with DEADLINE_EXCEEDED past the deadline', async () => {
    await expect(unary(fx.client, 'ImageStatus', {}, { deadline: Date.now() + 100 })).rejects.toMatchObject({ code: grpc.status.DEADLINE_EXCEEDED });
  });

  it('rejects a name that is not a unary RPC of the service', async () => {
    await expect(unary(fx.client, 'close', {})).rejects.toThrow(TypeError);
    await expect(unary(fx.client, 'StreamImages', {})).rejects.toThrow(/not a unary RPC/);
  });
});

describe('serverStream', () => {
  const filter = (image: string) => ({ filter: { image: { image } } });

  it('yields every message until the server ends the stream', async () => {
    const got = await collect(serverStream<StreamImagesResponse>(fx.client, 'StreamImages', filter('two')));
    expect(got.map((m) => m.images[0]!.id)).toEqual(['a', 'b']);
  });

  it('yields what arrived, then throws the status the server failed with', async () => {
    const got: string[] = [];
    const run = async () => {
      for await (const m of serverStream<StreamImagesResponse>(fx.client, 'streamImages', filter('fail'))) got.push(m.images[0]!.id);
    };
    await expect(run()).rejects.toMatchObject({ code: grpc.status.NOT_FOUND, details: 'gone' });
    expect(got).toEqual(['a']);
  });

  it('cancels the call when the loop is left early', async () => {
    for await (const m of serverStream<StreamImagesResponse>(fx.client, 'StreamImages', filter('open'))) {
      expect(m.images[0]!.id).toBe('a');
      break;
    }
    await fx.cancelled();
  });

  it('throws CANCELLED when the signal aborts', async () => {
    const ac = new AbortController();
    const got: string[] = [];
    const run = async () => {
      for await (const m of serverStream<StreamImagesResponse>(fx.client, 'StreamImages', filter('open'), { signal: ac.signal })) {
        got.push(m.images[0]!.id);
        ac.abort();
      }
    };
    await expect(run()).rejects.toMatchObject({ code: grpc.status.CANCELLED });
    expect(got).toEqual(['a']);
    await fx.cancelled();
  });

  it('throws for a name that is not a server-streaming RPC', async () => {
    await expect(collect(serverStream(fx.client, 'PullImage', {}))).rejects.toThrow(/not a server-stream RPC/);
  });
});

describe('targets and options', () => {
  it('makes unix targets absolute', () => {
    expect(unixTarget('/run/containerd/containerd.sock')).toBe('unix:/run/containerd/containerd.sock');
    expect(unixTarget('rel.sock')).toBe(`unix:${join(process.cwd(), 'rel.sock')}`);
  });

  it('raises both message limits to 16 MiB', () => {
    expect(MAX_MESSAGE_BYTES).toBe(16 * 1024 * 1024);
    expect(channelOptions).toEqual({ 'grpc.max_receive_message_length': MAX_MESSAGE_BYTES, 'grpc.max_send_message_length': MAX_MESSAGE_BYTES });
  });
});
