/**
 * Bounds on the error texts Conveyor writes (docs/observability.md, docs/runtime.md): a handler may throw an
 * error whose message is megabytes long, and it must not become a megabyte-sized log line per attempt or a dead
 * letter the dead-letter topic refuses.
 */

/** Characters of one error text (message, stack, reason) kept in a log line. */
export const LOG_ERROR_TEXT_LIMIT = 8192;

/** Characters of `failure_reason` kept in a dead letter's envelope. */
export const FAILURE_REASON_LIMIT = 8192;

/** Characters of the `failure_reason` header of a dead letter. */
export const FAILURE_REASON_HEADER_LIMIT = 1024;

/**
 * `text` if it has at most `limit` characters, else its beginning with a marker saying how long it was, `limit`
 * characters in all (a surrogate pair is never cut in half).
 */
export function capText(text: string, limit: number): string {
  if (text.length <= limit) return text;
  const marker = `… [truncated: ${text.length} characters in all]`;
  let end = Math.max(0, limit - marker.length);
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end -= 1; // a high surrogate without its low half
  return text.slice(0, end) + marker;
}

/** A copy of `value` with every string in it (depth-bounded) capped at `limit` characters. */
export function capStrings<T>(value: T, limit: number, depth = 4): T {
  if (typeof value === 'string') return capText(value, limit) as T;
  if (typeof value !== 'object' || value === null || depth === 0) return value;
  if (Array.isArray(value)) return value.map((item: unknown) => capStrings(item, limit, depth - 1)) as T;
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(value)) out[key] = capStrings(field, limit, depth - 1);
  return out as T;
}
