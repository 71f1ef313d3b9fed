import type { Logger } from '@krill/lib';
import type { Backend } from '../backend.js';

export function createRegistryBackend(_o: { registries: Record<string, unknown>; logger: Logger }): Backend {
  throw new Error('registry backend: not built yet');
}
