/**
 * Points in time on the command line: ISO 8601 with an explicit zone, so a reset or a filter means the same
 * instant wherever it runs. Pure.
 */
import { UsageError } from './exit-codes.ts';

const DATE_ONLY = /^\d{4}-\d{2}-\d{2}$/;
const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$/i;
const DATE_TIME_NO_ZONE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?$/;

/** Looks like an ISO 8601 date or date-time (with or without zone): the caller meant a time, not an offset. */
export function looksLikeIsoTime(text: string): boolean {
  return DATE_ONLY.test(text) || DATE_TIME.test(text) || DATE_TIME_NO_ZONE.test(text);
}

/**
 * Milliseconds since the epoch for `2026-03-01` (midnight UTC), `2026-03-01T12:00:00Z` or
 * `2026-03-01T14:00:00.000+02:00`; a date-time without a zone is refused (UsageError) rather than guessed.
 */
export function parseIsoTime(text: string, what: string): number {
  if (DATE_TIME_NO_ZONE.test(text)) {
    throw new UsageError(`${what}: ${JSON.stringify(text)} has no time zone; add Z for UTC (${text}Z) or an offset such as +02:00`);
  }
  if (!DATE_ONLY.test(text) && !DATE_TIME.test(text)) {
    throw new UsageError(`${what}: ${JSON.stringify(text)} is not an ISO 8601 time; write 2026-03-01, 2026-03-01T12:00:00Z or 2026-03-01T14:00:00+02:00`);
  }
  const ms = Date.parse(DATE_ONLY.test(text) ? `${text}T00:00:00Z` : text);
  const [year, month, day] = text.slice(0, 10).split('-').map(Number) as [number, number, number];
  // Date.parse rolls 2026-02-30 over into March; a calendar date that does not exist is a typo
  const calendar = new Date(Date.UTC(year, month - 1, day));
  if (Number.isNaN(ms) || calendar.getUTCMonth() !== month - 1 || calendar.getUTCDate() !== day) {
    throw new UsageError(`${what}: ${JSON.stringify(text)} is not a valid date`);
  }
  return ms;
}
