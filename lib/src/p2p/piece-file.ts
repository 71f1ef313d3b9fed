import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { open, type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { KrillError, diskError } from '../errors.js';
import type { BufferPool } from '../wire/buffer-pool.js';
import { DirectIo } from './direct-io.js';
import { RecentPieces, keepsRecent } from './recent-pieces.js';

/**
 * Status bytes are written in groups, a quarter second apart: one datasync covers every piece of
 * the group instead of one per piece (a sync costs milliseconds, a piece at link speed not much
 * more), and a crash costs at most a quarter second of pieces fetched again.
 */
const SYNC_EVERY_MS = 250;
import type { Metainfo } from '../metainfo.js';

/**
 * A blob being assembled from pieces: a pre-sized data file and a status file with one byte per
 * piece (1 = verified and written). A piece is checked against its SHA-256 from the metainfo
 * before it is written, and its status byte is written only after its data is synced, so after a
 * crash or restart every piece marked present is whole and correct, and only the rest is fetched
 * again. Readers get the blob's bytes in order as pieces arrive. Owned by one event loop.
 *
 * A file opened with `seed` is a complete blob that was verified before (an origin's stored
 * blob): it has every piece, keeps no status file and refuses writes.
 *
 * Errors: InvalidArgument ERR_PIECE_CORRUPT (hash or length mismatch), ERR_PIECE_INDEX,
 * ERR_PIECE_FILE_SIZE (a seed file of another length than its metainfo); NotFound
 * ERR_PIECE_MISSING for a read of a piece not yet present; FailedPrecondition ERR_PIECE_READ_ONLY
 * for a write to a seed file.
 */
export class PieceFile extends EventEmitter {
  private constructor(
    readonly metainfo: Metainfo,
    private readonly data: FileHandle,
    /** Whole pieces in aligned buffers go through this handle, bypassing the page cache. */
    private readonly direct: DirectIo,
    /** Undefined for a seed file, which has every piece and writes nothing. */
    private readonly status: FileHandle | undefined,
    private readonly present: Uint8Array,
    private count: number,
    /** Copies of the pieces written last, served to reads (see RecentPieces). */
    private readonly recent: RecentPieces,
  ) {
    super();
    this.setMaxListeners(0);
    this.synced = Uint8Array.from(present);
  }

  /**
   * Opens (or creates) `<path>` and `<path>.status`, resuming from the pieces already verified.
   * `keepRecent`: whether copies of recently written pieces serve reads (see RecentPieces;
   * default keepsRecent of the piece length).
   */
  static async open(path: string, metainfo: Metainfo, options: { keepRecent?: boolean } = {}): Promise<PieceFile> {
    const data = await open(path, 'a+').then(async (h) => { await h.close(); return open(path, 'r+'); });
    const status = await open(`${path}.status`, 'a+').then(async (h) => { await h.close(); return open(`${path}.status`, 'r+'); });
    await data.truncate(metainfo.length);
    const n = metainfo.pieces.length;
    const present = new Uint8Array(n);
    const { bytesRead } = await status.read(present, 0, n, 0);
    let count = 0;
    for (let i = 0; i < bytesRead; i++) {
      present[i] = present[i] === 1 ? 1 : 0;
      count += present[i]!;
    }
    if (bytesRead < n) await status.truncate(n);
    const recent = new RecentPieces(options.keepRecent ?? keepsRecent(metainfo.pieceLength));
    return new PieceFile(metainfo, data, await DirectIo.open(path, true), status, present, count, recent);
  }

  /**
   * Opens a complete blob at `path` for serving only: every piece is present, nothing is
   * written (no status file either), and the bytes are not hashed again here, so the caller
   * vouches that the file was verified against `metainfo.digest` (a store's blob is). The file
   * must not change while open; its length is checked against the metainfo.
   */
  static async seed(path: string, metainfo: Metainfo): Promise<PieceFile> {
    const data = await open(path, 'r');
    try {
      const { size } = await data.stat();
      if (size !== metainfo.length) {
        throw new KrillError('InvalidArgument', 'ERR_PIECE_FILE_SIZE', `seed file ${path} has ${size} bytes; the metainfo of ${metainfo.digest} says ${metainfo.length}`);
      }
    } catch (err) {
      await data.close();
      throw err;
    }
    const n = metainfo.pieces.length;
    return new PieceFile(metainfo, data, await DirectIo.open(path, false), undefined, new Uint8Array(n).fill(1), n, new RecentPieces(false));
  }

  /** True for a file opened with `seed`. */
  get seedOnly(): boolean {
    return this.status === undefined;
  }

  get pieceCount(): number {
    return this.metainfo.pieces.length;
  }

  get presentCount(): number {
    return this.count;
  }

  get complete(): boolean {
    return this.count === this.pieceCount;
  }

  has(index: number): boolean {
    return this.present[index] === 1;
  }

  /** Length of piece `index`: the piece length, or what is left for the last one. */
  pieceSize(index: number): number {
    this.checkIndex(index);
    const m = this.metainfo;
    return Math.min(m.pieceLength, m.length - index * m.pieceLength);
  }

  /** The wire-format bitfield: bit i of byte i/8, most significant bit first. */
  bitfield(): Buffer {
    const out = Buffer.alloc(Math.ceil(this.pieceCount / 8));
    for (let i = 0; i < this.pieceCount; i++) if (this.present[i]) out[i >> 3]! |= 0x80 >> (i & 7);
    return out;
  }

  /** Pieces present but not yet recorded in the status file, and the sync under way. */
  private unsynced: number[] = [];
  /** The status file's content: 1 for the pieces whose data was synced. */
  private readonly synced: Uint8Array;
  private syncing: Promise<void> = Promise.resolve();
  private flushTimer: NodeJS.Timeout | undefined;

  /**
   * Verifies and stores a piece; resolves true if it was new, false if it was already present
   * (a duplicate from endgame). Emits `piece` (index, bytes) for a new one; the bytes are the
   * caller's and valid only during the event.
   */
  async write(index: number, bytes: Buffer): Promise<boolean> {
    this.checkIndex(index);
    const status = this.status;
    if (!status) throw new KrillError('FailedPrecondition', 'ERR_PIECE_READ_ONLY', `${this.metainfo.digest} is open for seeding only`);
    if (this.has(index)) return false;
    const want = this.pieceSize(index);
    const hash = createHash('sha256').update(bytes).digest('hex');
    if (bytes.length !== want || hash !== this.metainfo.pieces[index]) {
      throw new KrillError('InvalidArgument', 'ERR_PIECE_CORRUPT', `piece ${index} of ${this.metainfo.digest}: ${bytes.length} bytes hashing to ${hash}, expected ${want} bytes hashing to ${this.metainfo.pieces[index]}`);
    }
    const position = index * this.metainfo.pieceLength;
    try {
      if (!(this.direct.fits(bytes, position) && (await this.direct.write(bytes, position)))) await this.data.write(bytes, 0, bytes.length, position);
    } catch (err) {
      throw diskError(err, `writing piece ${index} of ${this.metainfo.digest}`);
    }
    if (this.has(index)) return false;
    this.present[index] = 1;
    this.count++;
    this.unsynced.push(index);
    this.recent.keep(index, bytes);
    // Served and announced at once (its bytes are verified and readable); recorded on disk with
    // the next group sync.
    this.emit('piece', index, bytes);
    if (this.complete) {
      this.sync().then(() => this.emit('complete'), (err: unknown) => this.emit('warning', err));
    } else {
      this.flushTimer ??= setTimeout(() => { this.flushTimer = undefined; this.sync().catch((err: unknown) => this.emit('warning', err)); }, SYNC_EVERY_MS);
    }
    return true;
  }

  /**
   * Records the pieces written since the last sync: one datasync of the data file, then their
   * status bytes, so a status byte never reaches the disk before the data it vouches for. Syncs
   * run one at a time, in order.
   */
  sync(): Promise<void> {
    const run = this.syncing.then(async () => {
      const batch = this.unsynced.splice(0);
      if (batch.length === 0 || !this.status) return;
      await this.data.datasync();
      // One write for the group: the span from its first piece to its last, copied from the
      // record of synced pieces (so a piece written since, not yet synced, stays unmarked).
      let first = batch[0]!;
      let last = first;
      for (const i of batch) {
        this.synced[i] = 1;
        first = Math.min(first, i);
        last = Math.max(last, i);
      }
      await this.status.write(this.synced, first, last - first + 1, first);
    });
    this.syncing = run.catch(() => undefined);
    return run;
  }

  /**
   * Reads a present piece, into a buffer from `pool` when one is given (the caller gives it back
   * when done with it).
   */
  async read(index: number, pool?: BufferPool): Promise<Buffer> {
    if (!this.has(index)) throw new KrillError('NotFound', 'ERR_PIECE_MISSING', `piece ${index} of ${this.metainfo.digest} is not here yet`);
    // Unzeroed: every byte is read over. Zeroing 4 MiB a piece was a measurable share of a pull.
    const size = this.pieceSize(index);
    const out = pool ? pool.take(size) : Buffer.allocUnsafe(size);
    if (this.recent.copyTo(index, out)) return out;
    const position = index * this.metainfo.pieceLength;
    if (this.direct.fits(out, position) && (await this.direct.read(out, position))) return out;
    const { bytesRead } = await this.data.read(out, 0, out.length, position);
    if (bytesRead !== out.length) throw new KrillError('Internal', 'ERR_PIECE_SHORT', `piece ${index} of ${this.metainfo.digest}: read ${bytesRead} of ${out.length} bytes`);
    return out;
  }

  /** The blob from the start, in order, each piece as soon as it is present. */
  reader(): Readable {
    let next = 0;
    const self = this;
    return new Readable({
      highWaterMark: 2,
      objectMode: false,
      read() {
        if (next >= self.pieceCount) return void this.push(null);
        const index = next;
        const deliver = () => {
          next++;
          self.read(index).then((b) => this.push(b), (err) => this.destroy(err));
        };
        if (self.has(index)) return deliver();
        const wait = (i: number) => {
          if (i !== index) return;
          self.off('piece', wait);
          deliver();
        };
        self.on('piece', wait);
      },
    });
  }

  /** Drops the copies of recent pieces: the blob is verified, and serving it needs no speed-up. */
  forgetRecent(): void {
    this.recent.clear();
  }

  async close(): Promise<void> {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    await this.sync().catch(() => undefined);
    this.recent.clear();
    await Promise.allSettled([this.data.close(), this.direct.close(), this.status?.close()]);
  }

  private checkIndex(index: number): void {
    if (!Number.isInteger(index) || index < 0 || index >= this.pieceCount) {
      throw new KrillError('InvalidArgument', 'ERR_PIECE_INDEX', `piece index ${index} is out of range (0..${this.pieceCount - 1})`);
    }
  }
}
