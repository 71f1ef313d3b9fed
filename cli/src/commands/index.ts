import type { Command } from '../command.js';
import { devclusterCommand } from './devcluster.js';
import { buildIndexCommand, originCommand, proxyCommand } from './services.js';

/** Every `krill` subcommand, in the order `krill --help` lists them. */
export const commands: readonly Command[] = [originCommand, buildIndexCommand, proxyCommand, devclusterCommand];
