import { InvalidArgumentError } from '@krill/lib';
import type { KubeObject } from './pod-parts.js';

interface Validator {
  new (data: never): { validate(): void };
}

/**
 * Each kind's model from kubernetes-models 4.5 (validators generated from the Kubernetes OpenAPI
 * schemas), loaded when first needed: about 100 ms of module loading that every other `krill`
 * command should not pay.
 */
async function validators(): Promise<Record<KubeObject['kind'], Validator>> {
  const [{ Deployment }, { StatefulSet }, { DaemonSet }, { Service }, { ConfigMap }, { Namespace }, { ServiceAccount }, { PodDisruptionBudget }] = await Promise.all([
    import('kubernetes-models/apps/v1/Deployment'),
    import('kubernetes-models/apps/v1/StatefulSet'),
    import('kubernetes-models/apps/v1/DaemonSet'),
    import('kubernetes-models/v1/Service'),
    import('kubernetes-models/v1/ConfigMap'),
    import('kubernetes-models/v1/Namespace'),
    import('kubernetes-models/v1/ServiceAccount'),
    import('kubernetes-models/policy/v1/PodDisruptionBudget'),
  ]);
  return { Deployment, StatefulSet, DaemonSet, Service, ConfigMap, Namespace, ServiceAccount, PodDisruptionBudget } as Record<KubeObject['kind'], Validator>;
}

/**
 * Checks every object against the Kubernetes schema of its kind, so that what the install
 * config lets through (a toleration, a resource quantity) cannot produce an object the API
 * server would refuse. Throws InvalidArgument (ERR_MANIFEST_INVALID) naming the object and the
 * field, e.g. `rendered StatefulSet krill-origin: data/spec/replicas must be integer`.
 */
export async function validateKubeObjects(objects: readonly KubeObject[]): Promise<void> {
  const models = await validators();
  for (const o of objects) {
    try {
      new models[o.kind](o as never).validate();
    } catch (err) {
      throw new InvalidArgumentError(`rendered ${o.kind} ${o.metadata?.name ?? ''}: ${(err as Error).message}`, { code: 'ERR_MANIFEST_INVALID', cause: err });
    }
  }
}
