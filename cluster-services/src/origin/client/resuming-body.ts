import { Readable } from 'node:stream';

/** Opens the rest of a blob (bytes `from..end`) from another source, or throws when none is left. */
export type Reopen = (from: number, cause: Error) => Promise<Readable>;

/**
 * A blob body that survives the loss of its source: bytes `start..end` (inclusive) are read from
 * `first`; when it errors or ends early, `reopen` supplies the rest from elsewhere and reading
 * goes on from the byte where it stopped. Chunks are passed on as they come, with the source
 * paused while this stream's buffer is full, so it adds no copy and keeps backpressure.
 * Destroying the body destroys the current source.
 */
export class ResumingBody extends Readable {
  private source: Readable | undefined;
  private pos: number;
  private reopening = false;

  constructor(first: Readable, start: number, private readonly end: number, private readonly reopen: Reopen, highWaterMark: number) {
    super({ highWaterMark });
    this.pos = start;
    this.attach(first);
  }

  override _read(): void {
    this.source?.resume();
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.source?.destroy();
    this.source = undefined;
    callback(err);
  }

  private attach(src: Readable): void {
    this.source = src;
    src.on('data', (chunk: Buffer) => {
      this.pos += chunk.length;
      if (!this.push(chunk)) src.pause();
    });
    src.once('end', () => {
      if (this.source !== src) return;
      if (this.pos === this.end + 1) this.push(null);
      else void this.resume_(new Error(`body ended at byte ${this.pos} of ${this.end + 1}`));
    });
    src.once('error', (err) => {
      if (this.source === src) void this.resume_(err);
    });
  }

  private async resume_(cause: Error): Promise<void> {
    if (this.reopening || this.destroyed) return;
    this.reopening = true;
    this.source = undefined;
    try {
      const next = await this.reopen(this.pos, cause);
      if (this.destroyed) {
        next.destroy();
        return;
      }
      this.attach(next);
    } catch (err) {
      this.destroy(err as Error);
    } finally {
      this.reopening = false;
    }
  }
}
