import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { Server, ServerCredentials, status, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { channelOptions, cri, unixTarget } from '@krill/proto';
import { main } from '../main.js';

const ID = `sha256:${'ab12'.repeat(16)}`;
const IMAGE = {
  id: ID, repoTags: ['registry.krill.test/team/app:v1', 'registry.krill.test/team/app:latest'],
  repoDigests: [`registry.krill.test/team/app@sha256:${'cd'.repeat(32)}`], size: 12_345_678, uid: { value: 1002 }, username: '', pinned: false,
};

/** What the fake image service was asked, in order: `<method> <image>`. */
const calls: string[] = [];
let dir: string;
let socket: string;
let silentSocket: string;
const servers: Server[] = [];

type Handler = (call: ServerUnaryCall<{ image?: { image: string }; filter?: { image?: { image: string } } }, unknown>, done: sendUnaryData<unknown>) => void;

/** A real grpc-js CRI ImageService on a unix socket, answering as containerd 1.6 would for one image. */
const handlers: Record<string, Handler> = {
  PullImage(call, done) {
    calls.push(`PullImage ${call.request.image?.image}`);
    if (call.request.image?.image === 'registry.krill.test/team/missing:v1') done({ code: status.NOT_FOUND, details: 'registry.krill.test/team/missing:v1: not found' });
    else done(null, { imageRef: ID });
  },
  ListImages(call, done) {
    calls.push(`ListImages ${call.request.filter?.image?.image ?? ''}`);
    done(null, { images: [IMAGE, { ...IMAGE, id: `sha256:${'ef'.repeat(32)}`, repoTags: ['krill.test/pause:1'], repoDigests: [], size: 700_000 }] });
  },
  ImageStatus(call, done) {
    calls.push(`ImageStatus ${call.request.image?.image}`);
    const known = call.request.image?.image === IMAGE.repoTags[0] || call.request.image?.image === ID;
    done(null, known ? { image: IMAGE, info: (call.request as { verbose?: boolean }).verbose ? { info: JSON.stringify({ chainID: 'sha256:1' }) } : {} } : {});
  },
  RemoveImage(call, done) {
    calls.push(`RemoveImage ${call.request.image?.image}`);
    done(null, {});
  },
  ImageFsInfo(_call, done) {
    calls.push('ImageFsInfo');
    done(null, { imageFilesystems: [{ timestamp: 1, fsId: { mountpoint: '/var/lib/containerd/io.containerd.snapshotter.v1.native' }, usedBytes: { value: 4096 }, inodesUsed: { value: 3 } }] });
  },
};

async function serve(path: string, impl: Record<string, Handler>): Promise<void> {
  const server = new Server(channelOptions);
  server.addService(cri().ImageService.service, impl as never);
  await new Promise<void>((resolve, reject) => server.bindAsync(unixTarget(path), ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
  servers.push(server);
}

async function run(argv: string[]) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (c) => (out += c));
  stderr.on('data', (c) => (err += c));
  const code = await main(['cri', ...argv], { env: {}, stdout, stderr, stopSignal: new Promise(() => {}) });
  return { code, out, err };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'krill-cli-cri-'));
  socket = join(dir, 'cri.sock');
  silentSocket = join(dir, 'silent.sock');
  await serve(socket, handlers);
  // Accepts the call and never answers: only a deadline ends it.
  await serve(silentSocket, { ...handlers, ImageFsInfo: () => {} });
});
afterAll(async () => {
  for (const s of servers) s.forceShutdown();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('krill cri', () => {
  it('pulls an image with the reference exactly as typed and prints its id', async () => {
    calls.length = 0;
    const r = await run(['--socket', socket, 'pull', 'registry.krill.test/team/app:v1']);
    expect(r).toMatchObject({ code: 0, err: '' });
    expect(r.out).toMatch(new RegExp(`^Image is up to date for ${ID} \\(\\d+\\.\\d\\d s\\)\\n$`));
    expect(calls).toEqual(['PullImage registry.krill.test/team/app:v1']);
  });

  it('lists images as crictl does, one row per tag, filtered by name', async () => {
    const all = await run(['--socket', socket, 'images']);
    expect(all.code).toBe(0);
    const lines = all.out.trim().split('\n');
    expect(lines[0]).toMatch(/^IMAGE\s+TAG\s+IMAGE ID\s+SIZE$/);
    expect(lines.slice(1).map((l) => l.split(/\s+/))).toEqual([
      ['registry.krill.test/team/app', 'v1', 'ab12ab12ab12a', '12.3MB'],
      ['registry.krill.test/team/app', 'latest', 'ab12ab12ab12a', '12.3MB'],
      ['krill.test/pause', '1', 'efefefefefefe', '700kB'],
    ]);
    calls.length = 0;
    const one = await run(['--socket', socket, 'images', 'krill.test/pause']);
    expect(one.out.trim().split('\n')).toHaveLength(2);
    expect(calls).toEqual(['ListImages krill.test/pause']);
  });

  it('inspects an image verbosely, with the info values parsed', async () => {
    const r = await run(['--socket', socket, 'inspecti', IMAGE.repoTags[0]!]);
    expect(r.code).toBe(0);
    const json = JSON.parse(r.out) as { status: { id: string; uid: { value: number } }; info: { info: { chainID: string } } };
    expect(json.status.id).toBe(ID);
    expect(json.status.uid.value).toBe(1002);
    expect(json.info.info.chainID).toBe('sha256:1');
  });

  it('removes an image by the id ImageStatus gives, and fails for an unknown one', async () => {
    calls.length = 0;
    const r = await run(['--socket', socket, 'rmi', IMAGE.repoTags[0]!]);
    expect(r.code).toBe(0);
    expect(r.out).toBe(`Deleted: ${IMAGE.repoTags[0]}\nDeleted: ${IMAGE.repoTags[1]}\n`);
    expect(calls).toEqual([`ImageStatus ${IMAGE.repoTags[0]}`, `RemoveImage ${ID}`]);
    const missing = await run(['--socket', socket, 'rmi', 'nothing:here']);
    expect(missing.code).toBe(1);
    expect(missing.err).toContain('no such image "nothing:here" present');
  });

  it('imagefsinfo exits 0 when the socket answers ImageFsInfo', async () => {
    const r = await run(['--socket', socket, 'imagefsinfo']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out).status.imageFilesystems[0].fsId.mountpoint).toBe('/var/lib/containerd/io.containerd.snapshotter.v1.native');
  });

  it('prints the gRPC code and message of a failed call and exits non-zero', async () => {
    const r = await run(['--socket', socket, 'pull', 'registry.krill.test/team/missing:v1']);
    expect(r.code).toBe(1);
    expect(r.err).toBe(`krill cri pull: NOT_FOUND (gRPC code 5) from ${unixTarget(socket)}: registry.krill.test/team/missing:v1: not found\n`);
  });

  it('a dead socket fails imagefsinfo at once with UNAVAILABLE', async () => {
    const t0 = Date.now();
    const r = await run(['--socket', join(dir, 'nobody-here.sock'), 'imagefsinfo', '--timeout-ms', '3000']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^krill cri imagefsinfo: UNAVAILABLE \(gRPC code 14\) from unix:.*nobody-here\.sock: /);
    expect(Date.now() - t0).toBeLessThan(3000);
  });

  it('a socket that never answers fails imagefsinfo at the deadline', async () => {
    const r = await run(['--socket', silentSocket, 'imagefsinfo', '--timeout-ms', '300']);
    expect(r.code).toBe(1);
    expect(r.err).toContain('DEADLINE_EXCEEDED (gRPC code 4)');
  });

  it('rejects a missing image, an unknown verb and a bad timeout as usage errors', async () => {
    expect((await run(['--socket', socket, 'pull'])).err).toContain('pull needs an IMAGE');
    expect((await run(['--socket', socket, 'push', 'x'])).code).toBe(2);
    expect((await run(['--socket', socket, 'imagefsinfo', '--timeout-ms', 'soon'])).err).toContain('--timeout-ms must be a positive integer');
  });
});
