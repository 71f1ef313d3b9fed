import type { Schema } from '@krill/lib';
import type { Toleration } from './install-config.js';

/* The install config schema's repeated parts: resources, placement, volumes, a service's keys. */

/** Kubernetes' quantity syntax (k8s.io/apimachinery resource.Quantity). */
export const QUANTITY = '^[+-]?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE][+-]?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))))?$';
/** Volume sizes are whole bytes with an optional binary or decimal suffix, so capacity can be derived. */
export const VOLUME_SIZE = '^[1-9][0-9]*([KMGTPE]i|[kMGTPE])?$';
/** RFC 1123 label: what a namespace name may be. */
export const DNS_LABEL = '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$';
/** RFC 1123 subdomain: what Secret, StorageClass and PriorityClass names may be. */
export const DNS_NAME = '^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$';

/** A fixed port: in a cluster, 0 ("any free port") would leave Services and peers nothing to dial. */
export const port = (n: number): Schema => ({ type: 'integer', minimum: 1, maximum: 65535, default: n });
export const quantities: Schema = { type: 'object', additionalProperties: { type: ['string', 'number'], pattern: QUANTITY, minimum: 0 } };

export function resourcesSchema(requests: Record<string, string>, limits: Record<string, string>): Schema {
  return {
    type: 'object', additionalProperties: false, default: { requests, limits },
    properties: { requests: quantities, limits: quantities },
  };
}

export const tolerationSchema: Schema = {
  type: 'object', additionalProperties: false,
  properties: {
    key: { type: 'string' },
    operator: { enum: ['Exists', 'Equal'] },
    value: { type: 'string' },
    effect: { enum: ['NoSchedule', 'PreferNoSchedule', 'NoExecute'] },
    tolerationSeconds: { type: 'integer' },
  },
};

export function placementProperties(tolerations: Toleration[]): Record<string, Schema> {
  return {
    nodeSelector: { type: 'object', additionalProperties: { type: 'string' }, default: { 'kubernetes.io/os': 'linux' } },
    tolerations: { type: 'array', items: tolerationSchema, default: tolerations },
  };
}

export function volumeSchema(size: string): Schema {
  return {
    type: 'object', additionalProperties: false, default: {},
    properties: { size: { type: 'string', pattern: VOLUME_SIZE, default: size }, storageClassName: { type: 'string', pattern: DNS_NAME } },
  };
}

export function serviceSchema(o: { replicas: number; maxReplicas?: number; requests: Record<string, string>; limits: Record<string, string> }, extra: Record<string, Schema> = {}): Schema {
  return {
    type: 'object', additionalProperties: false, default: {},
    properties: {
      // At most 100: far more than any cluster runs of one krill service, so a larger number is a typo.
      replicas: { type: 'integer', minimum: 1, maximum: o.maxReplicas ?? 100, default: o.replicas },
      resources: resourcesSchema(o.requests, o.limits),
      ...placementProperties([]),
      ...extra,
    },
  };
}

export const pullMode: Schema = { enum: ['auto', 'krill', 'direct'] };
