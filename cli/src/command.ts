/** One `krill` subcommand. */
export interface Command {
  name: string;
  /** One line for the command list. */
  summary: string;
  /** Full `--help` text. */
  help(): string;
  /** Runs the command; resolves with the process exit code. */
  run(args: string[], io: CommandIo): Promise<number>;
}

/** What a command may touch of the process: given by main so tests can run commands in-process. */
export interface CommandIo {
  env: Record<string, string | undefined>;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** Resolves when the process is asked to stop (SIGINT or SIGTERM). */
  stopSignal: Promise<string>;
}

/** A usage error: main prints it with the command's help hint and exits with status 2. */
export class UsageError extends Error {}
