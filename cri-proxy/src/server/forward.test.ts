import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Metadata, Server, ServerCredentials, credentials, status, type ServerDuplexStream, type ServerUnaryCall, type ServiceError, type sendUnaryData } from '@grpc/grpc-js';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidArgumentError, silentLogger } from '@krill/lib';
import { cri, unixTarget } from '@krill/proto';
import { startCriServer, type CriServer, type ImagePuller } from '../index.js';

const id = (b: Buffer) => b;
let dir: string;
let upstream: Server;
let proxy: CriServer;
let client: Client;
const metrics = new Registry();
const seen: { path: string; md: Metadata; deadline: unknown }[] = [];
let cancelledUpstream = 0;
const pulls: string[] = [];

/** What krill's puller answers in these tests: by image name. */
const puller: ImagePuller = {
  async pull(req) {
    const image = req.image?.image ?? '';
    pulls.push(image);
    if (image === 'bad') throw new InvalidArgumentError('invalid image reference "bad"', { code: 'ERR_REFERENCE_INVALID' });
    if (image === 'fallback') return { forward: 'krill could not' };
    return { imageRef: `sha256:${'1'.repeat(64)}` };
  },
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'krill-cri-forward-'));
  // A real gRPC server standing in for containerd: it answers any path with raw bytes.
  upstream = new Server();
  const record = (path: string, md: Metadata, deadline: unknown) => seen.push({ path, md, deadline });
  upstream.register('/test.Echo/Unary', (call: ServerUnaryCall<Buffer, Buffer>, cb: sendUnaryData<Buffer>) => {
    record('/test.Echo/Unary', call.metadata, call.getDeadline());
    if (call.request.toString() === 'fail') {
      const md = new Metadata();
      md.set('x-trailer', 'from-upstream');
      cb({ code: status.NOT_FOUND, details: 'no such thing', metadata: md } as ServiceError);
      return;
    }
    cb(null, Buffer.concat([Buffer.from('echo:'), call.request]));
  }, id, id, 'unary');
  upstream.register('/test.Echo/Stream', (call: ServerDuplexStream<Buffer, Buffer>) => {
    record('/test.Echo/Stream', call.metadata, call.getDeadline());
    call.on('data', (b: Buffer) => call.write(Buffer.concat([b, b])));
    call.on('end', () => call.end());
    call.on('cancelled', () => { cancelledUpstream++; });
  }, id, id, 'bidi');
  upstream.register('/runtime.v1.ImageService/PullImage', (call: ServerUnaryCall<Buffer, Buffer>, cb: sendUnaryData<Buffer>) => {
    record('/runtime.v1.ImageService/PullImage', call.metadata, call.getDeadline());
    const req = cri().ImageService.service.PullImage!.requestDeserialize(call.request) as { image: { image: string } };
    cb(null, cri().ImageService.service.PullImage!.responseSerialize({ imageRef: `containerd:${req.image.image}` }));
  }, id, id, 'unary');
  const sock = join(dir, 'upstream.sock');
  await new Promise<void>((r, j) => upstream.bindAsync(unixTarget(sock), ServerCredentials.createInsecure(), (e) => (e ? j(e) : r())));
  proxy = await startCriServer({ socket: join(dir, 'run', 'cri.sock'), containerdSocket: sock, puller, logger: silentLogger(), metrics });
  client = new Client(unixTarget(proxy.socket), credentials.createInsecure());
});
afterAll(async () => {
  client?.close();
  await proxy?.close();
  upstream?.forceShutdown();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function unaryCall(path: string, body: string, md = new Metadata(), deadline?: Date): Promise<{ res?: Buffer; err?: ServiceError }> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(path, id, id, Buffer.from(body), md, deadline ? { deadline } : {}, (err, res) => resolve({ ...(err ? { err } : {}), ...(res ? { res } : {}) }));
  });
}

describe('CRI socket pass-through', () => {
  it('listens on a unix socket of mode 0660', () => {
    expect(statSync(proxy.socket).mode & 0o777).toBe(0o660);
  });

  it('forwards a method it has no .proto for, bytes, metadata and deadline intact', async () => {
    const md = new Metadata();
    md.set('x-caller', 'kubelet');
    const deadline = new Date(Date.now() + 30_000);
    const { res, err } = await unaryCall('/test.Echo/Unary', 'hello', md, deadline);
    expect(err).toBeUndefined();
    expect(res!.toString()).toBe('echo:hello');
    const s = seen.at(-1)!;
    expect(s.md.get('x-caller')).toEqual(['kubelet']);
    // The deadline reaches upstream (grpc-js rounds it to its timeout units).
    expect(Math.abs(Number(s.deadline) - deadline.getTime())).toBeLessThan(1500);
  });

  it('passes upstream errors through with their code, message and trailers', async () => {
    const { err } = await unaryCall('/test.Echo/Unary', 'fail');
    expect([err?.code, err?.details, err?.metadata.get('x-trailer')]).toEqual([status.NOT_FOUND, 'no such thing', ['from-upstream']]);
  });

  it('forwards a bidi stream message by message', async () => {
    const call = client.makeBidiStreamRequest('/test.Echo/Stream', id, id, new Metadata());
    const got: string[] = [];
    const done = new Promise<void>((r) => call.on('status', () => r()));
    call.on('data', (b: Buffer) => got.push(b.toString()));
    call.write(Buffer.from('a'));
    call.write(Buffer.from('bc'));
    call.end();
    await done;
    expect(got).toEqual(['aa', 'bcbc']);
  });

  it('cancels the upstream call when the caller cancels', async () => {
    const before = cancelledUpstream;
    const call = client.makeBidiStreamRequest('/test.Echo/Stream', id, id, new Metadata());
    call.on('error', () => {});
    call.write(Buffer.from('x'));
    await new Promise<void>((r) => call.once('data', () => r()));
    call.cancel();
    for (let i = 0; i < 50 && cancelledUpstream === before; i++) await new Promise((r) => setTimeout(r, 20));
    expect(cancelledUpstream).toBe(before + 1);
  });

  it('answers PullImage through the puller, maps its errors, and forwards what it hands back', async () => {
    const m = cri().ImageService.service.PullImage!;
    const pull = (image: string) => new Promise<{ ref?: string; err?: ServiceError }>((resolve) => {
      client.makeUnaryRequest('/runtime.v1.ImageService/PullImage', m.requestSerialize, m.responseDeserialize, { image: { image, annotations: {} } }, new Metadata(), {},
        (err, res) => resolve({ ...(err ? { err } : {}), ...(res ? { ref: (res as { imageRef: string }).imageRef } : {}) }));
    });
    expect(await pull('registry.test/app:v1')).toEqual({ ref: `sha256:${'1'.repeat(64)}` });
    const bad = await pull('bad');
    expect([bad.err?.code, bad.err?.details]).toEqual([status.INVALID_ARGUMENT, 'invalid image reference "bad"']);
    expect(await pull('fallback')).toEqual({ ref: 'containerd:fallback' });
    expect(seen.at(-1)!.path).toBe('/runtime.v1.ImageService/PullImage');
  });

  it('counts every call by method and code', async () => {
    const text = await metrics.metrics();
    expect(text).toMatch(/krill_cri_requests_total\{method="Echo\/Unary",code="OK"\} [1-9]/);
    expect(text).toMatch(/krill_cri_requests_total\{method="Echo\/Unary",code="NOT_FOUND"\} 1/);
    expect(text).toMatch(/krill_cri_requests_total\{method="ImageService\/PullImage",code="INVALID_ARGUMENT"\} 1/);
  });
});
