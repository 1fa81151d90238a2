/**
 * Runs in a piscina worker thread: imports handler modules (once each) and handles a micro-batch in order.
 * Nothing thrown here escapes: every failure becomes a FailureReport for the main thread to classify.
 */
import { pino, type Logger } from 'pino';
import { isHandler, type Handler, type HandlerMessage } from '../handlers/define-handler.ts';
import type { FailureReport, HandlerTask, TaskMessage, TaskResult } from './protocol.ts';

const handlers = new Map<string, Promise<Handler>>();
let baseLogger: Logger | undefined;

function load(url: string): Promise<Handler> {
  let loaded = handlers.get(url);
  if (!loaded) {
    loaded = import(url).then((mod: { default?: unknown }) => {
      if (!isHandler(mod.default)) throw new Error(`${url}: default export is not defineHandler({...})`);
      return mod.default;
    });
    handlers.set(url, loaded);
  }
  return loaded;
}

function headersOf(raw: Readonly<Record<string, unknown>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(raw)) {
    const one = Array.isArray(value) ? value[value.length - 1] : value;
    if (one === undefined || one === null) continue;
    out[name] = typeof one === 'string' ? one : Buffer.from(one as Uint8Array).toString('utf8');
  }
  return out;
}

class Undecodable extends Error {}

function decode(task: HandlerTask, m: TaskMessage): unknown {
  const bytes = m.value === null ? null : Buffer.from(m.value.buffer, m.value.byteOffset, m.value.byteLength);
  switch (task.deserialize) {
    case 'buffer':
      return bytes;
    case 'string':
      return bytes === null ? null : bytes.toString('utf8');
    case 'json':
      if (bytes === null) return null;
      try {
        return JSON.parse(bytes.toString('utf8'));
      } catch (err) {
        throw new Undecodable(`value is not JSON: ${(err as Error).message}`);
      }
  }
}

function report(kind: FailureReport['kind'], err: unknown): FailureReport {
  const e = err instanceof Error ? err : new Error(String(err));
  return { kind, name: e.name, message: e.message, ...(e.stack ? { stack: e.stack } : {}) };
}

export default async function runTask(task: HandlerTask): Promise<TaskResult> {
  const completed = new Int32Array(task.progress, 0, 1);
  const startedAt = new Float64Array(task.progress, 8, 1);
  const handler = await load(task.url);
  for (let i = 0; i < task.messages.length; i++) {
    const m = task.messages[i]!;
    startedAt[0] = Date.now();
    let value: unknown;
    try {
      value = decode(task, m);
    } catch (err) {
      return { completed: i, failure: report('deserialization', err) };
    }
    const message: HandlerMessage = {
      topic: task.topic,
      partition: task.partition,
      offset: m.offset,
      key: m.key === null ? null : Buffer.from(m.key).toString('utf8'),
      value,
      headers: headersOf(m.headers),
      timestamp: Number(m.timestamp),
    };
    const attempt = i === 0 ? task.firstAttempt : 1;
    const failure = await handleOne(handler, task, message, attempt);
    if (failure) return { completed: i, failure };
    Atomics.store(completed, 0, i + 1);
  }
  return { completed: task.messages.length };
}

async function handleOne(handler: Handler, task: HandlerTask, message: HandlerMessage, attempt: number): Promise<FailureReport | undefined> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => {
      controller.abort(new Error(`handler ${task.handler} passed its timeout of ${task.timeoutMs} ms`));
      resolve('timeout');
    }, task.timeoutMs);
  });
  let log: Logger | undefined;
  const ctx = {
    attempt,
    signal: controller.signal,
    get log(): Logger {
      baseLogger ??= pino({ name: 'conveyor', level: process.env.LOG_LEVEL ?? 'info' });
      log ??= baseLogger.child({ handler: task.handler, topic: message.topic, partition: message.partition, offset: message.offset });
      return log;
    },
  };
  try {
    const outcome = await Promise.race([Promise.resolve().then(() => handler.handle(message, ctx)), timedOut]);
    if (outcome === 'timeout') return report('timeout', controller.signal.reason);
    return undefined;
  } catch (err) {
    if (controller.signal.aborted) return report('timeout', controller.signal.reason);
    const nonRetryable = err instanceof Error && err.name === 'NonRetryableError';
    return report(nonRetryable ? 'non-retryable' : 'receiver', err);
  } finally {
    clearTimeout(timer);
  }
}
