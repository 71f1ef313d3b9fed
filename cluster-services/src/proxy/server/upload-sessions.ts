import { randomUUID } from 'node:crypto';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { InvalidArgumentError, NotFoundError, isKrillError } from '@krill/lib';
import type { OriginClient, RemoteUpload } from '../../origin/index.js';

/** Forwarding buffers: a GiB blob moves in about a thousand chunks. */
const IO_CHUNK = 1024 * 1024;
/** Spool files of earlier versions were named `<uuid>.upload`; only such files are ever removed from the directory. */
const SPOOL_RE = /^[0-9a-f-]{36}\.upload$/;

interface Session {
  id: string;
  repo: string;
  /** The origin upload the chunks stream into; opened with the first chunk (or at finish). */
  remote: RemoteUpload | undefined;
  size: number;
  touched: number;
  /** The chunk being received, if any: its body, and a promise that settles when it is done. */
  inflight: { body: Readable; settled: Promise<unknown> } | undefined;
  /** Set by `finish`: the upload is final and is being stored; no more chunks. */
  committing: boolean;
}

/**
 * Blob upload sessions of the distribution API. Each chunk streams straight through to an upload
 * session on one origin (picked when the first chunk arrives: the digest, and so the blob's
 * owners, are known only at the final PUT), so by then the origin has received, hashed and
 * written every byte and only its commit (verify, fsync, place, replicate) remains. The proxy
 * keeps no copy: nothing is hashed or written twice on a push's critical path.
 *
 * A chunk is all or nothing: if its body breaks off, or holds fewer or more bytes than it
 * declared, the origin cuts its upload back to where the chunk started (atomic appends) and the
 * client may resend it. A request for a session that is still receiving a chunk supersedes it: a
 * client retries only after it gave up on the earlier request, whose connection the server may
 * not yet know is dead. If the origin fails while a chunk streams to it, the session ends (the
 * client gets the origin's 5xx, then BLOB_UPLOAD_UNKNOWN, and starts again; new sessions go to
 * an origin that answers); the origin's partial upload is never committed. Sessions live in
 * memory: a proxy restart drops them. Idle sessions are removed after `ttlMs`.
 */
export class UploadSessions {
  private readonly sessions = new Map<string, Session>();
  private timer: NodeJS.Timeout | undefined;

  private constructor(private readonly origins: OriginClient, private readonly ttlMs: number) {}

  static async open(dir: string, ttlMs: number, origins: OriginClient): Promise<UploadSessions> {
    await mkdir(dir, { recursive: true });
    // Only our own spool files: the directory may be shared with something else.
    for (const name of await readdir(dir)) if (SPOOL_RE.test(name)) await rm(join(dir, name), { force: true });
    const s = new UploadSessions(origins, ttlMs);
    // Check at most once a minute so a short TTL (tests) still expires promptly.
    s.timer = setInterval(() => void s.expire(), Math.min(ttlMs, 60_000));
    s.timer.unref();
    return s;
  }

  async start(repo: string): Promise<string> {
    const id = randomUUID();
    this.sessions.set(id, { id, repo, remote: undefined, size: 0, touched: Date.now(), inflight: undefined, committing: false });
    return id;
  }

  get(repo: string, id: string): { size: number } {
    const s = this.session(repo, id);
    return { size: s.size };
  }

