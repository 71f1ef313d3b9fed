import { UsageError, type Command } from '../command.js';

/** `krill cri --socket SOCK pull|images|inspecti|rmi|imagefsinfo`: crictl's image calls (issue 5). */
export const criCommand: Command = {
  name: 'cri',
  summary: 'make crictl\'s image calls on a CRI socket',
  help: () => 'Usage: krill cri --socket SOCK pull IMAGE | images | inspecti IMAGE | rmi IMAGE | imagefsinfo\n',
  async run() {
    throw new UsageError('krill cri is not built yet');
  },
};
