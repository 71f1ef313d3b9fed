import { randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readdir, rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { InvalidArgumentError, NotFoundError } from '@krill/lib';

/** Spool buffers: a GiB blob moves in about a thousand writes. */
const IO_CHUNK = 1024 * 1024;
/** Spool files are named `<uuid>.upload`; only such files are ever removed from the directory. */
const SPOOL_RE = /^[0-9a-f-]{36}\.upload$/;

interface Session {
  id: string;
  repo: string;
  file: string;
  size: number;
  touched: number;
  /** The chunk being received, if any: its body, and a promise that settles when it is done. */
  inflight: { body: Readable; settled: Promise<unknown> } | undefined;
  /** Set by `finish`: the spool is final and is being stored; no more chunks. */
  committing: boolean;
}

/**
 * Blob upload sessions of the distribution API, spooled to files under `dir`. The spool is not
 * hashed here: the origin that stores it verifies it against the digest before it becomes
 * visible, so a push pays for one SHA-256 pass, not two. Sessions live in memory: a
 * proxy restart drops them (clients start the upload again) and the spool files left behind are
 * removed at start. Idle sessions are removed after `ttlMs`.
 *
 * A chunk is all or nothing: if its body breaks off, or holds fewer or more bytes than it
 * declared, the spool is cut back to where the chunk started and the client may resend it.
 * A request for a session that is still receiving a chunk supersedes it: a client retries only
 * after it gave up on the earlier request, whose connection the server may not yet know is dead.
 */
export class UploadSessions {
  private readonly sessions = new Map<string, Session>();
  private timer: NodeJS.Timeout | undefined;

  private constructor(private readonly dir: string, private readonly ttlMs: number) {}

  static async open(dir: string, ttlMs: number): Promise<UploadSessions> {
    await mkdir(dir, { recursive: true });
    // Only our own spool files: the directory may be shared with something else.
    for (const name of await readdir(dir)) if (SPOOL_RE.test(name)) await rm(join(dir, name), { force: true });
    const s = new UploadSessions(dir, ttlMs);
    // Check at most once a minute so a short TTL (tests) still expires promptly.
    s.timer = setInterval(() => void s.expire(), Math.min(ttlMs, 60_000));
    s.timer.unref();
    return s;
  }

  async start(repo: string): Promise<string> {
    const id = randomUUID();
    const file = join(this.dir, `${id}.upload`);
    await writeFile(file, '');
    this.sessions.set(id, { id, repo, file, size: 0, touched: Date.now(), inflight: undefined, committing: false });
    return id;
  }

  get(repo: string, id: string): { size: number } {
    const s = this.session(repo, id);
    return { size: s.size };
  }

  /**
   * Appends `body`, which must start at `start` when given (InvalidArgument ERR_UPLOAD_OFFSET
   * otherwise) and hold exactly `length` bytes when given (ERR_UPLOAD_OFFSET). A body that
   * breaks off is ERR_UPLOAD_INVALID. Either way the spool is rolled back to where it was.
   */
  async append(repo: string, id: string, body: Readable, options: { start?: number; length?: number } = {}): Promise<number> {
    let s = await this.idle(repo, id);
    // Another request may have begun a chunk while this one was waiting; wait for that too.
    // From the loop's end to `inflight` being set nothing awaits, so no third request slips in.
    while (s.inflight) s = await this.idle(repo, id);
    if (options.start !== undefined && options.start !== s.size) {
      throw new InvalidArgumentError(`upload ${id}: chunk starts at ${options.start}, but ${s.size} bytes were received`, { code: 'ERR_UPLOAD_OFFSET' });
    }
    const work = this.receive(s, body, options);
    s.inflight = { body, settled: work.catch(() => undefined) };
    try {
      return await work;
    } finally {
      if (s.inflight?.body === body) s.inflight = undefined;
      s.touched = Date.now();
    }
  }

  private async receive(s: Session, body: Readable, options: { length?: number }): Promise<number> {
    const id = s.id;
    const before = s.size;
    let received = 0;
    const limit = options.length;
    // Bytes past a declared length are counted and dropped rather than failing the stream, so the
    // request is read to its end and the client still gets its answer.
    const count = new Transform({
      highWaterMark: IO_CHUNK,
      transform(c: Buffer, _e, done) {
        received += c.length;
        if (limit !== undefined && received > limit) return done();
        done(null, c);
      },
    });
    const out = createWriteStream(s.file, { flags: 'a', highWaterMark: IO_CHUNK });
    try {
      await pipeline(body, count, out);
      if (limit !== undefined && received !== limit) {
        throw new InvalidArgumentError(`upload ${id}: chunk declared ${limit} bytes but held ${received}; it was discarded`, { code: 'ERR_UPLOAD_OFFSET' });
      }
      s.size = before + received;
      return s.size;
    } catch (err) {
      // The write stream may still be closing its descriptor; cut the file back only after it has.
      await finished(out).catch(() => undefined);
      // ENOENT: the session was deleted meanwhile, and its file with it.
      await truncate(s.file, before).catch(() => undefined);
      s.size = before;
      if (err instanceof InvalidArgumentError) throw err;
      throw new InvalidArgumentError(`upload ${id}: chunk broke off after ${received} bytes and was discarded: ${(err as Error).message}`, { code: 'ERR_UPLOAD_INVALID', cause: err });
    }
  }

  /**
   * The session's digest, size and spool file, rehashing the spool only if a chunk was rolled
   * back. The session then takes no more chunks (ERR_UPLOAD_INVALID); the caller stores the
   * spool and removes the session.
   */
  async finish(repo: string, id: string): Promise<{ size: number; file: string }> {
    let s = await this.idle(repo, id);
    while (s.inflight) s = await this.idle(repo, id);
    s.committing = true;
    return { size: s.size, file: s.file };
  }

  /** Ends a session and deletes its spool, first cutting off a chunk still being received. */
  async remove(id: string): Promise<void> {
    const s = this.sessions.get(id);
    this.sessions.delete(id);
    if (!s) return;
    if (s.inflight) {
      s.inflight.body.destroy();
      await s.inflight.settled;
    }
    await rm(s.file, { force: true });
  }

  /** How many sessions are open; for tests and metrics. */
  get count(): number {
    return this.sessions.size;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await Promise.all([...this.sessions.keys()].map((id) => this.remove(id)));
  }

  private session(repo: string, id: string): Session {
    const s = this.sessions.get(id);
    if (!s || s.repo !== repo) throw new NotFoundError(`upload ${id} of ${repo} does not exist`, { code: 'ERR_UPLOAD_NOT_FOUND' });
    return s;
  }

  /** The session, once no chunk is being received for it (cutting off one that is). */
  private async idle(repo: string, id: string): Promise<Session> {
    let s = this.session(repo, id);
    while (s.inflight) {
      s.inflight.body.destroy();
      await s.inflight.settled;
      s = this.session(repo, id);
    }
    if (s.committing) throw new InvalidArgumentError(`upload ${id} is being committed`, { code: 'ERR_UPLOAD_INVALID' });
    return s;
  }

  private async expire(): Promise<void> {
    const now = Date.now();
    for (const s of this.sessions.values()) if (!s.inflight && now - s.touched > this.ttlMs) await this.remove(s.id);
  }
}
