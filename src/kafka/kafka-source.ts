/**
 * One Kafka consumer group per handler: fetches, fills the partitions' lanes, pauses and resumes partitions
 * for backpressure, commits each partition's acknowledged watermark (on an interval, on revoke, on stop),
 * and on a revoke stops those lanes, lets their in-flight batch finish, commits, then releases them.
 */
import kafkaJavascript from '@confluentinc/kafka-javascript';
import { OffsetTracker } from '../ack/offset-tracker.ts';
import type { MemoryPlan } from '../config/memory-budget.ts';
import type { ConveyorConfig } from '../config/schema.ts';
import { RECONNECT_BACKOFF } from '../failure/backoff.ts';
import type { DeadLetterPublisher } from '../failure/dead-letter.ts';
import type { Broker } from '../handlers/define-handler.ts';
import type { HandlerSpec } from '../handlers/discover.ts';
import type { Instrumentation } from '../lanes/instrumentation.ts';
import { LaneDriver, type EventSender } from '../lanes/lane-driver.ts';
import { PartitionLane, type LaneRecord } from '../lanes/partition-lane.ts';
import type { Logger } from '../ops/logger.ts';
import type { WorkerPool } from '../pool/worker-pool.ts';
import type { Consumer, IHeaders, Kafka, KafkaMessage } from './client.ts';

const { ERR__ASSIGN_PARTITIONS, ERR__REVOKE_PARTITIONS } = kafkaJavascript.CODES.ERRORS;

interface PartitionState {
  readonly lane: PartitionLane;
  readonly tracker: OffsetTracker;
  readonly driver: LaneDriver;
}

interface TopicPartition {
  readonly topic: string;
  readonly partition: number;
}

export interface KafkaSourceDeps {
  readonly kafka: Kafka;
  readonly pool: WorkerPool;
  readonly deadLetters: DeadLetterPublisher;
  readonly publishers: Readonly<Record<Broker, EventSender>>;
  readonly events: Instrumentation;
  readonly logger: Logger;
  /** The memory budget's plan: this consumer's prefetch properties and its lanes' limits. */
  readonly memory: MemoryPlan;
}

const key = (topic: string, partition: number): string => `${topic}\u0000${partition}`;

function headerBytes(headers: IHeaders | undefined): number {
  let n = 0;
  // for-in: no allocation for the (usual) empty or small header set on this per-message path
  for (const name in headers) {
    const value = headers[name];
    n += name.length;
    if (Array.isArray(value)) for (const v of value) n += v.length;
    else if (value) n += value.length;
  }
  return n;
}

export class KafkaSource {
  readonly spec: HandlerSpec;
  private readonly config: ConveyorConfig;
  private readonly deps: KafkaSourceDeps;
  private readonly log: Logger;
  private readonly partitions = new Map<string, PartitionState>();
  private consumer: Consumer | undefined;
  private commitTimer: NodeJS.Timeout | undefined;
  private committing: Promise<void> = Promise.resolve();
  private stopped = false;
  /** consumer.connect() resolved: until then there is nothing to commit, and disconnect() waits for the connect. */
  private connected = false;
  /** The group's first rebalance gave this member its assignment (possibly empty). */
  private assignedOnce = false;

  constructor(spec: HandlerSpec, config: ConveyorConfig, deps: KafkaSourceDeps) {
    this.spec = spec;
    this.config = config;
    this.deps = deps;
    this.log = deps.logger.child({ handler: spec.name, group: spec.group });
  }

  /** Partitions this member currently owns. */
  assignment(): TopicPartition[] {
    return [...this.partitions.values()].map(({ lane }) => ({ topic: lane.topic, partition: lane.partition }));
  }

  /** For health checks: connected, through its first rebalance (even with no partitions), partitions owned. */
  status(): { connected: boolean; assigned: boolean; partitions: number } {
    return { connected: this.connected, assigned: this.assignedOnce, partitions: this.partitions.size };
  }

  /** Messages each owned partition's lane holds, not yet acknowledged (for metrics). */
  laneDepths(): Array<TopicPartition & { depth: number }> {
    return [...this.partitions.values()].map(({ lane }) => ({ topic: lane.topic, partition: lane.partition, depth: lane.size }));
  }

