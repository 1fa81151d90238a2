/**
 * The shared piscina pool that runs handler micro-batches, plus the watchdog that turns a stuck handler
 * into a terminated-and-replaced worker. Never rejects: a worker that dies or is terminated yields a
 * TaskResult whose failure says so, with `completed` read from the task's shared progress.
 */
import { availableParallelism } from 'node:os';
import type { ResourceLimits } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { createProgress, isWorkerDeathReport, packBatch, readProgress, type HandlerTask, type TaskMessage, type TaskResult, type WorkerDeathReport, type WorkerTask } from './protocol.ts';

export type PoolFailureKind = 'crash' | 'terminated-after-timeout' | 'publish';

export interface PoolTaskResult extends Omit<TaskResult, 'failure'> {
  readonly failure?: TaskResult['failure'] | { readonly kind: PoolFailureKind; readonly name: string; readonly message: string };
}

export interface WorkerPoolOptions {
  /** Worker threads; 0 = available cores. */
  readonly size: number;
  /** After a handler's timeout, how long it may take to return before its worker is terminated. */
  readonly timeoutGraceMs: number;
  /**
   * V8 heap limits of each worker thread (from the memory budget): a handler that allocates without end dies with
   * its worker (replaced; its message fails as WorkerCrashed) instead of growing the process. Undefined: none.
   */
  readonly resourceLimits?: ResourceLimits | undefined;
  /** A worker died after its task finished (no task fails with it): told once per death, to log it. */
  readonly onLateFailure?: (failure: LateWorkerFailure) => void;
}

/** A worker thread that died of what its handler left behind, after its task finished; it has been replaced. */
export interface LateWorkerFailure {
  readonly kind: WorkerDeathReport['kind'];
  /** The handler whose code it was, and its file; `unknown` when the thread could not tell (it died without a word). */
  readonly handler: string;
  readonly file?: string;
  readonly error?: WorkerDeathReport['error'];
  readonly exitCode?: number;
}

/** How long piscina's 'error' of an idle worker waits for the worker's own report before it counts alone. */
const UNREPORTED_DEATH_MS = 250;

