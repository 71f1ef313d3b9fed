import { chmodSync, lstatSync, mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { Server, ServerCredentials, type ServerDuplexStream } from '@grpc/grpc-js';
import { channelOptions, unixTarget } from '@krill/proto';
import type { CriServer, CriServerOptions } from '../cri-proxy.js';
import { createUpstream, type Upstream } from './forward.js';
import { PULL_IMAGE, pullImageHandler } from './pull-image.js';
import { createRpcLog, type RpcLog } from './rpc-log.js';

/** A gRPC method path: `/package.Service/Method`. Anything else is refused, not forwarded. */
const METHOD_PATH = /^\/[\w.]+\/\w+$/;
const DEFAULT_GRACE_MS = 5000;

interface Handler { func: unknown; serialize: (v: Buffer) => Buffer; deserialize: (b: Buffer) => Buffer; type: 'bidi'; path: string }

/**
 * grpc-js has no public hook for methods nobody registered; it looks each incoming path up in
 * the server's handler map. Wrapping that map's `get` gives every unregistered path a raw
 * forwarder, so methods this build has never heard of (a newer kubelet's) still reach
 * containerd. The map is checked at start, so a grpc-js that changed its internals fails loudly
 * here instead of answering UNIMPLEMENTED.
 */
function forwardUnknown(server: Server, upstream: Upstream, log: RpcLog): void {
  const handlers = (server as unknown as { handlers?: unknown }).handlers;
  if (!(handlers instanceof Map)) throw new Error('grpc-js Server has no handler map: the pass-through needs updating for this grpc-js');
  const cache = new Map<string, Handler>();
  const lookup = handlers.get.bind(handlers) as (path: string) => unknown;
  handlers.get = (path: string) => {
    const own = lookup(path);
    if (own !== undefined || typeof path !== 'string' || !METHOD_PATH.test(path)) return own;
    let h = cache.get(path);
    if (!h) {
      h = { func: (call: ServerDuplexStream<Buffer, Buffer>) => forwardCall(upstream, log, path, call), serialize: (b) => b, deserialize: (b) => b, type: 'bidi', path };
      if (cache.size < 1024) cache.set(path, h);
    }
    return h;
  };
}

function forwardCall(upstream: Upstream, log: RpcLog, path: string, call: ServerDuplexStream<Buffer, Buffer>): void {
  const started = performance.now();
  void upstream.forward(path, call).then((s) => log.done(path, s.code, started, { via: 'containerd' }));
}

/** Starts the CRI socket (see CriServer). */
export async function startCriServer(o: CriServerOptions): Promise<CriServer> {
  const log = createRpcLog(o.logger, o.metrics);
  const upstream = createUpstream(o.containerdSocket);
  const server = new Server(channelOptions);
  server.register(PULL_IMAGE, pullImageHandler(o.puller, upstream, log), (b: Buffer) => b, (b: Buffer) => b, 'unary');
  forwardUnknown(server, upstream, log);
  mkdirSync(dirname(o.socket), { recursive: true });
  removeStaleSocket(o.socket);
  await new Promise<void>((resolve, reject) => {
    server.bindAsync(unixTarget(o.socket), ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve()));
  });
  chmodSync(o.socket, 0o660);
  o.logger.info({ socket: o.socket, containerd: o.containerdSocket }, 'cri socket ready');
  return {
    socket: o.socket,
    async close(graceMs = DEFAULT_GRACE_MS) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => { server.forceShutdown(); resolve(); }, graceMs);
        server.tryShutdown(() => { clearTimeout(timer); resolve(); });
      });
      upstream.close();
      rmSync(o.socket, { force: true });
    },
  };
}

/** A socket file left by a daemon that died is removed; any other file there is an error. */
function removeStaleSocket(path: string): void {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return;
  }
  if (!st.isSocket()) throw new Error(`cri socket path ${path} exists and is not a socket`);
  rmSync(path);
}
