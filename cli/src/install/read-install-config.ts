import { isKrillError } from '@krill/lib';
import { UsageError } from '../command.js';
import { loadInstallConfig, type InstallConfig } from './install-config.js';

/**
 * The install config for a command (`krill manifests`, `krill devcluster`): a file's errors
 * become usage errors with the loader's message, so both commands reject a bad file alike.
 */
export function readInstallConfig(file: string | undefined, env: Record<string, string | undefined>): InstallConfig {
  try {
    return loadInstallConfig({ file, env });
  } catch (err) {
    if (isKrillError(err)) throw new UsageError(err.message);
    throw err;
  }
}
