import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MediaType, sha256, type Digest } from '@krill/lib';
import { startTestProxy, type TestProxy } from '../testing/index.js';

let p: TestProxy;
beforeEach(async () => {
  p = await startTestProxy();
});
afterEach(async () => {
  await p.close();
});

async function oci(res: Response): Promise<{ status: number; code: string | undefined }> {
  const body = (await res.json().catch(() => ({}))) as { errors?: Array<{ code: string }> };
  return { status: res.status, code: body.errors?.[0]?.code };
}

async function pushBlob(bytes: string, repo = 'team/app'): Promise<{ mediaType: string; digest: Digest; size: number }> {
  const digest = sha256(bytes);
  const res = await fetch(`${p.v2}/${repo}/blobs/uploads/?digest=${digest}`, { method: 'POST', body: bytes });
  expect(res.status).toBe(201);
  return { mediaType: MediaType.OciLayerGzip, digest, size: Buffer.byteLength(bytes) };
}

function put(repo: string, ref: string, body: string, contentType: string): Promise<Response> {
  return fetch(`${p.v2}/${repo}/manifests/${ref}`, { method: 'PUT', body, headers: { 'content-type': contentType } });
}

/** An image manifest of `type` (OCI or Docker schema 2) over a fresh config and layer. */
async function image(type: string, seed: string, repo = 'team/app'): Promise<string> {
  const docker = type === MediaType.DockerManifest;
  const config = { ...(await pushBlob(`config ${seed}`, repo)), mediaType: docker ? MediaType.DockerConfig : MediaType.OciConfig };
  const layer = { ...(await pushBlob(`layer ${seed}`, repo)), mediaType: docker ? MediaType.DockerLayerGzip : MediaType.OciLayerGzip };
  return JSON.stringify({ schemaVersion: 2, mediaType: type, config, layers: [layer] });
}

