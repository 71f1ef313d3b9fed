import { sha256 } from '../digest.js';
import { PEER_ID_BYTES, WIRE_VERSION, type WireMessage } from '../wire/messages.js';
import { Wire, duplexPair } from '../wire/wire.js';

type Handshake = Extract<WireMessage, { type: 'handshake' }>;

/**
 * For the p2p tests: two connected Wires over an in-memory pair, `local` for the subject and
 * `remote` for the test, with the handshake of peer `key` (holding every piece of 8 when `full`,
 * none otherwise) already sent both ways, as a PeerNode does before a swarm sees the connection:
 * neither end takes anything before one.
 */
export function handshakenPair(key: string, maxPayloadBytes: number, full: boolean): { local: Wire; remote: Wire; handshake: Handshake } {
  const [x, y] = duplexPair();
  const local = new Wire(x, { maxPayloadBytes });
  const remote = new Wire(y, { maxPayloadBytes });
  const handshake: Handshake = {
    type: 'handshake', version: WIRE_VERSION, peerId: Buffer.alloc(PEER_ID_BYTES, key), digest: sha256(key),
    namespace: 'team/app', bitfield: Buffer.from([full ? 0xff : 0]), pieceCount: 8,
  };
  void local.send(handshake);
  void remote.send(handshake);
  return { local, remote, handshake };
}

/** Resolves once `ok()` holds (polled every millisecond); fails the test after two seconds. */
export async function until(ok: () => boolean): Promise<void> {
  for (const end = Date.now() + 2000; !ok(); await new Promise((r) => setTimeout(r, 1))) {
    if (Date.now() > end) throw new Error('timed out');
  }
}
