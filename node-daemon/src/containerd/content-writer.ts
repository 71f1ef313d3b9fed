import type { Readable } from 'node:stream';
import { status, type Client, type ClientDuplexStream, type Metadata } from '@grpc/grpc-js';
import { CanceledError, InternalError, piecePool } from '@krill/lib';
import { unary } from '@krill/proto';
import type { BlobDescriptor, Lease } from './containerd.js';
import { fromGrpc, grpcCode } from './grpc-errors.js';

/**
 * Bytes per WRITE message, a quarter of containerd's 16 MiB message limit. containerd spends
 * about a core per 220 MB/s on a Write stream, part of it per message: 4 MiB messages gave
 * 5-15% more than the Go client's 1 MiB here.
 */
const CHUNK = 4 * 1024 * 1024;
/**
 * WRITE messages sent before their answers are read. containerd answers every request in order;
 * a few in flight keep its writer busy while the next chunk crosses the socket.
 */
const WINDOW = 4;

interface WriteResponse { action?: string; offset?: number; total?: number; digest?: string }
type Stream = ClientDuplexStream<object, WriteResponse>;

/**
 * content.Write for one blob (reference/cri-containerd.md §3): STAT first (ALREADY_EXISTS means
 * the blob is there: `exists`; an offset equal to the size means containerd can adopt a copy it
 * holds, so only COMMIT is sent), then WRITE from offset 0 (which restarts a stale partial
 * ingest under the same ref), then COMMIT with the size, digest and labels, which containerd
 * verifies. COMMIT is answered twice by some versions; the first answer counts. On failure the
 * partial ingest is aborted.
 */
export async function writeContent(client: Client, metadata: Metadata, w: {
  lease: Lease; desc: BlobDescriptor; body: AsyncIterable<Buffer>; labels: Record<string, string>; signal?: AbortSignal; recycle?: boolean;
}): Promise<'written' | 'exists'> {
  const ref = `krill-${w.desc.digest}`;
  const stream = (client as unknown as { Write(md: Metadata): Stream }).Write(metadata);
  const answers = stream[Symbol.asyncIterator]() as AsyncIterator<WriteResponse>;
  // The body may be waiting for pieces still on their way: a cancel must not wait for them.
  const onAbort = () => {
    stream.cancel();
    (w.body as Partial<Readable>).destroy?.();
  };
  w.signal?.addEventListener('abort', onAbort, { once: true });
  let pending = 0;
  const send = (msg: object, written?: () => void) => {
    stream.write(msg, written);
    pending++;
  };
  const answer = async (): Promise<WriteResponse> => {
    pending--;
    const r = await answers.next();
    if (r.done) throw new InternalError(`containerd content.Write ${ref}: stream ended without an answer`, { code: 'ERR_CONTAINERD_INTERNAL' });
    return r.value;
  };
  try {
    send({ action: 'STAT', ref, total: w.desc.size, expected: w.desc.digest, offset: 0, data: Buffer.alloc(0), labels: {} });
    const stat = await answer();
    let offset = 0;
    if ((stat.offset ?? 0) !== w.desc.size || w.desc.size === 0) {
      // Pieces are copied into messages of CHUNK bytes, each assembled in a pooled buffer that
      // goes back to the pool once grpc-js has serialized it (the write's callback); a fresh
      // buffer per message made the GC a quarter of a pull's CPU.
      // The last message of a blob is a slice of one (small blobs get a buffer of their size).
      let msg: Buffer | undefined;
      let filled = 0;
      const flush = async () => {
        const buf = msg!;
        const data = filled === buf.length ? buf : buf.subarray(0, filled);
        msg = undefined;
        filled = 0;
        send({ action: 'WRITE', ref, offset, data, total: w.desc.size, expected: w.desc.digest, labels: {} }, () => piecePool.give(buf));
        offset += data.length;
        if (pending >= WINDOW) await answer();
      };
      for await (const chunk of w.body) {
        for (let at = 0; at < chunk.length;) {
          if (!msg) {
            const room = w.desc.size - offset;
            if (room <= 0) throw new InternalError(`blob ${w.desc.digest} has more than its ${w.desc.size} bytes`, { code: 'ERR_BLOB_LONG' });
            msg = piecePool.take(room >= CHUNK / 4 ? CHUNK : room);
          }
          const n = chunk.copy(msg, filled, at);
          filled += n;
          at += n;
          if (filled === msg.length) await flush();
        }
        if (w.recycle) piecePool.give(chunk);
      }
      if (msg && filled > 0) await flush();
      while (pending > 0) await answer();
      if (offset !== w.desc.size) throw new InternalError(`blob ${w.desc.digest} ended after ${offset} of ${w.desc.size} bytes`, { code: 'ERR_BLOB_SHORT' });
    }
    send({ action: 'COMMIT', ref, total: w.desc.size, expected: w.desc.digest, offset: w.desc.size, data: Buffer.alloc(0), labels: w.labels });
    await answer();
    stream.end();
    return 'written';
  } catch (err) {
    stream.cancel();
    if (grpcCode(err) === status.ALREADY_EXISTS) return 'exists';
    if (w.signal?.aborted) throw new CanceledError(`write of ${w.desc.digest} to containerd cancelled`, { code: 'ERR_PULL_CANCELED', cause: err });
    await abortIngest(client, metadata, ref);
    throw fromGrpc(err, `content.Write ${w.desc.digest}`);
  } finally {
    w.signal?.removeEventListener('abort', onAbort);
    // Extra answers (the repeated COMMIT reply) and the end of the stream are drained here.
    stream.on('data', () => {});
    stream.on('error', () => {});
  }
}

/** Drops the partial ingest under `ref`, if any, so a failed write leaves nothing behind. */
async function abortIngest(client: Client, metadata: Metadata, ref: string): Promise<void> {
  await unary(client, 'Abort', { ref }, { metadata }).catch(() => {});
}