describe('proxy: manifests', () => {
  for (const type of [MediaType.OciManifest, MediaType.DockerManifest]) {
    it(`PUT, GET and HEAD of a ${type}, by tag and by digest`, async () => {
      const body = await image(type, type);
      const digest = sha256(body);
      const res = await put('team/app', 'v1', body, type);
      expect([res.status, res.headers.get('location'), res.headers.get('docker-content-digest')]).toEqual([201, `/v2/team/app/manifests/${digest}`, digest]);
      expect(p.tags.tags.get('team/app')!.get('v1')).toBe(digest);
      expect([...p.origins.blobs.get(digest)!.namespaces]).toEqual(['team/app']);
      for (const ref of ['v1', digest]) {
        const get = await fetch(`${p.v2}/team/app/manifests/${ref}`);
        expect([get.status, get.headers.get('content-type'), get.headers.get('docker-content-digest'), await get.text()]).toEqual([200, type, digest, body]);
        const head = await fetch(`${p.v2}/team/app/manifests/${ref}`, { method: 'HEAD' });
        expect([head.status, head.headers.get('content-type'), head.headers.get('docker-content-digest'), head.headers.get('content-length')])
          .toEqual([200, type, digest, String(Buffer.byteLength(body))]);
      }
    });
  }

  for (const [index, child] of [[MediaType.OciIndex, MediaType.OciManifest], [MediaType.DockerManifestList, MediaType.DockerManifest]] as const) {
    it(`an ${index} over manifests pushed by digest`, async () => {
      const children = [];
      for (const arch of ['amd64', 'arm64']) {
        const body = await image(child, arch);
        const digest = sha256(body);
        const res = await put('team/app', digest, body, child);
        expect([res.status, res.headers.get('docker-content-digest')]).toEqual([201, digest]);
        children.push({ mediaType: child, digest, size: Buffer.byteLength(body), platform: { os: 'linux', architecture: arch } });
      }
      expect(p.tags.tags.get('team/app')).toBeUndefined();
      const body = JSON.stringify({ schemaVersion: 2, mediaType: index, manifests: children });
      expect((await put('team/app', 'multi', body, index)).status).toBe(201);
      const get = await fetch(`${p.v2}/team/app/manifests/multi`);
      expect([get.headers.get('content-type'), get.headers.get('docker-content-digest'), await get.text()]).toEqual([index, sha256(body), body]);
    });
  }

  it('a manifest without mediaType is served as what its shape says', async () => {
    const body = JSON.stringify({ schemaVersion: 2, manifests: [] });
    expect((await put('team/app', 'bare', body, MediaType.OciIndex)).status).toBe(201);
    expect((await fetch(`${p.v2}/team/app/manifests/bare`)).headers.get('content-type')).toBe(MediaType.OciIndex);
  });

  it('a re-pushed tag is what the next reader gets', async () => {
    const one = await image(MediaType.OciManifest, 'one');
    const two = await image(MediaType.OciManifest, 'two');
    await put('team/app', 'latest', one, MediaType.OciManifest);
    await put('team/app', 'latest', two, MediaType.OciManifest);
    expect(await fetch(`${p.v2}/team/app/manifests/latest`).then((r) => r.text())).toBe(two);
  });

  it('refuses bad manifests with the spec codes and stores nothing', async () => {
    const missing = sha256('never pushed');
    const dangling = JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: { mediaType: MediaType.OciConfig, digest: missing, size: 3 }, layers: [] });
    const res = await put('team/app', 'v1', dangling, MediaType.OciManifest);
    expect(res.status).toBe(400);
    expect(((await res.json()) as { errors: unknown[] }).errors[0]).toMatchObject({ code: 'MANIFEST_BLOB_UNKNOWN', detail: { digest: missing } });
    const huge = JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, pad: 'x'.repeat(4 * 1024 * 1024) });
    expect(await oci(await put('team/app', 'v1', huge, MediaType.OciManifest))).toEqual({ status: 413, code: 'MANIFEST_INVALID' });
    // Without a Content-Length the limit shows only while reading; the answer still arrives.
    const chunked = await fetch(`${p.v2}/team/app/manifests/v1`, { method: 'PUT', body: Readable.toWeb(Readable.from([huge])) as ReadableStream, headers: { 'content-type': MediaType.OciManifest }, duplex: 'half' } as RequestInit);
    expect(await oci(chunked)).toEqual({ status: 413, code: 'MANIFEST_INVALID' });
    expect(await oci(await put('team/app', 'v1', '{}', 'application/vnd.example+json'))).toEqual({ status: 415, code: 'UNSUPPORTED' });
    expect(await oci(await put('team/app', 'v1', '[1]', MediaType.OciManifest))).toEqual({ status: 400, code: 'MANIFEST_INVALID' });
    expect(await oci(await put('team/app', 'v1', JSON.stringify({ schemaVersion: 1 }), MediaType.OciManifest))).toEqual({ status: 400, code: 'MANIFEST_INVALID' });
    expect(await oci(await put('team/app', 'bad!tag', dangling, MediaType.OciManifest))).toEqual({ status: 400, code: 'TAG_INVALID' });
    expect(await oci(await put('team/app', sha256('other'), dangling, MediaType.OciManifest))).toEqual({ status: 400, code: 'DIGEST_INVALID' });
    expect(await oci(await put('team/app', 'sha256:short', dangling, MediaType.OciManifest))).toEqual({ status: 400, code: 'DIGEST_INVALID' });
    expect(p.origins.blobs.size).toBe(0);
    expect(p.tags.tags.size).toBe(0);
  });

  it('unknown manifests, tags and repositories', async () => {
    expect(await oci(await fetch(`${p.v2}/team/app/manifests/v1`))).toEqual({ status: 404, code: 'MANIFEST_UNKNOWN' });
    expect(await oci(await fetch(`${p.v2}/team/app/manifests/${sha256('x')}`))).toEqual({ status: 404, code: 'MANIFEST_UNKNOWN' });
    expect((await fetch(`${p.v2}/team/app/manifests/v1`, { method: 'HEAD' })).status).toBe(404);
    expect(await fetch(`${p.v2}/team/app/tags/list`).then((r) => r.json())).toEqual({ name: 'team/app', tags: [] });
    expect(await oci(await fetch(`${p.v2}/team/app/manifests/v1`, { method: 'DELETE' }))).toEqual({ status: 405, code: 'UNSUPPORTED' });
  });

  it('build-index and origin outages are 503 UNAVAILABLE, and nothing is tagged', async () => {
    const body = await image(MediaType.OciManifest, 'x');
    p.tags.setDown(true);
    expect(await oci(await put('team/app', 'v1', body, MediaType.OciManifest))).toEqual({ status: 503, code: 'UNAVAILABLE' });
    expect(await oci(await fetch(`${p.v2}/team/app/manifests/v1`))).toEqual({ status: 503, code: 'UNAVAILABLE' });
    p.tags.setDown(false);
    p.origins.setDown(true);
    expect(await oci(await put('team/app', 'v1', body, MediaType.OciManifest))).toEqual({ status: 503, code: 'UNAVAILABLE' });
    expect(p.tags.tags.size).toBe(0);
  });
});

