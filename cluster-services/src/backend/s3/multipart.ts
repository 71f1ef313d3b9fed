import type { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  UploadPartCommand,
  type CompletedPart,
  type S3Client,
} from '@aws-sdk/client-s3';
import { Digester, type Digest, type Logger } from '@krill/lib';
import { checkDigest } from '../mismatch.js';
import { readParts } from './parts.js';

export interface MultipartOptions {
  client: S3Client;
  bucket: string;
  key: string;
  digest: Digest;
  body: Readable;
  size: number;
  partSize: number;
  concurrency: number;
  logger: Logger;
  signal?: AbortSignal | undefined;
}

/**
 * Uploads `body` as an S3 multipart upload (CreateMultipartUpload, UploadPart × n,
 * CompleteMultipartUpload), at most `concurrency` parts in flight while the next part is read,
 * so memory stays near (concurrency + 1) × partSize whatever the blob's size. The object
 * appears only at Complete, which is sent only after every part succeeded and the SHA-256 of the
 * whole body matched `digest`. On any failure the other parts are cancelled and the upload is
 * aborted (AbortMultipartUpload), so S3 keeps no billed leftovers; the original error is thrown.
 */
export async function uploadMultipart(o: MultipartOptions): Promise<void> {
  const { client, bucket, key } = o;
  const created = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }), sendOptions(o.signal));
  const uploadId = created.UploadId;
  if (!uploadId) throw new Error('CreateMultipartUpload returned no UploadId');
  // One controller stops every part in flight when any of them, the body or the caller fails.
  const stop = new AbortController();
  const signal = o.signal ? AbortSignal.any([o.signal, stop.signal]) : stop.signal;
  try {
    const digester = new Digester();
    const completed: CompletedPart[] = [];
    const inFlight = new Set<Promise<void>>();
    let failure: { err: unknown } | undefined;
    let partNumber = 0;
    for await (const part of readParts(o.body, o.digest, o.size, o.partSize, digester)) {
      const n = ++partNumber;
      const sent: Promise<void> = client
        .send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId: uploadId, PartNumber: n, Body: part, ContentLength: part.length }), { abortSignal: signal })
        .then((r) => {
          completed[n - 1] = { PartNumber: n, ETag: r.ETag };
        })
        .catch((err: unknown) => {
          failure ??= { err };
        })
        .finally(() => inFlight.delete(sent));
      inFlight.add(sent);
      while (inFlight.size >= o.concurrency) await Promise.race(inFlight);
      if (failure) throw failure.err;
    }
    await Promise.all(inFlight);
    if (failure) throw failure.err;
    checkDigest(o.digest, digester);
    await client.send(
      new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId, MultipartUpload: { Parts: completed } }),
      { abortSignal: signal },
    );
  } catch (err) {
    stop.abort();
    o.body.destroy();
    await abortUpload(client, bucket, key, uploadId, o.logger);
    throw err;
  }
}

async function abortUpload(client: S3Client, bucket: string, key: string, uploadId: string, logger: Logger): Promise<void> {
  try {
    await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId }));
  } catch (err) {
    // The parts stay invisible either way; a bucket lifecycle rule for incomplete uploads reaps them.
    logger.warn({ err, key, uploadId }, 's3 backend: aborting a failed multipart upload failed');
  }
}

function sendOptions(signal: AbortSignal | undefined): { abortSignal?: AbortSignal } {
  return signal ? { abortSignal: signal } : {};
}
