import { parseArgs } from 'node:util';
import { envNames, isKrillError } from '@krill/lib';
import { UsageError, type Command } from '../command.js';
import { INSTALL_ENV_PREFIX, installConfigSchema } from '../install/install-config.js';
import { readInstallConfig } from '../install/read-install-config.js';
import { validateKubeObjects } from '../install/kube-validate.js';
import { REGENERATE, renderObjects, toYaml } from '../install/render.js';

/** `krill manifests [--config install.yaml]`: every Kubernetes object krill needs, as multi-document YAML on stdout. */
export const manifestsCommand: Command = {
  name: 'manifests',
  summary: 'render the Kubernetes objects that install krill on a cluster',
  help: () => [
    'Usage: krill manifests [--config install.yaml]',
    '',
    'Prints every Kubernetes object krill needs as one multi-document YAML stream, in the order',
    'to apply them: the Namespace, ServiceAccounts, each component\'s ConfigMap, the trackers and',
    'origins (StatefulSets behind headless Services), the build-index, the proxy, the node',
    'DaemonSet and the PodDisruptionBudgets. Apply with: krill manifests | kubectl apply -f -',
    '',
    'Options:',
    '  --config FILE   install configuration (see README.md, "Install on Kubernetes"); default: the defaults',
    '  --help          this text',
    '',
    `The committed rendering of the defaults is regenerated with: ${REGENERATE}`,
    '',
    'Every install configuration key can be overridden from the environment:',
    ...envNames(installConfigSchema, INSTALL_ENV_PREFIX).map((n) => `  ${n}`),
    '',
  ].join('\n'),
  async run(args, io) {
    let file: string | undefined;
    try {
      file = parseArgs({ args, options: { config: { type: 'string' } }, strict: true }).values.config;
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    let objects;
    try {
      objects = renderObjects(readInstallConfig(file, io.env));
      // Nothing is printed unless every object is one the API server would take.
      await validateKubeObjects(objects.map((r) => r.object));
    } catch (err) {
      if (isKrillError(err)) throw new UsageError(err.message);
      throw err;
    }
    io.stdout.write(toYaml(objects));
    return 0;
  },
};
