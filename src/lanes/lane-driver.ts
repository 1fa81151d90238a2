/**
 * Drives one PartitionLane through the pool. Whenever the lane could start something — a record arrived, a unit
 * finished, a retry delay passed, a concurrency slot came free — it asks the lane's ordering for the units that may
 * start now (src/scheduling/) and hands them to the pool as one micro-batch, up to the handler's free concurrency
 * slots; several batches of a lane may run at once (key, unordered; partition runs one). Each message's outcome is
 * settled by itself: handled → its published events are sent, then it is acknowledged; failed → it stays taken
 * (holding back what its ordering says) while it waits for its retry, or is dead-lettered and then acknowledged.
 * While one record waits (retry delay, dead-letter outage), whatever its ordering allows runs on.
 */
import { backoffDelay, finishedWithin, sleep } from '../failure/backoff.ts';
import { classifyFailure, errorType } from '../failure/classify.ts';
import { buildDeadLetter, type DeadLetterSink } from '../failure/dead-letter.ts';
import type { ConveyorError } from '../failure/errors.ts';
import type { Broker } from '../handlers/define-handler.ts';
import type { HandlerSpec } from '../handlers/discover.ts';
import type { Logger } from '../ops/logger.ts';
import { capText, FAILURE_REASON_LIMIT } from '../failure/text-limits.ts';
import { Outcome, type PublishedEvent } from '../pool/protocol.ts';
import type { MessageFailure, WorkerPool, PoolTaskResult } from '../pool/worker-pool.ts';
import type { PublishMessage } from '../publish/kafka-publisher.ts';
import type { ConcurrencySlots } from '../scheduling/concurrency-slots.ts';
import type { Unit } from '../scheduling/ordering.ts';
import type { Instrumentation } from './instrumentation.ts';
import type { LaneRecord, PartitionLane } from './partition-lane.ts';

/** Sends events to one broker and resolves once it confirmed them. */
export interface EventSender {
  publish(destination: string, messages: readonly PublishMessage[]): Promise<unknown>;
}

export interface LaneDriverDeps {
  readonly pool: WorkerPool;
  readonly deadLetters: DeadLetterSink;
  /** Send what handlers published with ctx.publish, per broker. */
  readonly publishers: Readonly<Record<Broker, EventSender>>;
  /**
   * Acknowledges a record that was handled or dead-lettered (Kafka: mark its offset committable; RabbitMQ: ack
   * the delivery). Called once per record, in whatever order the records finish.
   */
  readonly acknowledge: (record: LaneRecord) => void;
  /**
   * RabbitMQ: hands a failed record to a delayed retry outside the lane (a retry queue) and resolves once the
   * broker holds it; the lane then acknowledges the record and goes on. Without it (Kafka), the lane waits the
   * delay itself and retries the record in place, holding back what its ordering says.
   */
  readonly retryLater?: (record: LaneRecord, nextAttempt: number, delayMs: number, error: ConveyorError) => Promise<void>;
  readonly events: Instrumentation;
  readonly logger: Logger;
  /** Max messages per worker task. */
  readonly maxBatch: number;
  /** The handler's concurrency, shared by all its lanes in this process. */
  readonly slots: ConcurrencySlots;
  /** Called whenever the lane shrank, so the source can resume a paused partition. */
  readonly onDrained: (lane: PartitionLane) => void;
}

/** Tasks per thread one take is split into, at most (see kick). */
const TASKS_PER_THREAD_PER_TAKE = 4;

export class LaneDriver {
  readonly lane: PartitionLane;
  private readonly spec: HandlerSpec;
  private readonly deps: LaneDriverDeps;
  private readonly stopping = new AbortController();
  /** Batches with the pool, and failed records being retried or dead-lettered: stop() waits for them. */
  private readonly work = new Set<Promise<void>>();
  /** Attempt number of records that failed at least once (Kafka: the lane counts attempts itself). */
  private readonly attempts = new Map<bigint, number>();
  /** Records that were running when their thread died, or was blocked, beside other tasks: each runs again alone (WorkerPool.run). */
  private readonly suspects = new Set<bigint>();
  private readonly log: Logger;
  private readonly wake = (): void => this.kick();

  constructor(lane: PartitionLane, spec: HandlerSpec, deps: LaneDriverDeps) {
    this.lane = lane;
    this.spec = spec;
    this.deps = deps;
    this.log = deps.logger.child({ handler: spec.name, group: spec.group, topic: lane.topic, partition: lane.partition });
  }

