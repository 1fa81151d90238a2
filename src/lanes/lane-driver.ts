/**
 * Drives one PartitionLane through the pool: hands the worker micro-batches of consecutive messages,
 * acknowledges what succeeded, retries the failed head in-lane (order kept: nothing behind it starts),
 * then dead-letters it and acknowledges only after the broker confirmed the dead letter.
 * While a lane waits (retry delay, dead-letter outage), other lanes run on.
 */
import { backoffDelay, sleep } from '../failure/backoff.ts';
import { classifyFailure, errorType } from '../failure/classify.ts';
import { buildDeadLetter, type DeadLetterSink } from '../failure/dead-letter.ts';
import type { ConveyorError } from '../failure/errors.ts';
import type { Broker } from '../handlers/define-handler.ts';
import type { HandlerSpec } from '../handlers/discover.ts';
import type { Logger } from '../ops/logger.ts';
import { capText, FAILURE_REASON_LIMIT } from '../failure/text-limits.ts';
import type { PublishedEvent } from '../pool/protocol.ts';
import type { WorkerPool, PoolTaskResult } from '../pool/worker-pool.ts';
import type { PublishMessage } from '../publish/kafka-publisher.ts';
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
   * the delivery). Called once per record, in lane order.
   */
  readonly acknowledge: (record: LaneRecord) => void;
  /**
   * RabbitMQ: hands a failed record to a delayed retry outside the lane (a retry queue) and resolves once the
   * broker holds it; the lane then acknowledges the record and goes on. Without it (Kafka), the lane waits the
   * delay itself and retries the record in place, keeping the partition's order.
   */
  readonly retryLater?: (record: LaneRecord, nextAttempt: number, delayMs: number, error: ConveyorError) => Promise<void>;
  readonly events: Instrumentation;
  readonly logger: Logger;
  /** Max consecutive messages per worker task. */
  readonly maxBatch: number;
  /** Called whenever the lane shrank, so the source can resume a paused partition. */
  readonly onDrained: (lane: PartitionLane) => void;
}

export class LaneDriver {
  readonly lane: PartitionLane;
  private readonly spec: HandlerSpec;
  private readonly deps: LaneDriverDeps;
  private readonly stopping = new AbortController();
  private running: Promise<void> | undefined;
  /** Attempt number of the message at the head of the lane. */
  private headAttempt = 1;
  private readonly log: Logger;

  constructor(lane: PartitionLane, spec: HandlerSpec, deps: LaneDriverDeps) {
    this.lane = lane;
    this.spec = spec;
    this.deps = deps;
    this.log = deps.logger.child({ handler: spec.name, group: spec.group, topic: lane.topic, partition: lane.partition });
  }

  /** Starts the lane's loop if it is idle and has work. */
  kick(): void {
    if (this.running || this.lane.closed || this.lane.size === 0) return;
    this.running = this.loop()
      .catch((err: unknown) => {
        // Invariant 6: nothing escapes. A bug here must not kill the process; the lane stops, offsets stay put.
        this.log.error({ err }, 'lane stopped by an unexpected error; its messages stay uncommitted');
      })
      .finally(() => {
        this.running = undefined;
        this.lane.busy = false;
        if (!this.stopping.signal.aborted) this.kick();
      });
  }

