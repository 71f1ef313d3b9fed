import { status, type ServerUnaryCall, type sendUnaryData } from '@grpc/grpc-js';
import { CanceledError } from '@krill/lib';
import { cri, type PullImageRequest } from '@krill/proto';
import type { ImagePuller } from '../cri-proxy.js';
import { forwardedMetadata, type Upstream } from './forward.js';
import { toGrpcStatus } from './grpc-status.js';
import type { RpcLog } from './rpc-log.js';

export const PULL_IMAGE = '/runtime.v1.ImageService/PullImage';

/**
 * PullImage: decoded, handed to krill's puller, and answered with its image_ref; when the puller
 * hands it back, the caller's original bytes go to containerd's own PullImage, so containerd
 * sees exactly what kubelet sent (credentials included). A client cancellation or deadline aborts
 * the puller's signal.
 */
export function pullImageHandler(puller: ImagePuller, upstream: Upstream, log: RpcLog) {
  const method = cri().ImageService.service.PullImage!;
  return (call: ServerUnaryCall<Buffer, Buffer>, reply: sendUnaryData<Buffer>): void => {
    const started = performance.now();
    const deadline = call.getDeadline();
    const finite = Number.isFinite(Number(deadline));
    const controller = new AbortController();
    const cancel = () => controller.abort(new CanceledError(`PullImage cancelled by the caller`, { code: 'ERR_PULL_CANCELED' }));
    call.once('cancelled', cancel);
    let request: PullImageRequest;
    try {
      request = method.requestDeserialize(call.request) as PullImageRequest;
    } catch (err) {
      log.done(PULL_IMAGE, status.INVALID_ARGUMENT, started);
      reply({ code: status.INVALID_ARGUMENT, details: `PullImage request does not decode: ${(err as Error).message}` });
      return;
    }
    const image = request.image?.image ?? '';
    const deadlinePassed = () => finite && Date.now() >= new Date(deadline).getTime();
    // The deadline is enforced here too: grpc-js answers DEADLINE_EXCEEDED itself, but only the
    // abort stops the transfers behind it.
    const timer = finite ? setTimeout(cancel, Math.max(0, new Date(deadline).getTime() - Date.now())) : undefined;
    puller.pull(request, { signal: controller.signal, ...(finite ? { deadline: new Date(deadline) } : {}) }).then(
      (outcome) => {
        clearTimeout(timer);
        if ('imageRef' in outcome) {
          log.done(PULL_IMAGE, status.OK, started, { ref: image, imageRef: outcome.imageRef, via: 'krill' });
          reply(null, method.responseSerialize({ imageRef: outcome.imageRef }));
          return;
        }
        upstream.client.makeUnaryRequest(PULL_IMAGE, (b: Buffer) => b, (b: Buffer) => b, call.request, forwardedMetadata(call.metadata),
          finite ? { deadline } : {}, (err, res) => {
            log.done(PULL_IMAGE, err ? err.code : status.OK, started, { ref: image, via: 'containerd', reason: outcome.forward, ...(err ? { err: err.details } : {}) });
            try {
              puller.forwarded?.(request, err || !res ? { code: err?.code ?? status.INTERNAL, details: err?.details ?? 'no response' } : { imageRef: (method.responseDeserialize(res) as { imageRef: string }).imageRef });
            } finally {
              reply(err, res);
            }
          });
      },
      (err: unknown) => {
        clearTimeout(timer);
        const s = toGrpcStatus(err, { deadlinePassed: deadlinePassed() });
        log.done(PULL_IMAGE, s.code, started, { ref: image, via: 'krill', err: s.details });
        reply(s);
      },
    );
  };
}
