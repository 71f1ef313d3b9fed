import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  FrameDecoder, PEER_ID_BYTES, PeerNode, PieceFile, Swarm, WIRE_VERSION, encodeFrame, encodeHeader,
  type Metainfo, type WireMessage,
} from '@krill/lib';

/**
 * A test agent for one blob: its own PeerNode, PieceFile and Swarm, as an agent runs them.
 * `done` resolves once the whole blob is in and verified against its digest.
 */
export async function startTestAgent(metainfo: Metainfo, namespace = 'team/app') {
  const dataPath = join(mkdtempSync(join(tmpdir(), 'krill-agent-')), 'blob');
  const file = await PieceFile.open(dataPath, metainfo);
  const swarm = new Swarm({ file, requestTimeoutMs: 5000 });
  const node = await PeerNode.start();
  node.register(metainfo.digest, namespace, swarm);
  const done = new Promise<void>((resolve, reject) => {
    swarm.once('complete', () => resolve());
    swarm.once('error', reject);
  });
  return {
    node, file, swarm, dataPath, done,
    async close() {
      await node.close();
      await file.close();
    },
  };
}

/**
 * Sends a handshake for `digest` over a raw socket and returns the first message answered. A
 * Wire would take an error before the handshake for a violation and hide its code.
 */
export async function firstAnswer(port: number, digest: string, pieceCount: number, namespace = 'team/app'): Promise<WireMessage> {
  const socket = connect({ host: '127.0.0.1', port });
  const hello: WireMessage = {
    type: 'handshake', version: WIRE_VERSION, peerId: randomBytes(PEER_ID_BYTES), digest, namespace,
    bitfield: Buffer.alloc(Math.ceil(pieceCount / 8)), pieceCount,
  };
  for (const b of encodeFrame(hello, encodeHeader(hello))) socket.write(b);
  // 1 MiB is more than any answer to a handshake (a handshake or an error) takes.
  const decoder = new FrameDecoder(1024 * 1024);
  try {
    return await new Promise<WireMessage>((resolve, reject) => {
      socket.on('data', (c: Buffer) => decoder.feed(c, resolve));
      socket.once('error', reject);
      socket.once('close', () => reject(new Error('closed without an answer')));
    });
  } finally {
    socket.destroy();
  }
}
