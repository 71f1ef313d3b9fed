import type { IncomingMessage, Server } from 'node:http';
import type { Socket } from 'node:net';
import { isKrillError, type Logger } from '@krill/lib';
import type { PeerInfo, WireHandout } from '../store/peer-store.js';
import {
  FrameError, FrameType, STREAM_PATH, UPGRADE_PROTOCOL, createFrameReader, decodeAnnounce, encodeError, encodePeers,
  type AnnounceFrame,
} from './frames.js';

/**
 * What the tracker does with one announce: record the caller and answer its peers (or throw
 * InvalidArgument), as PeerInfo objects for the HTTP route, as wire bytes for the stream.
 */
export interface AnnounceHandler {
  json(a: AnnounceFrame): readonly PeerInfo[];
  wire(a: AnnounceFrame): WireHandout;
}

export interface AnnounceStreams {
  /** Open stream connections. */
  connections(): number;
  /** Closes every stream connection (after the HTTP server stopped accepting). */
  close(): void;
}

/**
 * Serves the announce stream (frames.ts) on `server`'s upgrade requests to STREAM_PATH. The
 * answers to every frame of one read are written in one writev; while the socket's buffer is
 * full, reading pauses. A protocol violation closes the connection and is counted.
 */
export function serveAnnounceStreams(server: Server, o: {
  handle: AnnounceHandler; intervalMs: number; logger: Logger; onViolation: () => void;
}): AnnounceStreams {
  const open = new Set<Socket>();
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== STREAM_PATH || String(req.headers.upgrade ?? '').toLowerCase() !== UPGRADE_PROTOCOL) {
      socket.end('HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n'
        + `upgrade to ${UPGRADE_PROTOCOL} on ${STREAM_PATH} only\n`);
      return;
    }
    open.add(socket);
    socket.once('close', () => open.delete(socket));
    socket.setNoDelay(true);
    socket.on('error', () => socket.destroy());
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: ${UPGRADE_PROTOCOL}\r\n\r\n`);
    let out: Buffer[] = [];
    const reader = createFrameReader((type, id, body) => {
      if (type !== FrameType.Announce) throw new FrameError(`unexpected frame type ${type}`);
      const a = decodeAnnounce(id, body);
      try {
        out.push(encodePeers(id, o.handle.wire(a), o.intervalMs));
      } catch (err) {
        if (!isKrillError(err)) throw err;
        out.push(encodeError(id, err.code, err.message));
      }
    });
    const onData = (chunk: Buffer) => {
      try {
        reader.push(chunk);
      } catch (err) {
        o.onViolation();
        o.logger.warn({ err: (err as Error).message, remote: socket.remoteAddress }, 'announce stream: closing a connection that broke the protocol');
        socket.destroy();
        return;
      } finally {
        if (out.length > 0 && !socket.destroyed) {
          // Corked, the answers go out in one writev without being copied together first.
          socket.cork();
          let room = true;
          for (const b of out) room = socket.write(b);
          socket.uncork();
          out = [];
          if (!room) {
            socket.pause();
            socket.once('drain', () => socket.resume());
          }
        }
      }
    };
    socket.on('data', onData);
    if (head.length > 0) onData(head);
  });
  return {
    connections: () => open.size,
    close() {
      for (const s of open) s.destroy();
      open.clear();
    },
  };
}
