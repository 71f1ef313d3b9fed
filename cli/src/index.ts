export { main } from './main.js';
export type { Command, CommandIo } from './command.js';
export { devclusterLayout } from './commands/devcluster.js';