describe('proxy: tag lists and the catalog', () => {
  it('pages with n and last, and a Link header to the next page', async () => {
    const body = await image(MediaType.OciManifest, 'x');
    for (const tag of ['c', 'a', 'b', 'd', 'e']) expect((await put('team/app', tag, body, MediaType.OciManifest)).status).toBe(201);
    const all = await fetch(`${p.v2}/team/app/tags/list`);
    expect([await all.json(), all.headers.get('link')]).toEqual([{ name: 'team/app', tags: ['a', 'b', 'c', 'd', 'e'] }, null]);
    const first = await fetch(`${p.v2}/team/app/tags/list?n=2`);
    expect(await first.json()).toEqual({ name: 'team/app', tags: ['a', 'b'] });
    expect(first.headers.get('link')).toBe('</v2/team/app/tags/list?n=2&last=b>; rel="next"');
    const second = await fetch(new URL(/<(.+)>/.exec(first.headers.get('link')!)![1]!, p.url));
    expect(await second.json()).toEqual({ name: 'team/app', tags: ['c', 'd'] });
    const last = await fetch(`${p.v2}/team/app/tags/list?n=2&last=d`);
    expect([await last.json(), last.headers.get('link')]).toEqual([{ name: 'team/app', tags: ['e'] }, null]);
    expect(await fetch(`${p.v2}/team/app/tags/list?last=e`).then((r) => r.json())).toEqual({ name: 'team/app', tags: [] });
    expect(await fetch(`${p.v2}/team/app/tags/list?n=0`).then((r) => r.json())).toEqual({ name: 'team/app', tags: [] });
    expect(await oci(await fetch(`${p.v2}/team/app/tags/list?n=-1`))).toEqual({ status: 400, code: 'PAGINATION_NUMBER_INVALID' });
  });

  it('lists repositories in the catalog', async () => {
    for (const repo of ['b/two', 'a/one', 'c']) {
      const body = await image(MediaType.OciManifest, repo, repo);
      expect((await put(repo, 'v1', body, MediaType.OciManifest)).status).toBe(201);
    }
    expect(await fetch(`${p.v2}/_catalog`).then((r) => r.json())).toEqual({ repositories: ['a/one', 'b/two', 'c'] });
    const first = await fetch(`${p.v2}/_catalog?n=1`);
    expect([await first.json(), first.headers.get('link')]).toEqual([{ repositories: ['a/one'] }, '</v2/_catalog?n=1&last=a%2Fone>; rel="next"']);
    expect(await fetch(`${p.v2}/_catalog?n=5&last=a%2Fone`).then((r) => r.json())).toEqual({ repositories: ['b/two', 'c'] });
  });
});
