import type { PieceFile, Pacer } from '@krill/lib';
import type { OriginClient } from '@krill/cluster-services';

/** Pieces read at once: two keep one origin connection busy across a round trip. */
const CONCURRENCY = 2;
/** Pause after a round in which every origin failed, before asking again. */
const RETRY_MS = 1000;

/**
 * The last-resort path of a download: missing pieces read from the origins with HTTP Range
 * requests, each verified by the piece file against its SHA-256 before it is stored, exactly as
 * a piece from a peer is. Runs until every piece is present or `stop`; failures are reported
 * to `onError` and retried, and the download's stall timeout decides when to give up.
 */
export class HttpPieces {
  /** Bytes of new, verified pieces this path stored. */
  received = 0;
  private stopped = false;
  private readonly busy = new Set<number>();

  constructor(
    private readonly file: PieceFile,
    private readonly namespace: string,
    private readonly origins: OriginClient,
    private readonly ingress: Pacer,
    private readonly onError: (err: Error) => void,
  ) {}

  run(): void {
    for (let i = 0; i < CONCURRENCY; i++) void this.worker();
  }

  stop(): void {
    this.stopped = true;
  }

  private next(): number | undefined {
    for (let i = 0; i < this.file.pieceCount; i++) if (!this.file.has(i) && !this.busy.has(i)) return i;
    return undefined;
  }

  private async worker(): Promise<void> {
    while (!this.stopped && !this.file.complete) {
      const index = this.next();
      if (index === undefined) return;
      this.busy.add(index);
      try {
        const bytes = await this.fetch(index);
        await this.ingress.take(bytes.length);
        if (!this.stopped && (await this.file.write(index, bytes))) this.received += bytes.length;
      } catch (err) {
        if (this.stopped) return;
        this.onError(err as Error);
        await new Promise((r) => setTimeout(r, RETRY_MS));
      } finally {
        this.busy.delete(index);
      }
    }
  }

  private async fetch(index: number): Promise<Buffer> {
    const start = index * this.file.metainfo.pieceLength;
    const end = start + this.file.pieceSize(index) - 1;
    const { body } = await this.origins.download(this.namespace, this.file.metainfo.digest, { range: { start, end } });
    const chunks: Buffer[] = [];
    for await (const c of body) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  }
}
