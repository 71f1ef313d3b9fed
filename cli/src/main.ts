import { UsageError, type Command, type CommandIo } from './command.js';
import { commands } from './commands/index.js';

const USAGE = (list: readonly Command[]) => [
  'Usage: krill <command> [options]',
  '',
  'Peer-to-peer container image distribution for Kubernetes nodes.',
  '',
  'Commands:',
  ...list.map((c) => `  ${c.name.padEnd(13)} ${c.summary}`),
  '',
  'Run `krill <command> --help` for a command\'s options.',
  '',
].join('\n');

/** Runs `krill` with its arguments; resolves with the exit code. */
export async function main(argv: string[], io: Partial<CommandIo> = {}): Promise<number> {
  const full: CommandIo = {
    env: io.env ?? process.env,
    stdout: io.stdout ?? process.stdout,
    stderr: io.stderr ?? process.stderr,
    stopSignal: io.stopSignal ?? stopSignal(),
  };
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    full.stdout.write(USAGE(commands));
    return name === undefined ? 2 : 0;
  }
  const command = commands.find((c) => c.name === name);
  if (!command) {
    full.stderr.write(`krill: unknown command ${JSON.stringify(name)}\n\n${USAGE(commands)}`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    full.stdout.write(command.help());
    return 0;
  }
  try {
    return await command.run(rest, full);
  } catch (err) {
    if (err instanceof UsageError) {
      full.stderr.write(`krill ${command.name}: ${err.message}\nRun \`krill ${command.name} --help\` for usage.\n`);
      return 2;
    }
    full.stderr.write(`krill ${command.name}: ${(err as Error).message}\n`);
    return 1;
  }
}

function stopSignal(): Promise<string> {
  return new Promise((resolve) => {
    const on = (sig: NodeJS.Signals) => {
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
      resolve(sig);
    };
    process.on('SIGINT', on);
    process.on('SIGTERM', on);
  });
}