  async start(): Promise<void> {
    const { kafka: k } = this.config;
    const consumer = this.deps.kafka.consumer({
      kafkaJS: { groupId: this.spec.group, fromBeginning: k.autoOffsetReset === 'earliest', autoCommit: false },
      'group.id': this.spec.group,
      ...(k.instanceId ? { 'group.instance.id': k.instanceId } : {}),
      // static members get the long session of seed 000 (restarts without rebalance); dynamic ones a short one,
      // so that a crashed member's partitions move on quickly
      'session.timeout.ms': k.instanceId ? k.sessionTimeoutMs : k.dynamicSessionTimeoutMs,
      // a mistyped handler topic must not create a topic
      'allow.auto.create.topics': false,
      'partition.assignment.strategy': k.assignmentStrategy,
      'enable.auto.commit': false,
      'auto.offset.reset': k.autoOffsetReset,
      // prefetch (queued.max.messages.kbytes, fetch.max.bytes, ...) and js.consumer.max.batch.size from the memory budget
      ...this.deps.memory.kafkaConsumerProperties,
      'reconnect.backoff.ms': RECONNECT_BACKOFF.initialMs,
      'reconnect.backoff.max.ms': RECONNECT_BACKOFF.maxMs,
      rebalance_cb: (err: { code: number }, assignment: TopicPartition[]) => this.onRebalance(err, assignment),
    } as never);
    this.consumer = consumer;
    await consumer.connect();
    this.connected = true;
    if (this.stopped) {
      // stop() came while connecting and returned at once: leave now, without ever joining the group.
      await consumer.disconnect().catch(() => {});
      return;
    }
    await consumer.subscribe({ topics: [...this.spec.topics] });
    await consumer.run({
      eachBatchAutoResolve: true,
      eachBatch: async ({ batch, resolveOffset }) => {
        const lane = this.onBatch(batch.topic, batch.partition, batch.messages);
        // Pause here, not after the batch: the client hands out the batches it has cached in microtasks, so a
        // deferred pause would land only after every cached message of the partition was queued. The batch is
        // resolved first, so the pause seeks past it (the paused batch is not delivered again).
        if (lane?.shouldPause()) {
          resolveOffset(batch.lastOffset());
          this.pause(lane);
        }
      },
    });
    this.commitTimer = setInterval(() => void this.commit(), this.config.commit.intervalMs);
    this.commitTimer.unref();
    this.log.info({ topics: this.spec.topics, instanceId: k.instanceId || undefined, strategy: k.assignmentStrategy }, 'consumer started');
  }

  private state(topic: string, partition: number): PartitionState {
    let state = this.partitions.get(key(topic, partition));
    if (!state) {
      const lane = new PartitionLane(topic, partition, this.deps.memory.laneLimits(this.partitions.size + 1));
      const tracker = new OffsetTracker();
      const driver = new LaneDriver(lane, this.spec, {
        pool: this.deps.pool,
        deadLetters: this.deps.deadLetters,
        publishers: this.deps.publishers,
        acknowledge: (record) => tracker.ack(record.offset),
        events: this.deps.events,
        logger: this.deps.logger,
        maxBatch: this.config.pool.maxBatch,
        onDrained: (l) => this.maybeResume(l),
      });
      state = { lane, tracker, driver };
      this.partitions.set(key(topic, partition), state);
    }
    return state;
  }

  private onBatch(topic: string, partition: number, messages: KafkaMessage[]): PartitionLane | undefined {
    if (this.stopped || messages.length === 0) return undefined;
    const { lane, tracker, driver } = this.state(topic, partition);
    if (lane.closed) return undefined;
    const last = tracker.lastTracked();
    for (const m of messages) {
      const offset = BigInt(m.offset);
      if (last !== undefined && offset <= last) continue; // a re-fetch of what the lane already holds
      tracker.track(offset);
      const record: LaneRecord = {
        offset,
        key: m.key,
        value: m.value,
        headers: m.headers ?? {},
        timestamp: m.timestamp,
        size: (m.key?.length ?? 0) + (m.value?.length ?? 0) + headerBytes(m.headers),
      };
      lane.push(record);
    }
    driver.kick();
    return lane;
  }

  private pause(lane: PartitionLane): void {
    if (!lane.shouldPause() || !this.consumer) return;
    try {
      this.consumer.pause([{ topic: lane.topic, partitions: [lane.partition] }]);
      lane.paused = true;
      this.deps.events.emit('partition.paused', { group: this.spec.group, topic: lane.topic, partition: lane.partition, queued: lane.size, bytes: lane.bytes });
      this.log.debug({ topic: lane.topic, partition: lane.partition, queued: lane.size, bytes: lane.bytes }, 'partition paused (lane full)');
    } catch (err) {
      this.log.warn({ err, topic: lane.topic, partition: lane.partition }, 'could not pause partition');
    }
  }

  private maybeResume(lane: PartitionLane): void {
    if (!lane.shouldResume() || !this.consumer) return;
    try {
      this.consumer.resume([{ topic: lane.topic, partitions: [lane.partition] }]);
      lane.paused = false;
      this.deps.events.emit('partition.resumed', { group: this.spec.group, topic: lane.topic, partition: lane.partition, queued: lane.size, bytes: lane.bytes });
      this.log.debug({ topic: lane.topic, partition: lane.partition, queued: lane.size }, 'partition resumed');
    } catch (err) {
      this.log.warn({ err, topic: lane.topic, partition: lane.partition }, 'could not resume partition');
    }
  }