  /** Starts whatever the lane's ordering and the free concurrency slots allow, as micro-batches. */
  kick(): void {
    const { lane, deps } = this;
    while (!lane.closed && !this.stopping.signal.aborted && lane.waiting > 0) {
      const free = deps.slots.available;
      if (free <= 0) {
        deps.slots.wait(this.wake);
        return;
      }
      const units = lane.take(deps.maxBatch, Math.min(free, deps.maxBatch), deps.slots.limit);
      if (units.length === 0) return;
      deps.slots.acquire(units.length);
      // a unit holding a suspect (it was running when its thread died beside others) runs alone on a thread
      const shared = this.suspects.size === 0 ? units : units.filter((u) => !u.some((r) => this.suspects.has(r.offset)));
      if (shared.length < units.length) {
        for (const unit of units) if (!shared.includes(unit)) this.track(this.runBatch([unit], true));
      }
      // units that may run at once are spread over the threads (CPU-bound handlers use every core), a few tasks a
      // thread, so that the balancer can even out threads whose tasks end at different times
      const tasks = Math.min(shared.length, deps.pool.size * TASKS_PER_THREAD_PER_TAKE);
      const perTask = Math.ceil(shared.length / Math.max(1, tasks));
      for (let at = 0; at < shared.length; at += perTask) {
        const share = shared.slice(at, at + perTask);
        this.track(this.runBatch(share));
      }
    }
  }

  private track(work: Promise<void>): void {
    const guarded = work.catch((err: unknown) => {
      // Invariant 6: nothing escapes. A bug here must not kill the process; the records stay unacknowledged.
      this.log.error({ err }, 'lane work stopped by an unexpected error; its messages stay uncommitted');
    });
    this.work.add(guarded);
    void guarded.finally(() => {
      this.work.delete(guarded);
      this.kick();
    });
  }

  /** Stops taking work; waits for the work in flight (if any) up to `deadlineMs`. True if it finished. */
  async stop(deadlineMs: number): Promise<boolean> {
    if (!this.lane.closed) {
      const bytes = this.lane.bytes;
      const dropped = this.lane.close();
      this.log.debug({ dropped, bytes }, 'lane closed; what it held is dropped uncommitted (the next owner reads it again)');
    }
    this.deps.slots.leave(this.wake);
    this.stopping.abort(new Error('lane stopped'));
    if (this.work.size === 0) return true;
    // work tracked meanwhile (a failure settled after the stop) is waited for too
    return finishedWithin((async () => {
      while (this.work.size > 0) await Promise.all([...this.work]);
    })(), deadlineMs);
  }

  private context(offset: string) {
    return { topic: this.lane.topic, partition: this.lane.partition, offset, handler: this.spec.name, file: this.spec.file, group: this.spec.group };
  }

  private attemptOf(record: LaneRecord): number {
    return this.attempts.get(record.offset) ?? record.attempt ?? 1;
  }

  /**
   * Runs units as one task and settles each unit by itself, as soon as the worker reports it ended (or, at the
   * latest, from the task's result): its handled messages are acknowledged (even if the lane was revoked meanwhile:
   * the revoke waits for this batch and commits them), its first failure is retried or dead-lettered, what it did not
   * run waits again, and its concurrency slot is given back. Each unit holds one slot until it settles.
   */
  private async runBatch(units: Array<Unit<LaneRecord>>, exclusive = false): Promise<void> {
    const { lane, spec, deps } = this;
    const records = units.length === 1 ? units[0]! : units.flat();
    const starts: number[] = [];
    let at = 0;
    for (const unit of units) {
      starts.push(at);
      at += unit.length;
    }
    let attempts: number[] | undefined;
    for (let i = 0; i < records.length; i++) {
      const a = this.attemptOf(records[i]!);
      if (a !== 1) (attempts ??= new Array<number>(records.length).fill(1))[i] = a;
    }
    const started = performance.now();
    const handled: LaneRecord[] = [];
    const durations: number[] = [];
    const settling: Array<Promise<void>> = [];
    const settled = new Array<boolean>(units.length).fill(false);
    const settle = (u: number, result: PoolTaskResult, from: number): void => {
      if (settled[u]) return;
      settled[u] = true;
      settling.push(this.settleUnit(units[u]!, from, result, handled, durations).finally(() => {
        deps.slots.release(1);
        deps.onDrained(lane); // its acknowledged messages left the lane: a paused partition may resume
      }));
    };
    try {
      const result = await deps.pool.run({
        url: spec.url,
        handler: spec.name,
        topic: lane.topic,
        partition: lane.partition,
        deserialize: spec.deserialize,
        timeoutMs: spec.timeoutMs,
        ...(attempts ? { attempts } : {}),
        ...(units.length > 1 ? { units: units.map((u) => u.length) } : {}),
        broker: spec.broker,
        messages: records,
      }, { exclusive, onUnit: (report) => settle(report.unit, report, 0) });
      for (let u = 0; u < units.length; u++) settle(u, result, starts[u]!);
    } finally {
      // a unit never settled (an unexpected error above) still gives its slot back
      for (let u = 0; u < units.length; u++) {
        if (settled[u]) continue;
        settled[u] = true;
        deps.slots.release(1);
      }
    }
    await Promise.all(settling);
    if (handled.length > 0) {
      let first = handled[0]!;
      let last = first;
      for (const r of handled) {
        if (r.offset < first.offset) first = r;
        if (r.offset > last.offset) last = r;
      }
      deps.events.emit('messages.handled', {
        handler: spec.name, group: spec.group, topic: lane.topic, partition: lane.partition,
        offset: first.offset.toString(), lastOffset: last.offset.toString(), count: handled.length,
        durationMs: performance.now() - started, durationsMs: Float64Array.from(durations),
      });
    }
  }

