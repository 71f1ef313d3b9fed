import type { Command } from '../command.js';
import { criCommand } from './cri.js';
import { devclusterCommand } from './devcluster.js';
import { manifestsCommand } from './manifests.js';
import { agentCommand, buildIndexCommand, nodeCommand, originCommand, proxyCommand, trackerCommand } from './services.js';

/** Every `krill` subcommand, in the order `krill --help` lists them. */
export const commands: readonly Command[] = [originCommand, trackerCommand, buildIndexCommand, proxyCommand, agentCommand, nodeCommand, devclusterCommand, manifestsCommand, criCommand];