  private async onRebalance(err: { code: number }, assignment: TopicPartition[]): Promise<void> {
    const partitions = assignment.map(({ topic, partition }) => ({ topic, partition }));
    if (err.code === ERR__ASSIGN_PARTITIONS) {
      for (const { topic, partition } of partitions) {
        const stale = this.partitions.get(key(topic, partition));
        if (stale?.lane.closed) this.partitions.delete(key(topic, partition));
        this.state(topic, partition);
      }
      this.resizeLanes();
      this.assignedOnce = true;
      this.log.info({ partitions }, 'partitions assigned');
      this.deps.events.emit('partitions.assigned', { group: this.spec.group, partitions });
    } else if (err.code === ERR__REVOKE_PARTITIONS) {
      await this.revoke(partitions);
    } else {
      this.log.error({ code: err.code }, 'rebalance error');
    }
  }

  /** The consumer's lane memory is shared by the partitions it owns: re-divide it whenever that set changes. */
  private resizeLanes(): void {
    const limits = this.deps.memory.laneLimits(this.partitions.size);
    for (const { lane } of this.partitions.values()) lane.limits = limits;
  }

  /** Invariant 4: stop fetching into those lanes, let the in-flight batch finish, commit, then release. */
  private async revoke(partitions: TopicPartition[]): Promise<void> {
    const states = partitions.map((tp) => this.partitions.get(key(tp.topic, tp.partition))).filter((s): s is PartitionState => !!s);
    // at shutdown, stop() already gave the in-flight work its deadline: leaving the group must not wait again
    const deadlineMs = this.stopped ? 0 : this.config.shutdown.revokeDeadlineMs;
    const finished = await Promise.all(states.map((s) => s.driver.stop(deadlineMs)));
    const unfinished = states.filter((_, i) => !finished[i]).map((s) => s.lane.partition);
    if (unfinished.length > 0 && !this.stopped) {
      this.log.warn({ partitions: unfinished, deadlineMs: this.config.shutdown.revokeDeadlineMs }, 'in-flight work did not finish before the revoke deadline; its messages stay uncommitted');
    }
    await this.commit(states);
    for (const s of states) this.partitions.delete(key(s.lane.topic, s.lane.partition));
    this.resizeLanes();
    this.log.info({ partitions }, 'partitions revoked');
    this.deps.events.emit('partitions.revoked', { group: this.spec.group, partitions });
  }

  /** Commits every partition's watermark that moved (all partitions, or the given ones). Never throws. */
  commit(only?: readonly PartitionState[]): Promise<void> {
    this.committing = this.committing.then(async () => {
      const consumer = this.consumer;
      if (!consumer) return;
      const states = only ?? [...this.partitions.values()];
      const offsets = states
        .map((s) => ({ s, offset: s.tracker.uncommitted() }))
        .filter((x): x is { s: PartitionState; offset: bigint } => x.offset !== undefined);
      if (offsets.length === 0) return;
      const list = offsets.map(({ s, offset }) => ({ topic: s.lane.topic, partition: s.lane.partition, offset: offset.toString() }));
      try {
        await consumer.commitOffsets(list);
        for (const { s, offset } of offsets) s.tracker.markCommitted(offset);
        this.deps.events.emit('offsets.committed', { group: this.spec.group, offsets: list });
        this.log.debug({ offsets: list }, 'offsets committed');
      } catch (err) {
        this.log.warn({ err, offsets: list }, 'commit failed; will retry with the next commit');
      }
    });
    return this.committing;
  }

  /** Graceful stop: no new work, in-flight batches finish (bounded), final commit, leave the group. */
  async stop(deadlineMs: number): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.commitTimer);
    if (!this.connected) {
      // Still connecting (say, the brokers are unreachable): nothing was fetched, so nothing to drain or commit.
      // The driver cannot abort a connect: disconnect() now would wait for the connect attempt to end (30 s when
      // no broker answers) and then fail it; start() disconnects if the connect still succeeds.
      this.log.info('consumer stopped before it connected');
      return;
    }
    const states = [...this.partitions.values()];
    const finished = await Promise.all(states.map((s) => s.driver.stop(deadlineMs)));
    const unfinished = states.filter((_, i) => !finished[i]).map((s) => `${s.lane.topic}/${s.lane.partition}`);
    if (unfinished.length > 0) this.log.warn({ partitions: unfinished }, 'in-flight work did not finish before the shutdown deadline; left uncommitted');
    await this.commit();
    try {
      await this.consumer?.disconnect();
    } catch (err) {
      this.log.warn({ err }, 'consumer disconnect failed');
    }
    this.log.info('consumer stopped');
  }
}
