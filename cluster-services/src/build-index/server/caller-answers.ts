import { createHmac, randomBytes } from 'node:crypto';
import type { Digest } from '@krill/lib';
import type { UpstreamCredentials } from '../../upstream/index.js';
import type { TagRecord } from '../store/tag-store.js';

/**
 * Ten thousand answers of ~300 bytes each is a few MB: room for every private tag a cluster
 * pulls under each pull secret in use. Past it the least recently used is dropped and its next
 * pull asks upstream again, which is what a cold cache costs anyway.
 */
export const MAX_CALLER_ANSWERS = 10_000;

/**
 * Upstream answers obtained with callers' own credentials, one per repository, tag and
 * credentials, kept in memory only. The credentials enter the key as an HMAC under a key made
 * when the process starts: no password, and no hash one could test guesses against, is ever
 * written to disk, and a restart forgets them all (the next pull asks upstream). The least
 * recently used answer is dropped past `max`. Synchronous; safe from one event loop.
 */
export class CallerAnswers {
  private readonly hmacKey = randomBytes(32);
  private readonly answers = new Map<string, TagRecord>();

  constructor(private readonly max = MAX_CALLER_ANSWERS) {}

  get size(): number {
    return this.answers.size;
  }

  /** The key of `repo:tag` asked with `credentials`; it reveals nothing of them. */
  keyOf(repo: string, tag: string, credentials: UpstreamCredentials): string {
    const who = createHmac('sha256', this.hmacKey).update(`${credentials.username}\0${credentials.password}`).digest('base64url');
    return `${repo}:${tag}\0${who}`;
  }

  get(key: string): TagRecord | undefined {
    const rec = this.answers.get(key);
    if (rec === undefined) return undefined;
    // Re-inserting makes it the newest in the Map's insertion order.
    this.answers.delete(key);
    this.answers.set(key, rec);
    return rec;
  }

  put(key: string, digest: Digest, mediaType: string | undefined, updatedAt: number): void {
    this.answers.delete(key);
    this.answers.set(key, { digest, updatedAt, ...(mediaType ? { mediaType } : {}) });
    if (this.answers.size > this.max) this.answers.delete(this.answers.keys().next().value!);
  }

  delete(key: string): void {
    this.answers.delete(key);
  }
}
