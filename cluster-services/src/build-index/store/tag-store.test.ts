import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sha256 } from '@krill/lib';
import { openTagStore, type TagStore } from './tag-store.js';

const v1 = sha256('v1');
const v2 = sha256('v2');
let dir: string;
let stores: TagStore[];
const open = (now?: () => number) => {
  const s = openTagStore({ path: join(dir, 'sub', 'tags.db'), ...(now ? { now } : {}) });
  stores.push(s);
  return s;
};

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'krill-tag-store-'));
  stores = [];
});
afterEach(() => {
  for (const s of stores) s.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('tag store', () => {
  it('makes a re-put visible at once, to this handle and to another one on the same file', () => {
    let t = 1000;
    const a = open(() => t);
    const b = open();
    a.put('team/app', 'latest', v1, 'application/vnd.oci.image.manifest.v1+json');
    expect(b.get('team/app', 'latest')).toMatchObject({ digest: v1 });
    t = 2000;
    a.put('team/app', 'latest', v2);
    expect(a.get('team/app', 'latest')).toEqual({ digest: v2, updatedAt: 2000 });
    expect(b.get('team/app', 'latest')?.digest).toBe(v2);
  });

  it('keeps tags across a reopen', () => {
    open().put('team/app', 'v1', v1);
    stores.pop()!.close();
    expect(open().get('team/app', 'v1')?.digest).toBe(v1);
  });

  it('pages tags in lexical order, exactly, with next only when more follow', () => {
    const s = open();
    for (const t of ['b', 'a', 'B', '10', '9', 'c']) s.put('team/app', t, v1);
    s.put('team/app2', 'zz', v1);
    // Byte order: digits, then upper case, then lower case.
    expect(s.listTags('team/app', { limit: 2 })).toEqual({ items: ['10', '9'], next: '9' });
    expect(s.listTags('team/app', { limit: 2, last: '9' })).toEqual({ items: ['B', 'a'], next: 'a' });
    expect(s.listTags('team/app', { limit: 2, last: 'a' })).toEqual({ items: ['b', 'c'] });
    expect(s.listTags('team/app', { limit: 6 })).toEqual({ items: ['10', '9', 'B', 'a', 'b', 'c'] });
    expect(s.listTags('team/app', { limit: 5 }).next).toBe('b');
    expect(s.listTags('team/app', { limit: 3, last: 'c' })).toEqual({ items: [] });
    expect(s.listTags('team/none', { limit: 3 })).toEqual({ items: [] });
  });

  it('pages repositories that have tags, each once', () => {
    const s = open();
    for (const r of ['c/x', 'a/x', 'b/x']) {
      s.put(r, 'v1', v1);
      s.put(r, 'v2', v2);
    }
    expect(s.listRepositories({ limit: 2 })).toEqual({ items: ['a/x', 'b/x'], next: 'b/x' });
    expect(s.listRepositories({ limit: 2, last: 'b/x' })).toEqual({ items: ['c/x'] });
    s.delete('c/x', 'v1');
    s.delete('c/x', 'v2');
    expect(s.listRepositories({ limit: 10 })).toEqual({ items: ['a/x', 'b/x'] });
  });

  it('deletes a tag and says whether there was one', () => {
    const s = open();
    s.put('team/app', 'v1', v1);
    expect(s.delete('team/app', 'v1')).toBe(true);
    expect(s.delete('team/app', 'v1')).toBe(false);
    expect(s.get('team/app', 'v1')).toBeUndefined();
  });

  it('keeps upstream answers apart from pushed tags', () => {
    let t = 5;
    const s = open(() => t);
    s.putUpstream('upstream.local/app', 'v1', v1);
    expect(s.get('upstream.local/app', 'v1')).toBeUndefined();
    expect(s.listRepositories({ limit: 10 })).toEqual({ items: [] });
    t = 7;
    s.putUpstream('upstream.local/app', 'v1', v2, 'application/vnd.oci.image.index.v1+json');
    expect(s.getUpstream('upstream.local/app', 'v1')).toEqual({ digest: v2, mediaType: 'application/vnd.oci.image.index.v1+json', updatedAt: 7 });
  });
});
