import { Readable } from 'node:stream';
import { piecePool, type PieceFile } from '@krill/lib';

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
 * errors when `source` fails before the pieces it needs arrive. Destroying it ends a wait for
 * a piece at once (a cancelled pull must not wait for pieces nobody will read). `pooled`: pieces
 * are read into buffers of piecePool, which the consumer gives back.
 */
export function pieceReader(file: PieceFile, range: { start: number; end: number }, source: Failable, pooled = false): Readable {
  return new PieceReader(file, range, source, pooled);
}

class PieceReader extends Readable {
  private next: number;
  private readonly last: number;
  private readonly stop = new AbortController();
  private busy = false;

  constructor(private readonly file: PieceFile, private readonly range: { start: number; end: number }, private readonly source: Failable, private readonly pooled: boolean) {
    // A buffer of one byte: each push of a piece fills it, so pieces are read one at a time.
    super({ highWaterMark: 1 });
    const pl = file.metainfo.pieceLength;
    this.next = Math.floor(range.start / pl);
    this.last = Math.floor(range.end / pl);
  }

  override _read(): void {
    if (this.busy) return;
    this.busy = true;
    void this.pump();
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.stop.abort();
    callback(err);
  }

  private async pump(): Promise<void> {
    try {
      for (;;) {
        if (this.next > this.last) {
          this.push(null);
          return;
        }
        const i = this.next++;
        if (!this.file.has(i)) await arrival(this.file, i, this.source, this.stop.signal);
        const piece = await this.file.read(i, this.pooled ? piecePool : undefined);
        if (this.destroyed) return;
        const pl = this.file.metainfo.pieceLength;
        const from = Math.max(this.range.start - i * pl, 0);
        const to = Math.min(this.range.end - i * pl + 1, piece.length);
        if (!this.push(from === 0 && to === piece.length ? piece : piece.subarray(from, to))) return;
      }
    } catch (err) {
      if (!this.destroyed) this.destroy(err as Error);
    } finally {
      this.busy = false;
    }
  }
}

function arrival(file: PieceFile, index: number, source: Failable, signal: AbortSignal): Promise<void> {
  if (source.error) return Promise.reject(source.error);
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      cleanup();
      reject(new Error('piece reader destroyed'));
    };
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
      signal.removeEventListener('abort', onAbort);
    };
    file.on('piece', onPiece);
    source.once('failed', onFailed);
    signal.addEventListener('abort', onAbort, { once: true });
    // The piece may have landed between the caller's check and these listeners: nothing awaits
    // in between, so it cannot, but a resumed file that was complete all along must not wait.
    if (file.has(index)) onPiece(index);
  });
}
