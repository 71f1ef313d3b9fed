import { afterEach, describe, expect, it } from 'vitest';
import { createHttpService, type HttpService } from './http-service.js';
import { silentLogger } from './logger.js';

let svc: HttpService | undefined;
afterEach(async () => { await svc?.close(); svc = undefined; });

describe('http service', () => {
  it('serves health, readiness and request metrics by route and status', async () => {
    let ready = false;
    svc = createHttpService({ name: 'test', logger: silentLogger(), ready: async () => { if (!ready) throw new Error('store not open'); } });
    svc.app.get('/things/:id', async (req, reply) => ((req.params as { id: string }).id === 'x' ? reply.code(404).send() : { ok: 1 }));
    const url = await svc.listen('127.0.0.1', 0);
    expect((await fetch(`${url}/health`)).status).toBe(200);
    const notReady = await fetch(`${url}/ready`);
    expect(notReady.status).toBe(503);
    expect(await notReady.json()).toMatchObject({ reason: 'store not open' });
    ready = true;
    expect((await fetch(`${url}/ready`)).status).toBe(200);
    await fetch(`${url}/things/a`);
    await fetch(`${url}/things/x`);
    const text = await (await fetch(`${url}/metrics`)).text();
    expect(text).toMatch(/krill_http_requests_total\{route="\/things\/:id",method="GET",status="200",service="test"\} 1/);
    expect(text).toMatch(/krill_http_requests_total\{route="\/things\/:id",method="GET",status="404",service="test"\} 1/);
  });

  it('finishes an in-flight request on close and refuses new connections', async () => {
    svc = createHttpService({ name: 'test', logger: silentLogger(), shutdownTimeoutMs: 5000 });
    // Closed once the handler is running, not after a fixed wait: on a loaded machine the request
    // had not reached the handler 50 ms in, and was answered 503 as one arriving during close.
    let started!: () => void;
    const running = new Promise<void>((r) => { started = r; });
    svc.app.get('/slow', async () => { started(); await new Promise((r) => setTimeout(r, 300)); return { done: true }; });
    const url = await svc.listen('127.0.0.1', 0);
    const inflight = fetch(`${url}/slow`).then((r) => r.json());
    await running;
    const closed = svc.close();
    expect(await inflight).toEqual({ done: true });
    await closed;
    await expect(fetch(`${url}/health`)).rejects.toThrow();
  });
});
