/**
 * Runs in a piscina worker thread: imports handler modules (once each, all of them before the thread takes its first
 * task) and handles micro-batches: the units of a task at the same time, the messages of a unit in order; many
 * tasks share the thread while their handlers await.
 * Nothing thrown here escapes: every failure becomes a FailureReport for the main thread to classify. What a
 * handler leaves behind and fails later (a throw in a timer, a rejection nobody handles, process.exit) still kills
 * the thread, as Node does; first the thread tells the main thread which handler's code it was (WorkerDeathReport).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { types } from 'node:util';
import { parentPort, threadId } from 'node:worker_threads';
import { workerData } from 'piscina';
import type { Logger } from 'pino';
import { describeThrown } from '../failure/thrown.ts';
import { startBeating } from './heartbeats.ts';
import { isHandler, type Handler, type HandlerMessage, type OutgoingEvent, type PublishOptions } from '../handlers/define-handler.ts';
import {
  MessageState, Outcome, progressView, unpackBatch, UNIT_REPORT, WORKER_DEATH, WORKER_WARM,
  type FailureReport, type PublishedEvent, type TaskResult, type UnitReport, type UnpackedMessage, type WorkerDeathReport, type WorkerTask, type WorkerWarmReport,
} from './protocol.ts';

const handlers = new Map<string, Promise<Handler>>();
let baseLogger: Logger | undefined;

/**
 * The runner's logger factory, loaded on a handler's first use of ctx.log: pino costs ~30 ms of each worker thread's
 * start, and most handlers never log.
 */
function loggerFactory(): typeof import('../ops/logger.ts').createLogger {
  const own = import.meta.url.endsWith('.ts') ? '../ops/logger.ts' : '../ops/logger.js';
  return (createRequire(import.meta.url)(own) as typeof import('../ops/logger.ts')).createLogger;
}

/** The handler whose task runs: the timers and promises its code creates carry it along (async context). */
interface HandlerRun {
  readonly handler: string;
  readonly url: string;
}
const handlerRun = new AsyncLocalStorage<HandlerRun>();
/** The last task's handler: names the culprit when the failure lost its async context. */
let lastRun: HandlerRun | undefined;
/** Tasks running now on this thread. */
let tasksRunning = 0;
let deathReported = false;

/** Tells the main thread this thread is about to die, and of whose code; once. */
function reportDeath(kind: WorkerDeathReport['kind'], err: unknown, exitCode?: number): void {
  if (deathReported || parentPort === null) return;
  deathReported = true;
  const run = handlerRun.getStore() ?? lastRun;
  const report: WorkerDeathReport = {
    [WORKER_DEATH]: true,
    kind,
    busy: tasksRunning > 0,
    ...(run ? { handler: run.handler, file: fileURLToPath(run.url) } : {}),
    ...(kind === 'exit' ? { exitCode: exitCode ?? 0 } : { error: reportedError(err) }),
  };
  try {
    parentPort.postMessage(report);
  } catch {
    // nothing more to do: the thread dies either way
  }
}

function reportedError(err: unknown): { name: string; message: string; stack?: string } {
  if (!(err instanceof Error) && !types.isNativeError(err)) return describeThrown(err);
  const e = err as Error;
  return { name: e.name, message: e.message, ...(e.stack ? { stack: e.stack } : {}) };
}

if (parentPort !== null) {
  // Node's default stays: the thread dies of it (rethrown); a task running now fails with it (WorkerCrashed)
  process.on('uncaughtException', (err, origin) => {
    reportDeath(origin === 'unhandledRejection' ? 'unhandled_rejection' : 'uncaught_exception', err);
    throw err;
  });
  process.on('exit', (code) => reportDeath('exit', undefined, code));
}

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

/**
 * Imports every handler module before the thread takes a task (piscina awaits this module), so the first messages do
 * not pay for the import and readiness can mean "every worker is warm". A module that fails to import is reported
 * by the first task that needs it.
 */
