import type { Schema } from '@krill/lib';

/** S3 requires every part of a multipart upload but the last to be at least 5 MiB. */
export const MIN_PART_SIZE_BYTES = 5 * 1024 * 1024;
/** S3's largest part is 5 GiB. */
export const MAX_PART_SIZE_BYTES = 5 * 1024 * 1024 * 1024;
/** S3 allows at most 10,000 parts per upload; larger blobs get proportionally larger parts. */
export const MAX_PARTS = 10_000;

export interface S3BackendConfig {
  bucket: string;
  /** Default us-east-1, which is also what MinIO and s3rver answer to. */
  region: string;
  /** A custom endpoint (MinIO, s3rver, Ceph): `http://127.0.0.1:9000`. Absent means AWS. */
  endpoint?: string;
  /** `http://endpoint/bucket/key` instead of `http://bucket.endpoint/key`; most non-AWS stores need it. */
  forcePathStyle: boolean;
  /**
   * Static credentials. When absent the SDK's default provider chain finds them (environment,
   * shared files, web identity, instance metadata); krill itself never reads the environment.
   */
  accessKeyId?: string;
  secretAccessKey?: string;
  sessionToken?: string;
  /** Prepended to every key, e.g. `krill/`; include the trailing slash if you want a folder. */
  prefix: string;
  /** Bodies larger than one part go up as a multipart upload of parts this big. */
  partSizeBytes: number;
  /** Parts in flight at once per upload; memory per upload is about (concurrency + 1) × partSizeBytes. */
  concurrency: number;
  /** A request that sends or receives nothing for this long fails as Unavailable and is retried by the SDK. */
  requestTimeoutMs: number;
  /** Attempts per request, including the first, for throttling, 5xx and network errors. */
  maxAttempts: number;
}

export const s3BackendSchema: Schema = {
  type: 'object',
  description: 'S3 or S3-compatible backend; blobs at <prefix>blobs/sha256/<2hex>/<hex>/data.',
  properties: {
    bucket: { type: 'string', minLength: 3, maxLength: 63, description: 'Bucket name.' },
    region: { type: 'string', minLength: 1, default: 'us-east-1' },
    endpoint: { type: 'string', pattern: '^https?://', description: 'Custom endpoint URL, e.g. http://127.0.0.1:9000.' },
    forcePathStyle: { type: 'boolean', default: false },
    accessKeyId: { type: 'string', minLength: 1 },
    secretAccessKey: { type: 'string', minLength: 1 },
    sessionToken: { type: 'string', minLength: 1 },
    prefix: { type: 'string', default: '', pattern: '^(?!/)', description: 'Key prefix; must not start with "/".' },
    partSizeBytes: {
      type: 'integer',
      // 64 MiB parts keep a 1 GiB blob to 16 requests while four in flight stay near 320 MiB.
      default: 64 * 1024 * 1024,
      minimum: MIN_PART_SIZE_BYTES,
      maximum: MAX_PART_SIZE_BYTES,
      description: 'Multipart part size; S3 requires at least 5 MiB (5242880) and at most 5 GiB.',
    },
    // Four parts in flight fill a 10 Gbit/s link to S3 from one upload; more mostly adds memory.
    concurrency: { type: 'integer', default: 4, minimum: 1, maximum: 64 },
    // A minute without a byte is far longer than any healthy S3 pause, short enough to retry soon.
    requestTimeoutMs: { type: 'integer', default: 60_000, minimum: 1000 },
    // The SDK's own default: three attempts with jittered backoff.
    maxAttempts: { type: 'integer', default: 3, minimum: 1, maximum: 10 },
  },
  required: ['bucket'],
  dependentRequired: { accessKeyId: ['secretAccessKey'], secretAccessKey: ['accessKeyId'], sessionToken: ['accessKeyId'] },
  additionalProperties: false,
};
