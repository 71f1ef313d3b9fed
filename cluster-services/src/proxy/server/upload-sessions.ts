import { randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Digester, InvalidArgumentError, NotFoundError, type Digest } from '@krill/lib';

/** Spool buffers: a GiB blob moves in about a thousand writes. */
const IO_CHUNK = 1024 * 1024;

interface Session {
  id: string;
  repo: string;
  file: string;
  size: number;
  /** Hash of the bytes appended so far; dropped if an append fails midway (then rehashed from disk). */
  digester: Digester | undefined;
  touched: number;
  busy: boolean;
}

/**
 * Blob upload sessions of the distribution API, spooled to files under `dir` and hashed as the
 * bytes arrive, so verifying a finished upload costs no second pass. Sessions live in memory: a
 * proxy restart drops them (clients start the upload again), and the spool directory is emptied
 * at start. Idle sessions are removed after `ttlMs`.
 */
export class UploadSessions {
  private readonly sessions = new Map<string, Session>();
  private timer: NodeJS.Timeout | undefined;

  private constructor(private readonly dir: string, private readonly ttlMs: number) {}

  static async open(dir: string, ttlMs: number): Promise<UploadSessions> {
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    const s = new UploadSessions(dir, ttlMs);
    s.timer = setInterval(() => void s.expire(), Math.min(ttlMs, 60_000));
    s.timer.unref();
    return s;
  }

  async start(repo: string): Promise<string> {
    const id = randomUUID();
    const file = join(this.dir, id);
    await rm(file, { force: true });
    await pipeline(async function* () {}, createWriteStream(file));
    this.sessions.set(id, { id, repo, file, size: 0, digester: new Digester(), touched: Date.now(), busy: false });
    return id;
  }

  get(repo: string, id: string): { size: number } {
    const s = this.session(repo, id);
    return { size: s.size };
  }

  /**
   * Appends `body` at `start` (which must be the current size when given). On a broken body the
   * bytes written stay and the session's offset is re-read from the file.
   */
  async append(repo: string, id: string, body: Readable, start?: number): Promise<number> {
    const s = this.session(repo, id);
    if (s.busy) throw new InvalidArgumentError(`upload ${id} already has a request in progress`, { code: 'ERR_UPLOAD_INVALID' });
    if (start !== undefined && start !== s.size) {
      body.resume();
      throw new InvalidArgumentError(`upload ${id}: chunk starts at ${start}, but ${s.size} bytes were received`, { code: 'ERR_UPLOAD_OFFSET' });
    }
    s.busy = true;
    const digester = s.digester;
    const hash = new Transform({ highWaterMark: IO_CHUNK, transform(c: Buffer, _e, done) { digester?.update(c); done(null, c); } });
    try {
      await pipeline(body, hash, createWriteStream(s.file, { flags: 'a', highWaterMark: IO_CHUNK }));
      s.size = (await stat(s.file)).size;
    } catch (err) {
      s.digester = undefined;
      s.size = (await stat(s.file)).size;
      throw new InvalidArgumentError(`upload ${id}: chunk ended early: ${(err as Error).message}`, { code: 'ERR_UPLOAD_INVALID', cause: err });
    } finally {
      s.busy = false;
      s.touched = Date.now();
    }
    return s.size;
  }

  /** The session's digest and size, rehashing the spool only if an append broke the running hash. */
  async finish(repo: string, id: string): Promise<{ digest: Digest; size: number; file: string }> {
    const s = this.session(repo, id);
    let digester = s.digester;
    if (!digester || digester.size !== s.size) {
      digester = new Digester();
      for await (const c of createReadStream(s.file, { highWaterMark: IO_CHUNK })) digester.update(c as Buffer);
    }
    return { digest: digester.digest(), size: digester.size, file: s.file };
  }

  async remove(id: string): Promise<void> {
    const s = this.sessions.get(id);
    this.sessions.delete(id);
    if (s) await rm(s.file, { force: true });
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

  private async expire(): Promise<void> {
    const now = Date.now();
    for (const s of this.sessions.values()) if (!s.busy && now - s.touched > this.ttlMs) await this.remove(s.id);
  }
}
