import { pino, stdSerializers, type DestinationStream, type Logger, type LoggerOptions } from 'pino';
import { censorLogField, LOG_SECRET_PATHS, redactErrorFields, redactLogFields, redactSecrets } from './redact.ts';

export type { Logger };

/**
 * Secrets stay out of every line, three ways (docs/security.md):
 * - fields that hold secrets (`password`, `saslPassword`, `authorization`, `url`, … see LOG_SECRET_PATHS) are
 *   censored by pino's redaction, URLs down to their password; the same names one level down by redactLogFields;
 * - errors (`err`, `error`) are serialized with every string in them redacted: drivers quote URLs in messages;
 * - the message text and text fields lose any `user:password@` or `password=…` (redactLogFields). Child bindings are
 *   written once, when the child is made, and only the field redaction applies to them: bind URLs under a URL
 *   field name (`url`, `amqpUrl`, `rabbitmq`) or redact them first (redactUrl).
 * All three run only for lines that are written: a disabled level costs nothing.
 */
export const LOGGER_SECURITY: Pick<LoggerOptions, 'redact' | 'serializers' | 'hooks' | 'formatters'> = {
  redact: { paths: [...LOG_SECRET_PATHS], censor: censorLogField },
  serializers: {
    err: (err: unknown) => redactErrorFields(stdSerializers.err(err as Error)),
    error: (err: unknown) => redactErrorFields(stdSerializers.err(err as Error)),
  },
  hooks: {
    logMethod(args, method) {
      for (let i = 0; i < args.length; i += 1) {
        const arg: unknown = args[i];
        if (typeof arg === 'string') args[i] = redactSecrets(arg);
      }
      method.apply(this, args as Parameters<typeof method>);
    },
  },
  formatters: { log: redactLogFields },
};

/**
 * The one logger factory: JSON lines on stdout (or `destination`), level from LOG_LEVEL (default info), secrets
 * redacted.
 */
export function createLogger(name: string, level: string = process.env.LOG_LEVEL ?? 'info', destination?: DestinationStream): Logger {
  const options: LoggerOptions = { name, level, base: { pid: process.pid }, ...LOGGER_SECURITY };
  return destination ? pino(options, destination) : pino(options);
}