  /** Stops taking work; waits for the batch in flight (if any) up to `deadlineMs`. True if it finished. */
  async stop(deadlineMs: number): Promise<boolean> {
    if (!this.lane.closed) {
      const bytes = this.lane.bytes;
      const dropped = this.lane.close();
      this.log.debug({ dropped, bytes }, 'lane closed; queued messages dropped uncommitted (the next owner reads them again)');
    }
    this.stopping.abort(new Error('lane stopped'));
    if (!this.running) return true;
    let timer: NodeJS.Timeout | undefined;
    const finished = await Promise.race([
      this.running.then(() => true),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(false), deadlineMs))),
    ]);
    clearTimeout(timer);
    return finished;
  }

  private context(offset: string) {
    return { topic: this.lane.topic, partition: this.lane.partition, offset, handler: this.spec.name, file: this.spec.file, group: this.spec.group };
  }

  /**
   * Sends the events completed messages published (ctx.publish), in order, before they are acknowledged. If
   * sending fails, the batch ends before that message, which then fails as a BrokerFailure (and is retried).
   */
  private async sendPublished(result: PoolTaskResult): Promise<PoolTaskResult> {
    if (!result.published) return result;
    for (let i = 0; i < result.completed; i++) {
      const events = result.published[i];
      if (!events || events.length === 0) continue;
      try {
        for (const [broker, topic, group] of consecutiveByDestination(events)) {
          await this.deps.publishers[broker].publish(topic, group.map((e) => ({
            key: e.key, value: e.value,
            ...(e.headers ? { headers: e.headers } : {}),
            ...(e.partition !== undefined ? { partition: e.partition } : {}),
          })));
        }
      } catch (err) {
        return {
          completed: i,
          failure: { kind: 'publish', name: 'BrokerFailure', message: `events published by the handler could not be sent: ${(err as Error).message}` },
        };
      }
    }
    return result;
  }

  private async loop(): Promise<void> {
    const { lane, spec, deps } = this;
    const signal = this.stopping.signal;
    while (!lane.closed && lane.size > 0) {
      lane.busy = true;
      const batch = lane.peekBatch(deps.maxBatch);
      const started = performance.now();
      // RabbitMQ deliveries carry their own attempt number; a Kafka lane counts the head's attempts itself
      let attempts: number[] | undefined;
      if (deps.retryLater) {
        this.headAttempt = batch[0]!.attempt ?? 1;
        if (batch.some((r) => (r.attempt ?? 1) > 1)) attempts = batch.map((r) => r.attempt ?? 1);
      }
      const result = await this.sendPublished(await deps.pool.run({
        url: spec.url,
        handler: spec.name,
        topic: lane.topic,
        partition: lane.partition,
        deserialize: spec.deserialize,
        timeoutMs: spec.timeoutMs,
        firstAttempt: this.headAttempt,
        ...(attempts ? { attempts } : {}),
        broker: spec.broker,
        messages: batch,
      }));
      // Acknowledge what the worker completed, even if the lane was revoked meanwhile: the revoke waits
      // for this batch and commits it.
      for (let i = 0; i < result.completed; i++) deps.acknowledge(batch[i]!);
      if (result.completed > 0) {
        const last = batch[result.completed - 1]!;
        deps.events.emit('messages.handled', {
          handler: spec.name, group: spec.group, topic: lane.topic, partition: lane.partition,
          offset: batch[0]!.offset.toString(), lastOffset: last.offset.toString(), count: result.completed,
          durationMs: performance.now() - started, durationsMs: result.durations,
        });
        this.headAttempt = 1;
        if (!lane.closed) lane.release(result.completed);
        deps.onDrained(lane);
      }
      if (!result.failure) continue;

      const record = batch[result.completed]!;
      const offset = record.offset.toString();
      const error = classifyFailure(result.failure, this.context(offset));
      const event = { handler: spec.name, group: spec.group, topic: lane.topic, partition: lane.partition, offset };
      const deadLetterTopic = spec.deadLetterTopicFor(lane.topic);
      const retriesDone = this.headAttempt - 1;
      // Without a dead-letter topic (deadLetter: false) a message is retried until it succeeds.
      if (deadLetterTopic === null || (error.retriable && retriesDone < spec.maxRetries)) {
        const delayMs = backoffDelay(retriesDone, spec.backoff);
        this.log.warn(
          { offset, attempt: this.headAttempt, delayMs, errorClass: error.errorClass, errorType: errorType(error), err: error },
          `attempt ${this.headAttempt} failed, retrying in ${delayMs} ms`,
        );
        deps.events.emit('message.retry', { ...event, attempt: this.headAttempt, delayMs, errorClass: error.errorClass, errorType: errorType(error), reason: capText(error.message, FAILURE_REASON_LIMIT) });
        if (deps.retryLater) {
          const retryLater = deps.retryLater;
          const next = this.headAttempt + 1;
          if (!(await this.untilConfirmed('retry publish', offset, () => retryLater(record, next, delayMs, error)))) return;
          this.finish(record);
          continue;
        }
        try {
          await sleep(delayMs, signal);
        } catch {
          return; // revoked or shutting down: the message stays unacknowledged, the next owner retries it
        }
        this.headAttempt += 1;
        continue;
      }

      // Last attempt failed (or the failure is not worth retrying): dead-letter, then acknowledge.
      const letter = buildDeadLetter({
        deadLetterTopic, topic: lane.topic, partition: lane.partition, record, error,
        retryCount: retriesDone, handler: spec.name, group: spec.group,
      });
      let written = letter;
      const confirmed = await this.untilConfirmed('dead-letter publish', offset, async () => {
        written = (await deps.deadLetters.publish(letter)) ?? letter;
      }, (attempt, delayMs, err) => {
        deps.events.emit('dead_letter.publish_failed', { ...event, deadLetterTopic, attempt, reason: (err as Error).message });
        this.log.error(
          { offset, deadLetterTopic, attempt, delayMs, err },
          'dead-letter publish failed; the lane holds this message (nothing after it is acknowledged) and tries again',
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
  }

  /** The head record left the lane (dead-lettered, or handed to a delayed retry): acknowledge and release it. */
  private finish(record: LaneRecord): void {
    this.deps.acknowledge(record);
    this.headAttempt = 1;
    if (!this.lane.closed) this.lane.release(1);
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
