/**
 * What a handler threw, as text, when it is not an Error (`throw { code: 'E_CARD' }`, `throw 'declined'`): the
 * failure reason keeps the value itself instead of `[object Object]`. Objects and arrays are written as JSON, cut to
 * THROWN_JSON_LIMIT characters (a handler may throw a whole response body); what JSON cannot write (a cycle, a
 * BigInt) falls back to util.inspect, cut likewise. Runs in the worker threads; pure.
 */
import { inspect } from 'node:util';

/** Characters of a thrown value's JSON kept in the failure reason (docs/runtime.md). */
export const THROWN_JSON_LIMIT = 2048;

export interface ThrownValue {
  /** Stands for the error's class: the value's constructor (`Object`, `Array`, a class) or its type (`string`). */
  readonly name: string;
  readonly message: string;
}

/** A thrown value that is not an Error, described. */
export function describeThrown(value: unknown): ThrownValue {
  if (value === null) return { name: 'null', message: 'null' };
  switch (typeof value) {
    case 'string':
      return { name: 'string', message: value };
    case 'object':
      return { name: constructorName(value), message: bounded(value) };
    case 'function':
      return { name: 'function', message: `function ${value.name || '(anonymous)'}` };
    default:
      return { name: typeof value, message: String(value as string | number | bigint | boolean | symbol | undefined) };
  }
}

function constructorName(value: object): string {
  const ctor = (Object.getPrototypeOf(value) as { constructor?: { name?: unknown } } | null)?.constructor;
  return typeof ctor?.name === 'string' && ctor.name !== '' ? ctor.name : 'Object';
}

function bounded(value: object): string {
  let text: string | undefined;
  let what = 'JSON';
  try {
    text = JSON.stringify(value);
  } catch {
    // a cycle or a BigInt
  }
  if (text === undefined) {
    what = 'text';
    text = inspect(value, { depth: 4, breakLength: Number.POSITIVE_INFINITY, maxArrayLength: 50, maxStringLength: THROWN_JSON_LIMIT });
  }
  if (text.length <= THROWN_JSON_LIMIT) return text;
  return `${text.slice(0, THROWN_JSON_LIMIT)}… (${text.length} characters of ${what}, first ${THROWN_JSON_LIMIT} kept)`;
}
