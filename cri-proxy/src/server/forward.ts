import { Client, Metadata, credentials, status, type ServerDuplexStream, type StatusObject } from '@grpc/grpc-js';
import { channelOptions, unixTarget } from '@krill/proto';

const identity = (b: Buffer): Buffer => b;

/** Headers grpc-js sets itself on every call; forwarding the caller's copies would duplicate them. */
const OWN_HEADERS = /^(grpc-|user-agent$|content-type$|te$|:)/;

/** A connection to containerd that carries calls as opaque bytes. */
export interface Upstream {
  client: Client;
  /** Forwards one call, whatever its kind (a unary call is a stream of one message each way). */
  forward(path: string, call: ServerDuplexStream<Buffer, Buffer>): Promise<StatusObject>;
  close(): void;
}

/** The caller's metadata as containerd should see it: everything but grpc-js's own headers. */
export function forwardedMetadata(incoming: Metadata): Metadata {
  const out = new Metadata();
  for (const key of Object.keys(incoming.getMap())) {
    if (OWN_HEADERS.test(key)) continue;
    for (const v of incoming.get(key)) out.add(key, v);
  }
  return out;
}

/**
 * Calls are forwarded as bidi streams of raw messages: at the wire level every gRPC call kind is
 * one, so one path serves unary, server-, client- and bidi-streaming methods alike, including
 * methods this build has no .proto for. Flow control follows the slower side; the deadline, the
 * caller's metadata and a cancellation go to containerd; containerd's headers, messages and
 * final status (with trailers) come back unchanged.
 */
export function createUpstream(socket: string): Upstream {
  const client = new Client(unixTarget(socket), credentials.createInsecure(), channelOptions);
  return {
    client,
    forward(path, call) {
      return new Promise((resolve) => {
        const deadline = call.getDeadline();
        const out = client.makeBidiStreamRequest(path, identity, identity, forwardedMetadata(call.metadata),
          Number.isFinite(Number(deadline)) ? { deadline } : {});
        let finished = false;
        let upstreamEnded = false;
        let final: StatusObject | undefined;
        const finish = () => {
          if (finished || !final || !upstreamEnded) return;
          finished = true;
          if (final.code === status.OK) call.end(final.metadata);
          else call.emit('error', { code: final.code, details: final.details, metadata: final.metadata });
          resolve(final);
        };
        out.on('metadata', (md: Metadata) => call.sendMetadata(md));
        out.on('data', (b: Buffer) => {
          if (!call.write(b)) {
            out.pause();
            call.once('drain', () => out.resume());
          }
        });
        out.on('end', () => { upstreamEnded = true; finish(); });
        // A failed call ends with 'error' and 'status'; the status is what the caller gets.
        out.on('error', () => { upstreamEnded = true; finish(); });
        out.on('status', (s: StatusObject) => { final = s; finish(); });
        call.on('data', (b: Buffer) => {
          if (!out.write(b)) {
            call.pause();
            out.once('drain', () => call.resume());
          }
        });
        call.on('end', () => out.end());
        call.on('cancelled', () => {
          out.cancel();
          if (!finished) {
            finished = true;
            resolve({ code: status.CANCELLED, details: 'cancelled by the caller', metadata: new Metadata() });
          }
        });
        call.on('error', () => out.cancel());
      });
    },
    close: () => client.close(),
  };
}