const workerFile = new URL(`./worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url).href;

export class WorkerPool {
  private readonly piscina: Piscina<WorkerTask, TaskResult>;
  private readonly graceMs: number;
  /** Workers terminated because a handler did not return after its timeout. */
  terminated = 0;
  /** Workers that died by themselves (during a task, or after it: lateFailures). */
  crashed = 0;
  /** Workers that died after their task finished, per handler and kind (`<handler>\0<kind>`). */
  private readonly late = new Map<string, number>();
  /** Late deaths reported by their worker whose piscina 'error' has not arrived yet. */
  private reportedDeaths = 0;
  private closing = false;
  private readonly onLateFailure: ((failure: LateWorkerFailure) => void) | undefined;
  /** Tasks handed to piscina and not finished yet (running, or waiting for a thread). */
  private tasks = 0;
  /** Messages of those tasks, per handler. */
  private readonly messagesInFlight = new Map<string, number>();

  constructor(options: WorkerPoolOptions) {
    const size = options.size > 0 ? options.size : availableParallelism();
    this.graceMs = options.timeoutGraceMs;
    this.piscina = new Piscina({
      filename: workerFile,
      minThreads: size,
      maxThreads: size,
      idleTimeout: Number.POSITIVE_INFINITY,
      concurrentTasksPerWorker: 1,
      // async: an idle worker still runs timers and I/O a handler left behind (sync would block them)
      atomics: 'async',
      ...(options.resourceLimits ? { resourceLimits: options.resourceLimits } : {}),
    });
    this.onLateFailure = options.onLateFailure;
    this.piscina.on('message', (message: unknown) => {
      if (isWorkerDeathReport(message)) this.workerDied(message);
    });
    // piscina emits 'error' for a worker that fails with no task running; unheard, it would throw in this thread
    this.piscina.on('error', (err: unknown) => this.idleWorkerError(err));
  }

  /** A worker's last word: a death after its task is logged and counted here; one during a task fails the task. */
  private workerDied(report: WorkerDeathReport): void {
    if (report.busy || this.closing) return;
    if (report.kind !== 'exit') this.reportedDeaths += 1; // its piscina 'error' follows
    this.lateFailure({
      kind: report.kind,
      handler: report.handler ?? 'unknown',
      ...(report.file !== undefined ? { file: report.file } : {}),
      ...(report.error !== undefined ? { error: report.error } : {}),
      ...(report.exitCode !== undefined ? { exitCode: report.exitCode } : {}),
    });
  }

  /** An idle worker failed: already reported by the worker itself, or else (it could not say) counted as unknown. */
  private idleWorkerError(err: unknown): void {
    setTimeout(() => {
      if (this.closing) return;
      if (this.reportedDeaths > 0) {
        this.reportedDeaths -= 1;
        return;
      }
      const e = err as Error | undefined;
      this.lateFailure({ kind: 'uncaught_exception', handler: 'unknown', error: { name: e?.name ?? 'Error', message: e?.message ?? String(err), ...(e?.stack ? { stack: e.stack } : {}) } });
    }, UNREPORTED_DEATH_MS).unref();
  }

  private lateFailure(failure: LateWorkerFailure): void {
    this.crashed += 1;
    const key = `${failure.handler}\0${failure.kind}`;
    this.late.set(key, (this.late.get(key) ?? 0) + 1);
    this.onLateFailure?.(failure);
  }

  /** Workers that died after their task finished, by handler and kind. */
  lateFailures(): Array<{ readonly handler: string; readonly kind: LateWorkerFailure['kind']; readonly count: number }> {
    return [...this.late].map(([key, count]) => {
      const [handler, kind] = key.split('\0') as [string, LateWorkerFailure['kind']];
      return { handler, kind, count };
    });
  }

  get size(): number {
    return this.piscina.maxThreads;
  }

  get utilization(): number {
    return this.piscina.utilization;
  }

  /** Threads running a task now (each runs one task at a time). */
  get busy(): number {
    return Math.min(this.tasks, this.size);
  }

  /** Worker threads alive (a terminated or crashed one is replaced). */
  get threads(): number {
    return this.piscina.threads.length;
  }

  /** Messages handed to the pool and not finished, per handler (handlers with none are absent). */
  inFlight(): ReadonlyMap<string, number> {
    return this.messagesInFlight;
  }

  private track(handler: string, tasks: 1 | -1, messages: number): void {
    this.tasks += tasks;
    const n = (this.messagesInFlight.get(handler) ?? 0) + messages;
    if (n > 0) this.messagesInFlight.set(handler, n);
    else this.messagesInFlight.delete(handler);
  }

  async run(task: Omit<HandlerTask, 'progress'>): Promise<PoolTaskResult> {
    const progress = createProgress();
    const abort = new AbortController();
    // Watchdog: a message may run timeoutMs + grace; the worker aborts it at timeoutMs itself, so only a
    // handler that blocks its thread (or ignores the abort and never settles) reaches the termination.
    const limit = task.timeoutMs + this.graceMs;
    let timer: NodeJS.Timeout | undefined;
    const watch = (): void => {
      const { startedAt } = readProgress(progress);
      const overdue = startedAt > 0 ? Date.now() - startedAt - limit : -1;
      if (overdue >= 0) {
        abort.abort(new Error('handler did not return after its timeout'));
        return;
      }
      timer = setTimeout(watch, Math.max(10, startedAt > 0 ? -overdue : limit));
    };
    timer = setTimeout(watch, limit);
    this.track(task.handler, 1, task.messages.length);
    try {
      const { messages, ...rest } = task;
      const batch = packBatch(messages);
      return await this.piscina.run({ ...rest, batch, progress }, { signal: abort.signal, transferList: [batch.bytes.buffer as ArrayBuffer] });
    } catch (err) {
      // Completed messages whose events (ctx.publish) died with the worker must run again: at-least-once.
      const { completed: done, published } = readProgress(progress);
      const completed = published ? 0 : done;
      if (abort.signal.aborted) {
        this.terminated += 1;
        return {
          completed,
          failure: {
            kind: 'terminated-after-timeout',
            name: 'HandlerTimeout',
            message: `handler ${task.handler} did not return within ${task.timeoutMs} ms (+${this.graceMs} ms grace); its worker was terminated and replaced`,
          },
        };
      }
      this.crashed += 1;
      return {
        completed,
        failure: { kind: 'crash', name: 'WorkerCrashed', message: `worker running handler ${task.handler} died: ${(err as Error).message}` },
      };
    } finally {
      clearTimeout(timer);
      this.track(task.handler, -1, -task.messages.length);
    }
  }

  async close(): Promise<void> {
    this.closing = true;
    await this.piscina.destroy();
  }
}

export type { TaskMessage };
