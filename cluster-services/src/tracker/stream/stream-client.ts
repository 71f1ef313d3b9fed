import { connect, type Socket } from 'node:net';
import { InvalidArgumentError, UnavailableError } from '@krill/lib';
import type { PeerInfo } from '../store/peer-store.js';
import {
  FrameType, STREAM_PATH, UPGRADE_PROTOCOL, createFrameReader, decodeError, decodePeers, encodeAnnounce, type AnnounceFrame,
} from './frames.js';

/** The tracker answered the upgrade with something else (a tracker without the stream): use HTTP. */
export class UpgradeRefusedError extends Error {}

export interface AnnounceConnection {
  announce(a: Omit<AnnounceFrame, 'id'>, signal?: AbortSignal): Promise<{ peers: PeerInfo[]; intervalMs: number }>;
  readonly closed: boolean;
  close(): void;
}

interface Pending {
  resolve(r: { peers: PeerInfo[]; intervalMs: number }): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

const MAX_HEAD = 8192;

/**
 * One announce stream to the tracker at `base` (`http://host:port`), connected on first use.
 * Announces made in the same tick go out in one write. An answer that does not come within
 * `timeoutMs`, or the connection breaking, fails every announce on it with Unavailable (the
 * caller tries the next tracker) and closes it; an announce refused fails with InvalidArgument.
 */
export function connectAnnounceStream(base: string, o: { timeoutMs: number }): AnnounceConnection {
  const url = new URL(base);
  const pending = new Map<number, Pending>();
  let nextId = 1;
  let closed = false;
  let corked = false;
  let failure: Error | undefined;
  const socket: Socket = connect({ host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || 80) });
  socket.setNoDelay(true);
  // An idle stream does not keep the process alive; a pending announce's timer does.
  socket.unref();

  const fail = (err: Error) => {
    if (closed) return;
    closed = true;
    failure = err;
    socket.destroy();
    for (const p of pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    pending.clear();
  };
  const unavailable = (why: string) => new UnavailableError(`tracker ${base} announce stream: ${why}`, { code: 'ERR_TRACKER_UNAVAILABLE' });

  const reader = createFrameReader((type, id, body) => {
    const p = pending.get(id);
    if (!p) throw new Error(`answer to announce ${id}, which is not pending`);
    pending.delete(id);
    clearTimeout(p.timer);
    if (type === FrameType.Peers) p.resolve(decodePeers(body));
    else if (type === FrameType.Error) {
      const e = decodeError(body);
      p.reject(new InvalidArgumentError(`tracker ${base}: ${e.message}`, { code: e.code }));
    } else throw new Error(`unexpected frame type ${type}`);
  });
  let head: Buffer | undefined = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    try {
      if (head) {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) {
          if (head.length > MAX_HEAD) throw new Error('upgrade answer head too long');
          return;
        }
        const status = head.toString('latin1', 0, head.indexOf('\r\n'));
        if (!/^HTTP\/1\.1 101 /.test(status)) {
          fail(new UpgradeRefusedError(`tracker ${base} answered the announce stream upgrade with ${status}`));
          return;
        }
        const rest = head.subarray(end + 4);
        head = undefined;
        if (rest.length > 0) reader.push(rest);
        return;
      }
      reader.push(chunk);
    } catch (err) {
      fail(unavailable(`protocol error: ${(err as Error).message}`));
    }
  });
  socket.on('error', (err) => fail(unavailable(err.message)));
  socket.on('close', () => fail(unavailable('connection closed')));
  socket.write(`GET ${STREAM_PATH} HTTP/1.1\r\nhost: ${url.host}\r\nconnection: Upgrade\r\nupgrade: ${UPGRADE_PROTOCOL}\r\n\r\n`);

  return {
    get closed() {
      return closed;
    },
    announce(a, signal) {
      if (closed) return Promise.reject(failure ?? unavailable('closed'));
      // InvalidArgument for fields that cannot be encoded, before anything is sent.
      const id = nextId;
      nextId = (nextId % 0xffff_ffff) + 1;
      const frame = encodeAnnounce({ ...a, id });
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => fail(unavailable(`no answer within ${o.timeoutMs} ms`)), o.timeoutMs);
        pending.set(id, { resolve, reject, timer });
        if (signal) {
          const onAbort = () => {
            const p = pending.get(id);
            if (!p) return;
            // The answer may still come: it finds an entry that does nothing.
            clearTimeout(p.timer);
            pending.set(id, { resolve: () => {}, reject: () => {}, timer: p.timer });
            reject(signal.reason instanceof Error ? signal.reason : new Error('announce aborted'));
          };
          if (signal.aborted) return onAbort();
          signal.addEventListener('abort', onAbort, { once: true });
        }
        if (!corked) {
          corked = true;
          socket.cork();
          process.nextTick(() => {
            corked = false;
            socket.uncork();
          });
        }
        socket.write(frame);
      });
    },
    close() {
      fail(unavailable('closed by the client'));
    },
  };
}