  private async settleUnit(
    unit: Unit<LaneRecord>,
    at: number,
    result: Pick<PoolTaskResult, 'outcomes' | 'failures' | 'published' | 'durations'>,
    handled: LaneRecord[],
    durations: number[],
  ): Promise<void> {
    const { lane, deps } = this;
    for (let i = 0; i < unit.length; i++) {
      const record = unit[i]!;
      const outcome = result.outcomes[at + i];
      if (outcome === Outcome.handled) {
        const events = result.published?.[at + i];
        if (events && events.length > 0) {
          const failure = await this.sendPublished(events);
          if (failure) {
            this.failed(record, failure);
            lane.giveBack(unit.slice(i + 1));
            return;
          }
        }
        deps.acknowledge(record);
        this.attempts.delete(record.offset);
        this.suspects.delete(record.offset);
        lane.done(record);
        handled.push(record);
        durations.push(result.durations?.[at + i] ?? 0);
        continue;
      }
      if (outcome === Outcome.failed) {
        this.suspects.delete(record.offset);
        this.failed(record, result.failures?.[at + i] ?? { kind: 'crash', name: 'WorkerCrashed', message: 'the worker reported no reason' });
        lane.giveBack(unit.slice(i + 1));
        return;
      }
      if (outcome === Outcome.suspect) {
        this.suspects.add(record.offset);
        this.log.warn({ offset: record.offset.toString() }, 'its worker thread died or was blocked while it ran beside other messages; it runs again alone to tell whether it was the cause');
      }
      lane.giveBack(unit.slice(i));
      return;
    }
  }

  /**
   * Sends the events a handled message published (ctx.publish), in order, before it is acknowledged. A failure to
   * send fails the message as a BrokerFailure (it is retried, and publishes again).
   */
  private async sendPublished(events: readonly PublishedEvent[]): Promise<MessageFailure | undefined> {
    try {
      for (const [broker, topic, group] of consecutiveByDestination(events)) {
        await this.deps.publishers[broker].publish(topic, group.map((e) => ({
          key: e.key, value: e.value,
          ...(e.headers ? { headers: e.headers } : {}),
          ...(e.partition !== undefined ? { partition: e.partition } : {}),
        })));
      }
      return undefined;
    } catch (err) {
      return { kind: 'publish', name: 'BrokerFailure', message: `events published by the handler could not be sent: ${(err as Error).message}` };
    }
  }

  /** A record failed: it stays taken (holding back what its ordering says) until it is retried or dead-lettered. */
  private failed(record: LaneRecord, failure: MessageFailure): void {
    this.track(this.retryOrDeadLetter(record, failure));
  }

