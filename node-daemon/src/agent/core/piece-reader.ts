import { Readable } from 'node:stream';
import type { PieceFile } from '@krill/lib';

/** Something that may fail while a reader waits: the download feeding the piece file. */
export interface Failable {
  readonly error: Error | undefined;
  once(event: 'failed', listener: (err: Error) => void): unknown;
  off(event: 'failed', listener: (err: Error) => void): unknown;
}

/**
 * Bytes `start..end` (inclusive) of the blob assembling in `file`, in order, each piece as soon
 * as it is verified. One piece is held in memory at a time (the stream's buffer is one chunk),
 * so a reader of a multi-GB blob costs a piece or two of memory, not the blob. The stream
 * errors when `source` fails before the pieces it needs arrive.
 */
export function pieceReader(file: PieceFile, range: { start: number; end: number }, source: Failable): Readable {
  const pl = file.metainfo.pieceLength;
  async function* pieces(): AsyncGenerator<Buffer> {
    for (let i = Math.floor(range.start / pl); i <= Math.floor(range.end / pl); i++) {
      if (!file.has(i)) await arrival(file, i, source);
      const piece = await file.read(i);
      const from = Math.max(range.start - i * pl, 0);
      const to = Math.min(range.end - i * pl + 1, piece.length);
      yield from === 0 && to === piece.length ? piece : piece.subarray(from, to);
    }
  }
  return Readable.from(pieces(), { objectMode: false, highWaterMark: 1 });
}

function arrival(file: PieceFile, index: number, source: Failable): Promise<void> {
  if (source.error) return Promise.reject(source.error);
  return new Promise((resolve, reject) => {
    const onPiece = (i: number) => {
      if (i !== index) return;
      cleanup();
      resolve();
    };
    const onFailed = (err: Error) => {
      cleanup();
      reject(err);
    };
    const cleanup = () => {
      file.off('piece', onPiece);
      source.off('failed', onFailed);
    };
    file.on('piece', onPiece);
    source.once('failed', onFailed);
    // The piece may have landed between the caller's check and these listeners: nothing awaits
    // in between, so it cannot, but a resumed file that was complete all along must not wait.
    if (file.has(index)) onPiece(index);
  });
}
