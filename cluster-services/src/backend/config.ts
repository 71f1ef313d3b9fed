import type { Schema } from '@krill/lib';
import { fsBackendSchema, type FsBackendConfig } from './fs/fs-backend.js';
import { httpBackendSchema, type HttpBackendConfig } from './http/http-backend.js';
import { s3BackendSchema, type S3BackendConfig } from './s3/s3-config.js';

/** The backend kinds a rule can name; exactly one per rule. */
export const BACKEND_KINDS = ['fs', 's3', 'http', 'registry'] as const;
export type BackendKind = (typeof BACKEND_KINDS)[number];

/**
 * One routing rule: blobs whose namespace matches `namespace` (a JavaScript regular expression,
 * used as written: `library/.*` also matches `x/library/y`, so write `^library/.*$` to anchor)
 * go to the backend the rule names. Rules are tried in order; the first match wins.
 */
export interface BackendRuleConfig {
  namespace: string;
  fs?: FsBackendConfig;
  /** Keys with defaults may be left out; `validateConfig` (or the router) fills them in. */
  s3?: Partial<S3BackendConfig> & Pick<S3BackendConfig, 'bucket'>;
  http?: Partial<HttpBackendConfig> & Pick<HttpBackendConfig, 'downloadUrl'>;
  /** Pull-through from upstream registries; the endpoints and credentials come from the `registries` config. */
  registry?: Record<string, never>;
}

/** The registry kind takes no options of its own: registries are configured once, by name. */
const registryBackendSchema: Schema = {
  type: 'object',
  description: 'Read-only pull-through from the upstream registry named by the namespace\'s first component.',
  properties: {},
  additionalProperties: false,
};

/**
 * A rule has `namespace` and exactly one kind. The checks sit in an ordered allOf so that the
 * first failure is the one that names the problem: a missing `namespace`, then an unknown key
 * (`backends.0.gcs: unknown key`) or a bad key inside a kind (`backends.0.s3.partSizeBytes`),
 * and only then the count: with no other keys allowed, exactly two properties means exactly one
 * kind, and a failure shows the rule's keys. A oneOf over the kinds would instead report the
 * first branch that failed, naming a key the user never wrote.
 */
export const backendRuleSchema: Schema = {
  type: 'object',
  description: 'namespace (regex) plus exactly one of fs, s3, http, registry.',
  allOf: [
    { required: ['namespace'] },
    {
      properties: {
        namespace: { type: 'string', minLength: 1, description: 'Regular expression over the namespace; first matching rule wins.' },
        fs: fsBackendSchema,
        s3: s3BackendSchema,
        http: httpBackendSchema,
        registry: registryBackendSchema,
      },
      additionalProperties: false,
    },
    { minProperties: 2, maxProperties: 2, description: 'Exactly one of fs, s3, http, registry besides namespace.' },
  ],
};

/** The JSON Schema of the ordered rule list, for a service's config schema. */
export const backendRulesSchema: Schema = {
  type: 'array',
  description: 'Namespace → backend routing, tried in order; first match wins.',
  items: backendRuleSchema,
};

/** The kinds a rule names, in BACKEND_KINDS order (more or fewer than one is a config error). */
export function kindsOf(rule: object): BackendKind[] {
  return BACKEND_KINDS.filter((k) => (rule as Record<string, unknown>)[k] !== undefined);
}
