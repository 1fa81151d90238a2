import { pino, type Logger } from 'pino';

export type { Logger };

/** The one logger factory: JSON lines on stdout, level from LOG_LEVEL (default info). */
export function createLogger(name: string, level: string = process.env.LOG_LEVEL ?? 'info'): Logger {
  return pino({ name, level, base: { pid: process.pid } });
}
