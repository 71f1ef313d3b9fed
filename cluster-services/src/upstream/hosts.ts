import { InvalidArgumentError, type Schema } from '@krill/lib';
import type { RegistryHostConfig, RegistryHosts } from './registry-client.js';

export const registryHostsSchema: Schema = {
  type: 'object',
  description: 'Upstream registries by name (docker.io, gcr.io, upstream.local): endpoints and credentials, like containerd hosts.toml.',
  additionalProperties: {
    type: 'object',
    additionalProperties: false,
    properties: {
      endpoints: { type: 'array', items: { type: 'string', pattern: '^https?://' }, minItems: 1 },
      username: { type: 'string' },
      password: { type: 'string' },
      timeoutMs: { type: 'integer', minimum: 1 },
    },
  },
};

/** A namespace split into the registry it names and the repository there. */
export interface UpstreamRef {
  registry: string;
  repository: string;
  host: RegistryHostConfig;
  endpoints: string[];
}

/**
 * `upstream.local/team/app` is repository `team/app` on registry `upstream.local`. As in
 * distribution/reference, the first component names a registry only if it has a `.` or `:` or
 * is `localhost`; Docker Hub's single-component names live under `library/`.
 */
export function resolveNamespace(namespace: string, hosts: RegistryHosts): UpstreamRef {
  const slash = namespace.indexOf('/');
  const first = slash < 0 ? '' : namespace.slice(0, slash);
  if (slash < 0 || !(first.includes('.') || first.includes(':') || first === 'localhost')) {
    throw new InvalidArgumentError(`namespace ${JSON.stringify(namespace)} does not start with a registry name (like docker.io/ or upstream.local/)`, { code: 'ERR_UPSTREAM_NAMESPACE' });
  }
  let repository = namespace.slice(slash + 1);
  if (first === 'docker.io' && !repository.includes('/')) repository = `library/${repository}`;
  const host = hosts[first] ?? {};
  const fallback = first === 'docker.io' ? 'https://registry-1.docker.io' : `https://${first}`;
  return { registry: first, repository, host, endpoints: host.endpoints && host.endpoints.length > 0 ? host.endpoints : [fallback] };
}
