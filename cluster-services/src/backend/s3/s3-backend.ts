import type { Readable } from 'node:stream';
import {
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { CanceledError, Digester, validateConfig, type Digest, type Logger } from '@krill/lib';
import type { Backend, BackendBlobInfo, ListPage } from '../backend.js';
import { blobKey, digestOfKey, validateDigest, validateLimit, validateNamespace, validateSize } from '../blob-key.js';
import { checkDigest } from '../mismatch.js';
import { uploadMultipart } from './multipart.js';
import { readParts } from './parts.js';
import { MAX_PARTS, s3BackendSchema, type S3BackendConfig } from './s3-config.js';
import { mapS3Error } from './s3-errors.js';

export interface S3BackendOptions extends Partial<S3BackendConfig> {
  bucket: string;
  logger: Logger;
}

/**
 * The S3 backend (AWS, MinIO, Ceph, s3rver), keys `<prefix>blobs/sha256/<2hex>/<hex>/data`.
 * A body of at most one part is read into memory, verified and sent with one PutObject; a larger
 * one goes up as a multipart upload (see multipart.ts). Either way the SHA-256 and the size are
 * checked before the object can appear, so S3 never holds a blob under the wrong digest.
 */
export function createS3Backend(options: S3BackendOptions): Backend {
  const { logger, ...rest } = options;
  const config = validateConfig<S3BackendConfig>(s3BackendSchema, rest, 's3 backend options');
  const client = new S3Client(clientConfig(config));
  const keyOf = (digest: Digest): string => config.prefix + blobKey(digest);
  const listPrefix = `${config.prefix}blobs/sha256/`;

  async function head(digest: Digest, signal?: AbortSignal): Promise<BackendBlobInfo> {
    try {
      const r = await client.send(new HeadObjectCommand({ Bucket: config.bucket, Key: keyOf(digest) }), send(signal));
      return { size: r.ContentLength ?? 0 };
    } catch (err) {
      throw mapS3Error(err, `s3 stat ${digest}`);
    }
  }

  async function putSmall(digest: Digest, body: Readable, size: number, signal?: AbortSignal): Promise<void> {
    const digester = new Digester();
    let data: Buffer | undefined;
    for await (const part of readParts(body, digest, size, Math.max(size, 1), digester)) data = part;
    checkDigest(digest, digester);
    const put = new PutObjectCommand({ Bucket: config.bucket, Key: keyOf(digest), Body: data, ContentLength: size });
    await client.send(put, send(signal));
  }

  return {
    kind: 's3',
    readOnly: false,

    async stat(namespace, digest, signal) {
      validateNamespace(namespace);
      return head(validateDigest(digest), signal);
    },

    async download(namespace: string, digest: Digest, signal?: AbortSignal): Promise<Readable> {
      validateNamespace(namespace);
      validateDigest(digest);
      try {
        const r = await client.send(new GetObjectCommand({ Bucket: config.bucket, Key: keyOf(digest) }), send(signal));
        // In Node the SDK's body is the response's IncomingMessage, a Readable.
        return r.Body as Readable;
      } catch (err) {
        throw mapS3Error(err, `s3 download ${digest}`);
      }
    },

    async upload(namespace: string, digest: Digest, body: Readable, size: number, signal?: AbortSignal): Promise<void> {
      // The SDK stops its requests on abort, but a read waiting on a stalled body needs this.
      const onAbort = (): void => {
        // Destroyed without an error: before the body is being read nobody listens for one, and an
        // unheard 'error' would crash the process. Readers see a premature close instead.
        body.destroy();
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      try {
        signal?.throwIfAborted();
        validateNamespace(namespace);
        validateDigest(digest);
        validateSize(size);
        // Content-addressed: an object of this size under this key was verified when it was stored.
        const existing = await head(digest, signal).catch((err: unknown) => {
          if ((err as { code?: string }).code === 'ERR_BACKEND_BLOB_NOT_FOUND') return undefined;
          throw err;
        });
        if (existing?.size === size) {
          body.destroy();
          return;
        }
        // S3 caps an upload at 10,000 parts, so a huge blob gets parts large enough to fit.
        const partSize = Math.max(config.partSizeBytes, Math.ceil(size / MAX_PARTS));
        if (size <= partSize) {
          await putSmall(digest, body, size, signal);
        } else {
          const key = keyOf(digest);
          await uploadMultipart({ client, bucket: config.bucket, key, digest, body, size, partSize, concurrency: config.concurrency, logger, signal });
        }
      } catch (err) {
        body.destroy();
        if (signal?.aborted) throw new CanceledError(`s3 upload ${digest}: aborted`, { code: 'ERR_BACKEND_CANCELED', cause: err });
        throw mapS3Error(err, `s3 upload ${digest}`);
      } finally {
        signal?.removeEventListener('abort', onAbort);
      }
    },

    async list(opts = {}): Promise<ListPage> {
      const limit = validateLimit(opts.limit);
      try {
        const r = await client.send(
          new ListObjectsV2Command({ Bucket: config.bucket, Prefix: listPrefix, MaxKeys: limit, ContinuationToken: opts.cursor }),
          send(opts.signal),
        );
        const digests: Digest[] = [];
        for (const obj of r.Contents ?? []) {
          const digest = obj.Key ? digestOfKey(obj.Key.slice(config.prefix.length)) : undefined;
          if (digest) digests.push(digest);
        }
        return r.IsTruncated && r.NextContinuationToken ? { digests, cursor: r.NextContinuationToken } : { digests };
      } catch (err) {
        throw mapS3Error(err, 's3 list');
      }
    },

    async close(): Promise<void> {
      client.destroy();
    },
  };
}

function clientConfig(config: S3BackendConfig): S3ClientConfig {
  const c: S3ClientConfig = {
    region: config.region,
    forcePathStyle: config.forcePathStyle,
    maxAttempts: config.maxAttempts,
    // Connecting takes milliseconds on a working network; ten seconds outlasts a few lost SYNs.
    requestHandler: { requestTimeout: config.requestTimeoutMs, connectionTimeout: Math.min(config.requestTimeoutMs, 10_000) },
    // The SDK's default CRC32 "flexible checksums" on parts of an upload created without one are
    // refused by some S3 versions and S3-compatible stores. Krill checks the whole blob's SHA-256
    // before it sends anything and again whenever it reads a blob back, so only what S3 demands.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  };
  if (config.endpoint !== undefined) c.endpoint = config.endpoint;
  if (config.accessKeyId !== undefined && config.secretAccessKey !== undefined) {
    c.credentials = {
      accessKeyId: config.accessKeyId,
      secretAccessKey: config.secretAccessKey,
      ...(config.sessionToken !== undefined ? { sessionToken: config.sessionToken } : {}),
    };
  }
  return c;
}

function send(signal: AbortSignal | undefined): { abortSignal?: AbortSignal } {
  return signal ? { abortSignal: signal } : {};
}
