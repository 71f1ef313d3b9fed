import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { Digest } from '@krill/lib';

/** What a tag points at. */
export interface TagRecord {
  digest: Digest;
  /** The manifest's media type, when known. */
  mediaType?: string;
  /** When the record was written (ms since the epoch): the put, or the upstream answer. */
  updatedAt: number;
}

/** One page of a lexical listing. */
export interface Page<T> {
  items: T[];
  /** The last item of this page, to pass as `last` for the next one; absent on the last page. */
  next?: string;
}

/**
 * Tags in SQLite: `repo:tag` → manifest digest, mutable. Every write is committed (WAL,
 * synchronous = FULL) before it returns and nothing is cached in front of the table, so the next
 * read, by this process or another one on the same file, sees it. This is what Kraken gets
 * wrong (a first-write-wins disk cache and a 5-minute nginx cache; kraken.md §6).
 *
 * Answers from upstream registries (pull-through) live in a second table, `upstream_tags`, so
 * that they can neither shadow nor be listed as tags pushed here.
 *
 * Calls are synchronous (better-sqlite3) and safe from one event loop; none throws for a
 * missing item: `get` answers undefined and `delete` false.
 */
export interface TagStore {
  /** Points `repo:tag` at `digest`, replacing what it pointed at. */
  put(repo: string, tag: string, digest: Digest, mediaType?: string): void;
  get(repo: string, tag: string): TagRecord | undefined;
  /** Removes the tag; false when there was none. */
  delete(repo: string, tag: string): boolean;
  /** The repository's tags in lexical (byte) order, strictly after `last`, at most `limit`. */
  listTags(repo: string, options: { limit: number; last?: string | undefined }): Page<string>;
  /** Repositories with at least one tag, in lexical order, strictly after `last`, at most `limit`. */
  listRepositories(options: { limit: number; last?: string | undefined }): Page<string>;
  /** Records what an upstream registry answered for `repo:tag`, with the time it was asked. */
  putUpstream(repo: string, tag: string, digest: Digest, mediaType?: string): void;
  getUpstream(repo: string, tag: string): TagRecord | undefined;
  /** Forgets an upstream answer (the tag is gone upstream). */
  deleteUpstream(repo: string, tag: string): void;
  /** A cheap query that throws when the database is unusable (for `/ready`). */
  check(): void;
  close(): void;
}

export interface TagStoreOptions {
  /** The SQLite file; its directory is created. */
  path: string;
  /** The clock, in ms since the epoch; tests pass their own. */
  now?: () => number;
}

/**
 * How long a write waits for another process's write lock: SQLite writes here take well under a
 * millisecond, so 5 s only runs out when something is wrong with the file.
 */
const BUSY_TIMEOUT_MS = 5_000;

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS tags (
    repo TEXT NOT NULL, tag TEXT NOT NULL, digest TEXT NOT NULL, media_type TEXT, updated_at INTEGER NOT NULL,
    PRIMARY KEY (repo, tag)
  ) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS upstream_tags (
    repo TEXT NOT NULL, tag TEXT NOT NULL, digest TEXT NOT NULL, media_type TEXT, fetched_at INTEGER NOT NULL,
    PRIMARY KEY (repo, tag)
  ) WITHOUT ROWID;`;

type Row = { digest: Digest; mediaType: string | null; updatedAt: number };

export function openTagStore(options: TagStoreOptions): TagStore {
  const now = options.now ?? Date.now;
  mkdirSync(dirname(options.path), { recursive: true });
  const db = new Database(options.path, { timeout: BUSY_TIMEOUT_MS });
  try {
    db.pragma('journal_mode = WAL');
    // FULL makes each commit durable on return: an acknowledged push survives a crash.
    db.pragma('synchronous = FULL');
    db.exec(SCHEMA);
  } catch (err) {
    db.close();
    throw err;
  }
  const upsert = (table: string, timeColumn: string) => db.prepare<[string, string, string, string | null, number]>(
    `INSERT INTO ${table} (repo, tag, digest, media_type, ${timeColumn}) VALUES (?, ?, ?, ?, ?)
     ON CONFLICT (repo, tag) DO UPDATE SET digest = excluded.digest, media_type = excluded.media_type, ${timeColumn} = excluded.${timeColumn}`);
  const select = (table: string, timeColumn: string) => db.prepare<[string, string], Row>(
    `SELECT digest, media_type AS mediaType, ${timeColumn} AS updatedAt FROM ${table} WHERE repo = ? AND tag = ?`);
  const putTag = upsert('tags', 'updated_at');
  const putUp = upsert('upstream_tags', 'fetched_at');
  const getTag = select('tags', 'updated_at');
  const getUp = select('upstream_tags', 'fetched_at');
  const del = db.prepare<[string, string]>('DELETE FROM tags WHERE repo = ? AND tag = ?');
  const delUp = db.prepare<[string, string]>('DELETE FROM upstream_tags WHERE repo = ? AND tag = ?');
  // Both listings walk the (repo, tag) primary key in order; SQLite compares TEXT bytewise (BINARY).
  const tags = db.prepare<[string, string, number], { tag: string }>('SELECT tag FROM tags WHERE repo = ? AND tag > ? ORDER BY tag LIMIT ?');
  const repos = db.prepare<[string, number], { repo: string }>('SELECT DISTINCT repo FROM tags WHERE repo > ? ORDER BY repo LIMIT ?');
  const ping = db.prepare('SELECT 1');

  return {
    put: (repo, tag, digest, mediaType) => void putTag.run(repo, tag, digest, mediaType ?? null, now()),
    get: (repo, tag) => record(getTag.get(repo, tag)),
    delete: (repo, tag) => del.run(repo, tag).changes > 0,
    listTags: (repo, o) => page(tags.all(repo, o.last ?? '', o.limit + 1).map((r) => r.tag), o.limit),
    listRepositories: (o) => page(repos.all(o.last ?? '', o.limit + 1).map((r) => r.repo), o.limit),
    putUpstream: (repo, tag, digest, mediaType) => void putUp.run(repo, tag, digest, mediaType ?? null, now()),
    getUpstream: (repo, tag) => record(getUp.get(repo, tag)),
    deleteUpstream: (repo, tag) => void delUp.run(repo, tag),
    check: () => void ping.get(),
    close: () => db.close(),
  };
}

function record(row: Row | undefined): TagRecord | undefined {
  if (!row) return undefined;
  return { digest: row.digest, updatedAt: row.updatedAt, ...(row.mediaType ? { mediaType: row.mediaType } : {}) };
}

/** `rows` holds one more row than a page when there is a next page. */
function page(rows: string[], limit: number): Page<string> {
  return rows.length > limit ? { items: rows.slice(0, limit), next: rows[limit - 1]! } : { items: rows };
}
