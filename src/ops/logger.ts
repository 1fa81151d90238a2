import { pino, stdSerializers, type DestinationStream, type Logger, type LoggerOptions } from 'pino';
import { censorLogField, LOG_SECRET_PATHS, redactErrorFields, redactLogFields, redactSecrets } from './redact.ts';
import { capStrings, LOG_ERROR_TEXT_LIMIT } from '../failure/text-limits.ts';

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
 * Errors are also bounded: every text in a logged error (message, stack with its causes, other string fields) is
 * capped at LOG_ERROR_TEXT_LIMIT characters (failure/text-limits.ts, docs/observability.md), so a handler that throws a
 * megabyte-long message does not write a megabyte-long line per attempt.
 */
export const LOGGER_SECURITY: Pick<LoggerOptions, 'redact' | 'serializers' | 'hooks' | 'formatters'> = {
  redact: { paths: [...LOG_SECRET_PATHS], censor: censorLogField },
  serializers: {
    err: serializeError,
    error: serializeError,
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

/** An error as a log line holds it: redacted, then capped (not the other way: a cut could split a secret from its marker). */
function serializeError(err: unknown): unknown {
  return capStrings(redactErrorFields(stdSerializers.err(err as Error)), LOG_ERROR_TEXT_LIMIT);
}

/**
 * The one logger factory: JSON lines on stdout (or `destination`), level from LOG_LEVEL (default info), secrets
 * redacted.
 */
export function createLogger(name: string, level: string = process.env.LOG_LEVEL ?? 'info', destination?: DestinationStream): Logger {
  const options: LoggerOptions = { name, level, base: { pid: process.pid }, ...LOGGER_SECURITY };
  return destination ? pino(options, destination) : pino(options);
}
