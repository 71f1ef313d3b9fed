import pino, { type Logger } from 'pino';

export type { Logger };

export interface LoggerOptions {
  level?: string;
  /** The component name, set as `name` on every line. */
  name: string;
  /** A destination stream; standard output when absent. */
  destination?: NodeJS.WritableStream;
}

/**
 * The root logger, made once in a program's main; modules take child loggers from their callers.
 * Credentials never reach the output: the fields below are redacted wherever they appear.
 */
export function createLogger(options: LoggerOptions): Logger {
  return pino(
    {
      name: options.name,
      level: options.level ?? 'info',
      redact: {
        paths: [
          'password', '*.password', '*.*.password',
          'secretAccessKey', '*.secretAccessKey', '*.*.secretAccessKey',
          'authorization', '*.authorization', 'headers.authorization', 'req.headers.authorization',
          'token', '*.token',
          // A caller's registry credentials on their way to the build-index (its routes also strip it).
          'req.headers["x-krill-upstream-credentials"]', 'headers["x-krill-upstream-credentials"]',
        ],
        censor: '[redacted]',
      },
    },
    (options.destination as pino.DestinationStream | undefined) ?? pino.destination(1),
  );
}

/** A logger that drops everything, for tests and library defaults. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
