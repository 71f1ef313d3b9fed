import { FailedPreconditionError, type Logger } from '@krill/lib';
import type { Backend } from '../backend.js';
import { createRegistryClient, type RegistryClient, type RegistryHosts } from '../../upstream/index.js';

/**
 * Read-only pull-through from upstream registries: the namespace names the registry in its first
 * component (`upstream.local/team/app`), whose endpoints and credentials come from `registries`.
 */
export function createRegistryBackend(options: { registries: RegistryHosts; logger: Logger; client?: RegistryClient }): Backend {
  const client = options.client ?? createRegistryClient({ hosts: options.registries, logger: options.logger });
  const readOnly = (what: string) => new FailedPreconditionError(`registry backend is read-only: cannot ${what}`, { code: 'ERR_BACKEND_READ_ONLY' });
  return {
    kind: 'registry',
    readOnly: true,
    stat: (namespace, digest, signal) => client.stat(namespace, digest, signal),
    download: (namespace, digest, signal) => client.fetch(namespace, digest, signal),
    async upload(_namespace, digest, body) {
      body.destroy();
      throw readOnly(`upload ${digest}`);
    },
    async list() {
      throw new FailedPreconditionError('registry backend cannot list blobs', { code: 'ERR_BACKEND_UNSUPPORTED' });
    },
    async close() {},
  };
}