const shared = workerData as { conveyorHandlers?: readonly string[]; conveyorHeartbeats?: SharedArrayBuffer } | undefined;
if (shared?.conveyorHeartbeats && parentPort !== null) startBeating(shared.conveyorHeartbeats, threadId);
const warmUp = shared?.conveyorHandlers;
if (warmUp && parentPort !== null) {
  await Promise.allSettled(warmUp.map((url) => load(url)));
  const report: WorkerWarmReport = { [WORKER_WARM]: true, threadId };
  parentPort.postMessage(report);
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

function decode(task: WorkerTask, m: UnpackedMessage): unknown {
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
  // `throw { code }`: its JSON, not [object Object]; an Error of another realm (vm) is still an Error
  if (!(err instanceof Error) && !types.isNativeError(err)) return { kind, ...describeThrown(err) };
  const e = err as Error;
  return { kind, name: e.name, message: e.message, ...(e.stack ? { stack: e.stack } : {}) };
}

export default async function runTask(task: WorkerTask): Promise<TaskResult> {
  const run: HandlerRun = { handler: task.handler, url: task.url };
  lastRun = run;
  tasksRunning += 1;
  try {
    return await handlerRun.run(run, runBatch, task);
  } finally {
    tasksRunning -= 1;
  }
}

async function runBatch(task: WorkerTask): Promise<TaskResult> {
  const n = task.batch.offsets.length;
  const { thread, states, startedAt } = progressView(task.progress, n);
  thread[0] = threadId;
  const handler = await load(task.url);
  const messages = unpackBatch(task.batch);
  const outcomes = new Uint8Array(n);
  const durations = new Float64Array(n);
  let failures: Array<FailureReport | undefined> | undefined;
  let published: Array<PublishedEvent[] | undefined> | undefined;
  const fail = (i: number, failure: FailureReport): void => {
    outcomes[i] = Outcome.failed;
    (failures ??= new Array<FailureReport | undefined>(n))[i] = failure;
    Atomics.store(states, i, MessageState.failed);
  };
  // the messages [from, to) in order, stopping at the first failure (the rest stay notRun)
  const runUnit = async (from: number, to: number): Promise<void> => {
    for (let i = from; i < to; i++) {
      const m = messages[i]!;
      startedAt[i] = Date.now();
      Atomics.store(states, i, MessageState.running);
      let value: unknown;
      try {
        value = decode(task, m);
      } catch (err) {
        fail(i, report('deserialization', err));
        return;
      }
      const message: HandlerMessage = {
        topic: task.topic,
        partition: task.partition,
        offset: m.offset,
        key: m.key === null ? null : Buffer.from(m.key.buffer, m.key.byteOffset, m.key.byteLength).toString('utf8'),
        value,
        headers: headersOf(m.headers),
        timestamp: Number(m.timestamp),
      };
      const outbox: PublishedEvent[] = [];
      const started = performance.now();
      const handled = handleOne(handler, task, message, task.attempts?.[i] ?? 1, outbox, started);
      const failure = handled instanceof Promise ? await handled : handled;
      if (failure) {
        fail(i, failure); // what a failed attempt published is never sent
        return;
      }
      durations[i] = performance.now() - started;
      outcomes[i] = Outcome.handled;
      if (outbox.length > 0) {
        (published ??= new Array<PublishedEvent[] | undefined>(n))[i] = outbox;
        // its events travel only in the result: if this worker dies first, the message must run again
        Atomics.store(states, i, MessageState.handledPublished);
      } else {
        Atomics.store(states, i, MessageState.handled);
      }
    }
  };
  const reportUnit = (taskId: number, unit: number, from: number, to: number): void => {
    const message: UnitReport = {
      [UNIT_REPORT]: true,
      task: taskId,
      unit,
      outcomes: outcomes.slice(from, to),
      durations: durations.slice(from, to),
      ...(failures ? { failures: failures.slice(from, to) } : {}),
      ...(published ? { published: published.slice(from, to) } : {}),
    };
    parentPort?.postMessage(message);
  };
  const units = task.units;
  if (units === undefined || units.length <= 1) {
    await runUnit(0, n);
  } else {
    const runs: Array<Promise<void>> = [];
    const report = task.reportUnitsAs;
    let at = 0;
    for (const [unit, length] of units.entries()) {
      const from = at;
      const run = runUnit(from, from + length);
      // tell the main thread at once, so a unit's messages are not held back by a slower unit of the task
      runs.push(report === undefined ? run : run.then(() => reportUnit(report, unit, from, from + length)));
      at += length;
    }
    await Promise.all(runs);
  }
  return {
    outcomes,
    durations,
    ...(failures ? { failures } : {}),
    ...(published ? { published } : {}),
  };
}

function encodeValue(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string') return value;
  if (value instanceof Uint8Array) return Buffer.from(value).toString('utf8');
  return JSON.stringify(value);
}

/**
 * Runs one message. A handler that returns without a promise has finished: no timer could have interrupted it
 * (the pool's watchdog terminates one that blocks its thread), so the timeout machinery (timer, AbortController,
 * race) is set up only for a handler that returned a promise, with whatever is left of its timeout.
 */
function handleOne(
  handler: Handler,
  task: WorkerTask,
  message: HandlerMessage,
  attempt: number,
  outbox: PublishedEvent[],
  /** performance.now() when the message started: its timeout counts from here. */
  started: number,
): FailureReport | undefined | Promise<FailureReport | undefined> {
  const state: { controller?: AbortController } = {};
  let log: Logger | undefined;
  const ctx = {
    attempt,
    get signal(): AbortSignal {
      return (state.controller ??= new AbortController()).signal;
    },
    get log(): Logger {
      // the runner's logger settings, redaction included
      baseLogger ??= loggerFactory()('conveyor', process.env.LOG_LEVEL ?? 'info');
      const correlationId = message.headers['correlation_id'] ?? message.headers['correlation-id'] ?? message.headers['x-correlation-id'];
      log ??= baseLogger.child({
        handler: task.handler, topic: message.topic, partition: message.partition, offset: message.offset,
        ...(correlationId ? { correlationId } : {}),
      });
      return log;
    },
    publish(destination: string, events: OutgoingEvent | readonly OutgoingEvent[], options?: PublishOptions): void {
      const broker = options?.broker ?? task.broker ?? 'kafka';
      if (broker !== 'kafka' && broker !== 'rabbitmq') throw new TypeError(`ctx.publish: broker must be 'kafka' or 'rabbitmq'; got ${JSON.stringify(broker)}`);
      // RabbitMQ's default exchange is '' (the key names the queue); a Kafka topic cannot be empty
      if (typeof destination !== 'string' || (broker === 'kafka' && destination.length === 0)) {
        throw new TypeError(`ctx.publish(destination, events): destination must be ${broker === 'kafka' ? 'a non-empty topic name' : "an exchange name ('' for the default exchange)"}`);
      }
      for (const e of Array.isArray(events) ? (events as readonly OutgoingEvent[]) : [events as OutgoingEvent]) {
        outbox.push({
          broker,
          topic: destination,
          key: e.key ?? null,
          value: encodeValue(e.value),
          ...(e.headers ? { headers: { ...e.headers } } : {}),
          ...(e.partition !== undefined ? { partition: e.partition } : {}),
        });
      }
    },
  };
  let outcome: unknown;
  try {
    outcome = handler.handle(message, ctx);
  } catch (err) {
    return failed(err, state.controller);
  }
  if (!isPromiseLike(outcome)) return undefined;
  return settle(outcome, task, state, task.timeoutMs - (performance.now() - started));
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function';
}

async function settle(pending: PromiseLike<unknown>, task: WorkerTask, state: { controller?: AbortController }, remainingMs: number): Promise<FailureReport | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => {
      (state.controller ??= new AbortController()).abort(new Error(`handler ${task.handler} passed its timeout of ${task.timeoutMs} ms`));
      resolve('timeout');
    }, Math.max(0, remainingMs));
  });
  try {
    const outcome = await Promise.race([pending, timedOut]);
    if (outcome === 'timeout') return report('timeout', state.controller?.signal.reason);
    return undefined;
  } catch (err) {
    return failed(err, state.controller);
  } finally {
    clearTimeout(timer);
  }
}

function failed(err: unknown, controller: AbortController | undefined): FailureReport {
  if (controller?.signal.aborted) return report('timeout', controller.signal.reason);
  const nonRetryable = err instanceof Error && err.name === 'NonRetryableError';
  return report(nonRetryable ? 'non-retryable' : 'receiver', err);
}