  private async retryOrDeadLetter(record: LaneRecord, failure: MessageFailure): Promise<void> {
    const { lane, spec, deps } = this;
    const signal = this.stopping.signal;
    const attempt = this.attemptOf(record);
    const offset = record.offset.toString();
    const error = classifyFailure(failure, this.context(offset));
    const event = { handler: spec.name, group: spec.group, topic: lane.topic, partition: lane.partition, offset };
    const deadLetterTopic = spec.deadLetterTopicFor(lane.topic);
    const retriesDone = attempt - 1;
    // Without a dead-letter topic (deadLetter: false) a message is retried until it succeeds.
    if (deadLetterTopic === null || (error.retriable && retriesDone < spec.maxRetries)) {
      const delayMs = backoffDelay(retriesDone, spec.backoff);
      this.log.warn(
        { offset, attempt, delayMs, errorClass: error.errorClass, errorType: errorType(error), err: error },
        `attempt ${attempt} failed, retrying in ${delayMs} ms`,
      );
      deps.events.emit('message.retry', { ...event, attempt, delayMs, errorClass: error.errorClass, errorType: errorType(error), reason: capText(error.message, FAILURE_REASON_LIMIT) });
      if (deps.retryLater) {
        const retryLater = deps.retryLater;
        if (!(await this.untilConfirmed('retry publish', offset, () => retryLater(record, attempt + 1, delayMs, error)))) return;
        this.finish(record);
        return;
      }
      try {
        await sleep(delayMs, signal);
      } catch {
        return; // revoked or shutting down: the message stays unacknowledged, the next owner retries it
      }
      this.attempts.set(record.offset, attempt + 1);
      lane.giveBack([record]);
      return; // track() kicks the lane
    }

    // Last attempt failed (or the failure is not worth retrying): dead-letter, then acknowledge.
    const letter = buildDeadLetter({
      deadLetterTopic, topic: lane.topic, partition: lane.partition, record, error,
      retryCount: retriesDone, handler: spec.name, group: spec.group,
    });
    let written = letter;
    const confirmed = await this.untilConfirmed('dead-letter publish', offset, async () => {
      written = (await deps.deadLetters.publish(letter)) ?? letter;
    }, (n, delayMs, err) => {
      deps.events.emit('dead_letter.publish_failed', { ...event, deadLetterTopic, attempt: n, reason: (err as Error).message });
      this.log.error(
        { offset, deadLetterTopic, attempt: n, delayMs, err },
        'dead-letter publish failed; the lane holds this message (what its ordering puts after it waits) and tries again',
      );
    });
    if (!confirmed) return;
    const omitted = written.envelope.original_message;
    this.log.error(
      {
        offset, deadLetterTopic, retryCount: retriesDone, errorClass: error.errorClass, errorType: errorType(error), correlationId: letter.envelope.correlation_id, err: error,
        ...(omitted.value_omitted ? { valueOmitted: omitted.value_omitted, valueSize: omitted.value_size } : {}),
        ...(omitted.headers_omitted ? { headersOmitted: omitted.headers_omitted, headersSize: omitted.headers_size } : {}),
      },
      // valueOmitted / headersOmitted: too large for the dead-letter topic; `conveyor dlq replay` reads them from the source
      'message dead-lettered',
    );
    deps.events.emit('message.dead_lettered', { ...event, deadLetterTopic, retryCount: retriesDone, errorClass: error.errorClass, errorType: errorType(error) });
    this.finish(record);
  }

  /** A failed record left the lane (dead-lettered, or handed to a delayed retry): acknowledge it. */
  private finish(record: LaneRecord): void {
    this.deps.acknowledge(record);
    this.attempts.delete(record.offset);
    this.suspects.delete(record.offset);
    this.lane.done(record);
    this.deps.onDrained(this.lane);
  }

  /**
   * Runs `send` until the broker confirms, backing off between failures (200 ms doubling to 30 s, jittered) while
   * the lane holds the message. False when the lane stopped first: the message stays unacknowledged.
   */
  private async untilConfirmed(
    what: string,
    offset: string,
    send: () => Promise<void>,
    onFailure?: (attempt: number, delayMs: number, err: unknown) => void,
  ): Promise<boolean> {
    for (let attempt = 0; ; attempt++) {
      if (this.stopping.signal.aborted) return false;
      try {
        await send();
        return true;
      } catch (err) {
        const delayMs = backoffDelay(Math.min(attempt, 16), { baseMs: 200, maxMs: 30_000 });
        if (onFailure) onFailure(attempt + 1, delayMs, err);
        else this.log.error({ offset, attempt: attempt + 1, delayMs, err }, `${what} failed; the lane holds this message and tries again`);
        try {
          await sleep(delayMs, this.stopping.signal);
        } catch {
          return false;
        }
      }
    }
  }
}

/** Runs of consecutive events for the same broker and destination, in order: each run is one send. */
function consecutiveByDestination(events: readonly PublishedEvent[]): Array<[Broker, string, PublishedEvent[]]> {
  const runs: Array<[Broker, string, PublishedEvent[]]> = [];
  for (const e of events) {
    const last = runs[runs.length - 1];
    if (last && last[0] === e.broker && last[1] === e.topic) last[2].push(e);
    else runs.push([e.broker, e.topic, [e]]);
  }
  return runs;
}
