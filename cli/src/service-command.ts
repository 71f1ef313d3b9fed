import { parseArgs } from 'node:util';
import { createLogger, envNames, isKrillError, loadConfig, type Logger, type Schema } from '@krill/lib';
import { UsageError, type Command } from './command.js';

export interface ServiceCommandOptions<C> {
  name: string;
  summary: string;
  description: string;
  schema: Schema;
  /** Prefix of the environment overrides, e.g. KRILL_ORIGIN. */
  envPrefix: string;
  start(config: C, deps: { logger: Logger }): Promise<{ url: string; close(): Promise<void> }>;
}

/**
 * A long-running service subcommand: `krill <name> [--config FILE]`. It validates the config
 * (YAML plus environment overrides) before anything starts, runs the service, and on SIGINT or
 * SIGTERM stops accepting and drains in-flight transfers within the configured bound.
 */
export function serviceCommand<C extends { logLevel?: string }>(options: ServiceCommandOptions<C>): Command {
  return {
    name: options.name,
    summary: options.summary,
    help: () => [
      `Usage: krill ${options.name} [--config FILE]`,
      '',
      options.description,
      '',
      'Options:',
      '  --config FILE   YAML configuration (see README.md, "Configuration")',
      '  --help          this text',
      '',
      'Every configuration key can be overridden from the environment:',
      ...envNames(options.schema, options.envPrefix).map((n) => `  ${n}`),
      '',
    ].join('\n'),
    async run(args, io) {
      const { values } = parse(args);
      let config: C;
      try {
        config = loadConfig<C>({ file: values.config, schema: options.schema, env: io.env, envPrefix: options.envPrefix });
      } catch (err) {
        if (isKrillError(err)) throw new UsageError(err.message);
        throw err;
      }
      const logger = createLogger({ name: `krill-${options.name}`, level: config.logLevel ?? 'info', destination: io.stdout });
      const service = await options.start(config, { logger });
      logger.info({ url: service.url }, `${options.name} listening`);
      const signal = await io.stopSignal;
      logger.info({ signal }, `${options.name} stopping`);
      await service.close();
      logger.info(`${options.name} stopped`);
      return 0;
    },
  };
}

function parse(args: string[]) {
  try {
    return parseArgs({ args, options: { config: { type: 'string' } }, strict: true, allowPositionals: false });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}