  /**
   * Appends `body`, which must start at `start` when given (InvalidArgument ERR_UPLOAD_OFFSET
   * otherwise) and hold exactly `length` bytes when given (ERR_UPLOAD_OFFSET). A body that
   * breaks off is ERR_UPLOAD_INVALID. Either way the upload is rolled back to where it was. An
   * origin failure is the origin's error (Unavailable) and ends the session.
   */
  async append(repo: string, id: string, body: Readable, options: { start?: number; length?: number } = {}): Promise<number> {
    let s = await this.idle(repo, id);
    // Another request may have begun a chunk while this one was waiting; wait for that too.
    // From the loop's end to `inflight` being set nothing awaits, so no third request slips in.
    while (s.inflight) s = await this.idle(repo, id);
    if (options.start !== undefined && options.start !== s.size) {
      body.resume();
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
    let clientBroke = false;
    let ended = false;
    const limit = options.length;
    // Bytes past a declared length are counted and dropped rather than failing the stream, so the
    // request is read to its end and the client still gets its answer; a wrong length fails the
    // forwarded body only at its end, before it is complete, so the origin discards the chunk.
    const count = new Transform({
      highWaterMark: IO_CHUNK,
      transform(c: Buffer, _e, done) {
        received += c.length;
        if (limit !== undefined && received > limit) return done();
        done(null, c);
      },
      flush(done) {
        if (limit !== undefined && received !== limit) done(new InvalidArgumentError(`upload ${id}: chunk declared ${limit} bytes but held ${received}; it was discarded`, { code: 'ERR_UPLOAD_OFFSET' }));
        else done();
      },
    });
    // `pipe`, not `pipeline`: an origin that fails must not take the client's request down with
    // it, or the client would get a reset connection instead of the error.
    body.once('end', () => { ended = true; });
    const broke = (err?: Error) => {
      if (ended) return;
      clientBroke = true;
      count.destroy(err ?? new Error('the request body was cut off'));
    };
    body.once('error', broke);
    body.once('close', () => broke());
    body.pipe(count);
    try {
      s.remote ??= await this.origins.openUpload(s.repo, s.id);
      s.size = await this.origins.appendUpload(s.remote, before, count);
      if (s.size !== before + received) throw new Error(`the origin holds ${s.size} bytes, not ${before + received}`);
      return s.size;
    } catch (err) {
      body.unpipe(count);
      if (!body.destroyed) body.resume();
      s.size = before;
      if (limit !== undefined && received !== limit && !clientBroke) {
        throw new InvalidArgumentError(`upload ${id}: chunk declared ${limit} bytes but held ${received}; it was discarded`, { code: 'ERR_UPLOAD_OFFSET' });
      }
      if (clientBroke) {
        throw new InvalidArgumentError(`upload ${id}: chunk broke off after ${received} bytes and was discarded: ${(err as Error).message}`, { code: 'ERR_UPLOAD_INVALID', cause: err });
      }
      if (s.remote === undefined) throw err;
      // The origin failed, or holds other bytes than this session expects: what it has is not
      // known, so the session ends and the client starts again. Not by `remove`, which would cut
      // off this very request before it carries the error to the client.
      this.sessions.delete(id);
      void this.origins.abortUpload(s.remote);
      if (isKrillError(err) && err.category === 'Unavailable') throw err;
      throw new InvalidArgumentError(`upload ${id} failed on the origin and was discarded; start again: ${(err as Error).message}`, { code: 'ERR_UPLOAD_INVALID', cause: err });
    }
  }

  /**
   * The session's size and origin upload (opening an empty one if no chunk came). The session
   * then takes no more chunks (ERR_UPLOAD_INVALID); the caller commits the upload and removes
   * the session.
   */
  async finish(repo: string, id: string): Promise<{ size: number; remote: RemoteUpload }> {
    let s = await this.idle(repo, id);
    while (s.inflight) s = await this.idle(repo, id);
    s.committing = true;
    s.remote ??= await this.origins.openUpload(s.repo, s.id);
    return { size: s.size, remote: s.remote };
  }

  /**
   * Ends a session, first cutting off a chunk still being received, and drops its origin upload
   * unless `committed` (the origin moved it into its store).
   */
  async remove(id: string, committed = false): Promise<void> {
    const s = this.sessions.get(id);
    this.sessions.delete(id);
    if (!s) return;
    if (s.inflight) {
      s.inflight.body.destroy();
      await s.inflight.settled;
    }
    if (s.remote && !committed) await this.origins.abortUpload(s.remote);
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
