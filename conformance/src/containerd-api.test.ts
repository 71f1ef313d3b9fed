import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  channelOptions, containerd, containerdMetadata, serverStream, unary, unixTarget,
  type Input, type content, type introspection, type leases, type version,
} from '@krill/proto';
import { piecePool, type Digest } from '@krill/lib';
import { createContainerd } from '@krill/node-daemon';
import { startContainerd, type Containerd } from './harness/containerd.js';

// The krill .proto files against Debian's real containerd: the calls krill's ingest makes, with
// the answers the reference notes (shared/reference/cri-containerd.md §3) recorded.

/** The namespace containerd's CRI uses, and so krill's ingest. */
const NAMESPACE = 'k8s.io';

let work: string;
let daemon: Containerd;
let clients: { version: grpc.Client; introspection: grpc.Client; leases: grpc.Client; content: grpc.Client };

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'krill-containerd-api-'));
  daemon = await startContainerd({ dir: work });
  const target = unixTarget(daemon.socket);
  const insecure = grpc.credentials.createInsecure();
  const { Version, Introspection, Leases, Content } = containerd();
  clients = {
    version: new Version(target, insecure, channelOptions),
    introspection: new Introspection(target, insecure, channelOptions),
    leases: new Leases(target, insecure, channelOptions),
    content: new Content(target, insecure, channelOptions),
  };
});
afterAll(async () => {
  for (const c of Object.values(clients ?? {})) c.close();
  await daemon?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

const md = (lease?: string) => containerdMetadata(lease === undefined ? { namespace: NAMESPACE } : { namespace: NAMESPACE, lease });
const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const leaseIds = async () => (await unary<leases.ListResponse>(clients.leases, 'List', {}, { metadata: md() })).leases.map((l) => l.id);

/**
 * Writes `data` as one Write stream in lock step (STAT, WRITE from the resume offset, COMMIT),
 * the way containerd's Go client does, and returns every response, extra ones after COMMIT
 * included. Rejects with the stream's gRPC error.
 */
async function writeBlob(data: Buffer, o: { lease?: string; labels?: Record<string, string> } = {}): Promise<content.WriteContentResponse[]> {
  const expected = sha256(data);
  const ref = `krill-test-${expected}`;
  const call = (clients.content as unknown as { Write(m: grpc.Metadata): grpc.ClientDuplexStream<Input<content.WriteContentRequest>, content.WriteContentResponse> }).Write(md(o.lease));
  const replies = call[Symbol.asyncIterator]() as AsyncIterator<content.WriteContentResponse>;
  const seen: content.WriteContentResponse[] = [];
  const send = async (req: Input<content.WriteContentRequest>) => {
    call.write(req);
    const r = await replies.next();
    if (r.done) throw new Error(`Write stream ended before answering ${req.action}`);
    seen.push(r.value);
    return r.value;
  };
  try {
    const stat = await send({ action: 'STAT', ref, total: data.length, expected });
    await send({ action: 'WRITE', ref, offset: stat.offset, data: data.subarray(stat.offset) });
    await send({ action: 'COMMIT', ref, total: data.length, expected, offset: data.length, labels: o.labels ?? {} });
    call.end();
    for (let r = await replies.next(); !r.done; r = await replies.next()) seen.push(r.value);
    return seen;
  } finally {
    call.on('error', () => {});
    call.cancel();
  }
}

describe('containerd API over the krill protos (containerd 1.6)', () => {
  it('Version answers a version that starts with a digit', async () => {
    const v = await unary<version.VersionResponse>(clients.version, 'Version', {});
    expect(v.version).toMatch(/^\d/);
    expect(typeof v.revision).toBe('string');
  });

  it('Introspection.Plugins lists the content store plugin', async () => {
    const all = await unary<introspection.PluginsResponse>(clients.introspection, 'Plugins', { filters: [] });
    expect(all.plugins.map((p) => p.type)).toContain('io.containerd.content.v1');
    const only = await unary<introspection.PluginsResponse>(clients.introspection, 'plugins', { filters: ['type=="io.containerd.content.v1"'] });
    expect(only.plugins.length).toBeGreaterThan(0);
    expect(only.plugins.every((p) => p.type === 'io.containerd.content.v1' && p.initErr === null)).toBe(true);
  });

  it('Leases: Create, List and Delete in the k8s.io namespace', async () => {
    const id = `krill-test-${randomBytes(6).toString('hex')}`;
    const expire = new Date(Date.now() + 3_600_000).toISOString();
    const created = await unary<leases.CreateResponse>(clients.leases, 'Create', { id, labels: { 'containerd.io/gc.expire': expire } }, { metadata: md() });
    expect(created.lease).toMatchObject({ id, labels: { 'containerd.io/gc.expire': expire } });
    expect(created.lease!.createdAt!.seconds).toBeGreaterThan(0);
    expect(await leaseIds()).toContain(id);
    await unary(clients.leases, 'Delete', { id, sync: true }, { metadata: md() });
    expect(await leaseIds()).not.toContain(id);
  });

  it('rejects a call without the namespace header with FAILED_PRECONDITION', async () => {
    await expect(unary(clients.leases, 'List', {})).rejects.toMatchObject({ code: grpc.status.FAILED_PRECONDITION });
  });

  it('Content: Write (STAT, WRITE, COMMIT), Info and Read a blob; a second Write fails with ALREADY_EXISTS', async () => {
    const lease = (await unary<leases.CreateResponse>(clients.leases, 'Create', { id: `krill-test-${randomBytes(6).toString('hex')}` }, { metadata: md() })).lease!.id;
    const data = randomBytes(1000);
    const digest = sha256(data);
    try {
      const replies = await writeBlob(data, { lease, labels: { 'krill.test/origin': 'containerd-api.test' } });
      // containerd answers COMMIT twice (its deferred Send repeats the last reply; seen on 1.6.20,
      // 1.7.24 and 2.1.9), so a client reads one reply per request and ignores the rest.
      expect(replies.map((r) => `${r.action}@${r.offset}`)).toEqual(['STAT@0', `WRITE@${data.length}`, `COMMIT@${data.length}`, `COMMIT@${data.length}`]);
      expect(replies[2]).toMatchObject({ digest, total: data.length });
      expect(replies[3]).toEqual(replies[2]);

      const { info } = await unary<content.InfoResponse>(clients.content, 'Info', { digest }, { metadata: md() });
      expect(info).toMatchObject({ digest, size: data.length, labels: { 'krill.test/origin': 'containerd-api.test' } });

      const chunks: Buffer[] = [];
      for await (const m of serverStream<content.ReadContentResponse>(clients.content, 'Read', { digest }, { metadata: md() })) chunks.push(m.data);
      expect(Buffer.concat(chunks).equals(data)).toBe(true);

      await expect(writeBlob(data, { lease })).rejects.toMatchObject({ code: grpc.status.ALREADY_EXISTS });
    } finally {
      await unary(clients.content, 'Delete', { digest }, { metadata: md() }).catch(() => undefined);
      await unary(clients.leases, 'Delete', { id: lease, sync: true }, { metadata: md() });
    }
    await expect(unary(clients.content, 'Info', { digest }, { metadata: md() })).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
  });
});

describe("krill's content writer against containerd", () => {
  it('writes a blob of several messages from pooled pieces, and refuses a body longer than its size', async () => {
    const client = createContainerd({ socket: daemon.socket, namespace: NAMESPACE });
    const lease = await client.createLease(60_000);
    try {
      // 9 MiB + 5 bytes: two full 4 MiB messages and a short last one, fed as 1 MiB pieces.
      const data = randomBytes(9 * 1024 * 1024 + 5);
      const desc = { digest: sha256(data) as Digest, size: data.length, mediaType: 'application/octet-stream' };
      const pieces = function* () {
        for (let at = 0; at < data.length; at += 1024 * 1024) {
          const end = Math.min(at + 1024 * 1024, data.length);
          const p = piecePool.take(end - at);
          data.copy(p, 0, at, end);
          yield p;
        }
      };
      expect(await client.writeBlob({ lease, desc, body: pieces(), labels: {}, recycle: true })).toBe('written');
      const chunks: Buffer[] = [];
      for await (const m of serverStream<content.ReadContentResponse>(clients.content, 'Read', { digest: desc.digest }, { metadata: md() })) chunks.push(m.data);
      expect(Buffer.concat(chunks).equals(data)).toBe(true);
      const long = Buffer.alloc(5 * 1024 * 1024, 1);
      const short = { digest: sha256(long.subarray(0, 4 * 1024 * 1024)) as Digest, size: 4 * 1024 * 1024, mediaType: 'application/octet-stream' };
      await expect(client.writeBlob({ lease, desc: short, body: [long], labels: {} })).rejects.toMatchObject({ code: 'ERR_BLOB_LONG' });
      await expect(unary(clients.content, 'Info', { digest: short.digest }, { metadata: md() })).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
    } finally {
      await lease.delete();
      client.close();
    }
  });
});
