/**
 * The shared piscina pool that runs handler micro-batches — many at once on each thread while their handlers await
 * (`tasksPerThread`) — plus the watchdog that turns a stuck handler into a terminated-and-replaced worker. Never
 * rejects: when a worker dies or is terminated, each message of each task it ran gets its exact outcome from the
 * task's shared progress (handled, failed with the death, or not run and to run again).
 */
import { availableParallelism } from 'node:os';
import type { ResourceLimits } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { Heartbeats } from './heartbeats.ts';
import { threadBalancer } from './thread-balancer.ts';
import {
  createProgress, isUnitReport, isWorkerDeathReport, isWorkerWarmReport, MessageState, Outcome, packBatch, progressView,
  type FailureReport, type HandlerTask, type TaskMessage, type TaskResult, type UnitReport, type WorkerDeathReport, type WorkerTask,
} from './protocol.ts';

export type PoolFailureKind = 'crash' | 'terminated-after-timeout' | 'publish';

/** Why a message failed: its handler's failure as the worker reported it, or the pool's (its worker died). */
export type MessageFailure = FailureReport | { readonly kind: PoolFailureKind; readonly name: string; readonly message: string };

export interface PoolTaskResult extends Omit<TaskResult, 'failures'> {
  readonly failures?: ReadonlyArray<MessageFailure | undefined>;
}

export interface WorkerPoolOptions {
  /** Worker threads; 0 = available cores. */
  readonly size: number;
  /** Tasks one thread runs at once (their handlers interleave while they await); more wait in the pool's queue. */
  readonly tasksPerThread: number;
  /** Handler modules every worker imports before it takes a task (`warm` resolves once every thread did). */
  readonly handlerUrls?: readonly string[];
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
  /** Threads the watchdog terminated: the other tasks they ran were interrupted, not at fault. */
  private readonly terminatedThreads = new Set<number>();
  /** Threads that imported every handler module. */
  private readonly warmThreads = new Set<number>();
  private readonly warmWaiters: Array<() => void> = [];
  private readonly tasksPerThread: number;
  /** Tasks whose units report as they end (run's onUnit), by the id they carry. */
  private readonly unitListeners = new Map<number, (report: UnitReport) => void>();
  private nextTaskId = 1;
  /** Each worker's event loop beats here; a thread that stopped beating is blocked by a handler. */
  private readonly heartbeats = new Heartbeats();

  constructor(options: WorkerPoolOptions) {
    const size = options.size > 0 ? options.size : availableParallelism();
    this.graceMs = options.timeoutGraceMs;
    this.tasksPerThread = options.tasksPerThread;
    this.piscina = new Piscina({
      filename: workerFile,
      minThreads: size,
      maxThreads: size,
      idleTimeout: Number.POSITIVE_INFINITY,
      concurrentTasksPerWorker: options.tasksPerThread,
      loadBalancer: threadBalancer(options.tasksPerThread, (thread) => this.heartbeats.responsive(thread)),
      workerData: { conveyorHandlers: options.handlerUrls ?? [], conveyorHeartbeats: this.heartbeats.buffer },
      // async: an idle worker still runs timers and I/O a handler left behind (sync would block them)
      atomics: 'async',
      ...(options.resourceLimits ? { resourceLimits: options.resourceLimits } : {}),
    });
    this.onLateFailure = options.onLateFailure;
    this.piscina.on('message', (message: unknown) => {
      if (isWorkerDeathReport(message)) this.workerDied(message);
      else if (isWorkerWarmReport(message)) this.workerWarm(message.threadId);
      else if (isUnitReport(message)) this.unitListeners.get(message.task)?.(message);
    });
    // piscina emits 'error' for a worker that fails with no task running; unheard, it would throw in this thread
    this.piscina.on('error', (err: unknown) => this.idleWorkerError(err));
  }

  private workerWarm(thread: number): void {
    this.warmThreads.add(thread);
    if (this.warmThreads.size < this.size) return;
    for (const resolve of this.warmWaiters.splice(0)) resolve();
  }

  /**
   * Resolves once as many threads as the pool holds imported every handler module (counted since the start: a
   * replaced thread warms itself before its first task, but is not awaited here).
   */
  warm(): Promise<void> {
    if (this.warmThreads.size >= this.size) return Promise.resolve();
    return new Promise((resolve) => this.warmWaiters.push(resolve));
  }

