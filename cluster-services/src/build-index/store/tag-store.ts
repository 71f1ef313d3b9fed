import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { Digest } from '@krill/lib';

export interface TagRecord {
  digest: Digest;
  mediaType?: string;
  updatedAt: number;
}

export interface Page<T> {
  items: T[];
  next?: string;
}

/**
 * Tags in SQLite: `repo:tag` → manifest digest. Every put is committed before it returns and
 * nothing is cached in front of the table, so a re-pushed tag is what the next reader sees.
 * Pull-through answers are kept in a second table with the time they were fetched.
 * Calls are synchronous (better-sqlite3) and safe from one event loop.
 */
export interface TagStore {
  put(repo: string, tag: string, digest: Digest, mediaType?: string): void;
  get(repo: string, tag: string): TagRecord | undefined;
  delete(repo: string, tag: string): boolean;
  listTags(repo: string, limit: number, last?: string): Page<string>;
  listRepositories(limit: number, last?: string): Page<string>;
  putUpstream(repo: string, tag: string, digest: Digest, mediaType?: string): void;
  getUpstream(repo: string, tag: string): TagRecord | undefined;
  close(): void;
}

export function openTagStore(path: string): TagStore {
  mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.exec(`
    CREATE TABLE IF NOT EXISTS tags (repo TEXT NOT NULL, tag TEXT NOT NULL, digest TEXT NOT NULL, media_type TEXT, updated_at INTEGER NOT NULL, PRIMARY KEY (repo, tag));
    CREATE TABLE IF NOT EXISTS upstream_tags (repo TEXT NOT NULL, tag TEXT NOT NULL, digest TEXT NOT NULL, media_type TEXT, fetched_at INTEGER NOT NULL, PRIMARY KEY (repo, tag));`);
  const upsert = (table: 'tags' | 'upstream_tags', col: string) => db.prepare(`INSERT INTO ${table} (repo, tag, digest, media_type, ${col}) VALUES (?, ?, ?, ?, ?)
    ON CONFLICT (repo, tag) DO UPDATE SET digest = excluded.digest, media_type = excluded.media_type, ${col} = excluded.${col}`);
  const put = upsert('tags', 'updated_at');
  const putUp = upsert('upstream_tags', 'fetched_at');
  const get = db.prepare('SELECT digest, media_type AS mediaType, updated_at AS updatedAt FROM tags WHERE repo = ? AND tag = ?');
  const getUp = db.prepare('SELECT digest, media_type AS mediaType, fetched_at AS updatedAt FROM upstream_tags WHERE repo = ? AND tag = ?');
  const del = db.prepare('DELETE FROM tags WHERE repo = ? AND tag = ?');
  const tags = db.prepare('SELECT tag FROM tags WHERE repo = ? AND tag > ? ORDER BY tag LIMIT ?');
  const repos = db.prepare('SELECT DISTINCT repo FROM tags WHERE repo > ? ORDER BY repo LIMIT ?');
  const clean = (r: { digest: Digest; mediaType: string | null; updatedAt: number } | undefined): TagRecord | undefined =>
    r && { digest: r.digest, updatedAt: r.updatedAt, ...(r.mediaType ? { mediaType: r.mediaType } : {}) };
  // One more row than asked tells whether there is a next page.
  const page = (rows: string[], limit: number): Page<string> =>
    rows.length > limit ? { items: rows.slice(0, limit), next: rows[limit - 1]! } : { items: rows };
  return {
    put: (repo, tag, digest, mediaType) => void put.run(repo, tag, digest, mediaType ?? null, Date.now()),
    get: (repo, tag) => clean(get.get(repo, tag) as never),
    delete: (repo, tag) => del.run(repo, tag).changes > 0,
    listTags: (repo, limit, last) => page((tags.all(repo, last ?? '', limit + 1) as Array<{ tag: string }>).map((r) => r.tag), limit),
    listRepositories: (limit, last) => page((repos.all(last ?? '', limit + 1) as Array<{ repo: string }>).map((r) => r.repo), limit),
    putUpstream: (repo, tag, digest, mediaType) => void putUp.run(repo, tag, digest, mediaType ?? null, Date.now()),
    getUpstream: (repo, tag) => clean(getUp.get(repo, tag) as never),
    close: () => db.close(),
  };
}
