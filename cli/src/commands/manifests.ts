import { UsageError, type Command } from '../command.js';

/** `krill manifests [--config install.yaml]`: every Kubernetes object krill needs (issue 5). */
export const manifestsCommand: Command = {
  name: 'manifests',
  summary: 'render the Kubernetes objects that install krill on a cluster',
  help: () => 'Usage: krill manifests [--config install.yaml]\n',
  async run() {
    throw new UsageError('krill manifests is not built yet');
  },
};