  /** Threads that have imported every handler module, as far as this pool has heard. */
  get warmed(): number {
    return this.warmThreads.size;
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

  /** Threads running a task now (a thread runs up to tasksPerThread tasks at once). */
  get busy(): number {
    return Math.min(Math.ceil(this.tasks / this.tasksPerThread), this.size);
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

  /**
   * Runs a task. `exclusive`: alone on its thread (it waits for a thread to drain) — for messages that were running
   * beside others when their thread died, so that a second death names the message that caused it.
   */
  async run(
    task: Omit<HandlerTask, 'progress' | 'reportUnitsAs'>,
    { exclusive = false, onUnit }: { readonly exclusive?: boolean; readonly onUnit?: (report: UnitReport) => void } = {},
  ): Promise<PoolTaskResult> {
    const n = task.messages.length;
    // a task of several units: each unit's outcome comes as soon as it ends (the result repeats it)
    let reportUnitsAs: number | undefined;
    if (onUnit && task.units && task.units.length > 1) {
      reportUnitsAs = this.nextTaskId++;
      this.unitListeners.set(reportUnitsAs, onUnit);
    }
    const progress = createProgress(n);
    const view = progressView(progress, n);
    // Watchdog: a message may run timeoutMs + grace; the worker aborts it at timeoutMs itself, so only a handler
    // that blocks its thread (or ignores the abort and never settles) reaches the termination. Terminating the
    // thread interrupts the other tasks it runs (their running messages run again, not counted as attempts).
    // Not through piscina's abort signal: piscina never shares a thread with an abortable task.
    const limit = task.timeoutMs + this.graceMs;
    let timer: NodeJS.Timeout | undefined;
    const overdue: number[] = [];
    let blocked = false;
    const watch = (): void => {
      const now = Date.now();
      let earliest = Number.POSITIVE_INFINITY;
      for (let i = 0; i < n; i++) {
        if (Atomics.load(view.states, i) !== MessageState.running) continue;
        const started = view.startedAt[i]!;
        if (now - started >= limit) overdue.push(i);
        else if (started < earliest) earliest = started;
      }
      if (overdue.length > 0) {
        const thread = Atomics.load(view.thread, 0);
        // a thread that stopped beating is blocked by some handler, not necessarily an overdue one: every
        // message on it started its clock while it could not run
        blocked = !this.heartbeats.responsive(thread);
        this.terminateThread(thread);
        return;
      }
      timer = setTimeout(watch, Math.max(10, Number.isFinite(earliest) ? earliest + limit - now : limit));
    };
    timer = setTimeout(watch, limit);
    this.track(task.handler, 1, n);
    try {
      const { messages, ...rest } = task;
      const batch = packBatch(messages);
      return await this.piscina.run(
        { ...rest, batch, progress, ...(reportUnitsAs !== undefined ? { reportUnitsAs } : {}) },
        // an abort signal is what marks a task exclusive for piscina and the balancer; it is never aborted
        { transferList: [batch.bytes.buffer as ArrayBuffer], ...(exclusive ? { signal: new AbortController().signal } : {}) },
      );
    } catch (err) {
      if (overdue.length > 0) {
        this.terminated += 1;
        // blocked beside other tasks: any of their messages may be the one that blocks; each runs again alone
        if (blocked && !exclusive) return this.afterDeath(task, view, undefined, new Set(), true);
        return this.afterDeath(task, view, {
          kind: 'terminated-after-timeout',
          name: 'HandlerTimeout',
          message: `handler ${task.handler} did not return within ${task.timeoutMs} ms (+${this.graceMs} ms grace); its worker was terminated and replaced`,
        }, new Set(overdue));
      }
      const thread = Atomics.load(view.thread, 0);
      if (thread !== 0 && this.terminatedThreads.has(thread)) return this.afterDeath(task, view, undefined, new Set());
      if (thread === 0 && this.closing) return this.afterDeath(task, view, undefined, new Set());
      this.crashed += 1;
      const failure: MessageFailure = { kind: 'crash', name: 'WorkerCrashed', message: `worker running handler ${task.handler} died: ${(err as Error).message}` };
      // alone on its thread, its running message killed it; beside others, any of them may have: each runs again, alone
      return exclusive ? this.afterDeath(task, view, failure, undefined) : this.afterDeath(task, view, undefined, new Set(), true);
    } finally {
      clearTimeout(timer);
      if (reportUnitsAs !== undefined) this.unitListeners.delete(reportUnitsAs);
      this.track(task.handler, -1, -n);
    }
  }

  /** Terminates the worker thread `thread` (piscina replaces it; every task it ran fails, and is told why here). */
  private terminateThread(thread: number): void {
    this.terminatedThreads.add(thread);
    const worker = this.piscina.threads.find((w) => w.threadId === thread);
    void worker?.terminate();
  }

  /**
   * The outcome of each message of a task whose worker died, from its shared progress. Per unit, in order: handled
   * messages count until the first that published events (they died with the worker: it and the rest of its unit
   * run again); a running or failed message fails with `failure` — with a termination, only the overdue ones
   * (`culprits`), the others were interrupted and run again; without a failure (an interrupted bystander), nothing
   * fails and everything not handled runs again. `suspect`: the thread crashed while it ran other tasks too, so a
   * running message is only a suspect: it runs again, alone (Outcome.suspect), not counted as an attempt.
   */
  private afterDeath(
    task: Omit<HandlerTask, 'progress' | 'reportUnitsAs'>,
    view: ReturnType<typeof progressView>,
    failure: MessageFailure | undefined,
    culprits: ReadonlySet<number> | undefined,
    suspect = false,
  ): PoolTaskResult {
    const n = task.messages.length;
    const outcomes = new Uint8Array(n);
    const failures = new Array<MessageFailure | undefined>(n);
    let anyFailed = false;
    const units = task.units ?? [n];
    let at = 0;
    for (const length of units) {
      for (let i = at; i < at + length; i++) {
        const state = Atomics.load(view.states, i);
        if (state === MessageState.handled) {
          outcomes[i] = Outcome.handled;
          continue;
        }
        if ((state === MessageState.running || state === MessageState.failed) && failure && (!culprits || culprits.has(i))) {
          outcomes[i] = Outcome.failed;
          failures[i] = failure;
          anyFailed = true;
        } else if (state === MessageState.running && suspect) {
          outcomes[i] = Outcome.suspect;
        }
        break; // the rest of the unit did not run, or must run again
      }
      at += length;
    }
    return { outcomes, ...(anyFailed ? { failures } : {}) };
  }

  async close(): Promise<void> {
    this.closing = true;
    await this.piscina.destroy();
  }
}

export type { TaskMessage };
