/**
 * One Kafka consumer group per handler: fetches, fills the partitions' lanes, pauses and resumes partitions
 * for backpressure, commits each partition's acknowledged watermark (on an interval, on revoke, on stop),
 * and on a revoke stops those lanes, lets their in-flight batch finish, commits, then releases them.
 */
import kafkaJavascript from '@confluentinc/kafka-javascript';
import { CoalescedRun } from '../ack/coalesced-run.ts';
import { decodeCompletedOffsets, encodeCompletedOffsets } from '../ack/completed-offsets.ts';
import { OffsetTracker } from '../ack/offset-tracker.ts';
import type { MemoryPlan } from '../config/memory-budget.ts';
import type { ConveyorConfig } from '../config/schema.ts';
import { RECONNECT_BACKOFF, sleep } from '../failure/backoff.ts';
import type { DeadLetterPublisher } from '../failure/dead-letter.ts';
import type { Broker } from '../handlers/define-handler.ts';
import type { HandlerSpec } from '../handlers/discover.ts';
import type { Instrumentation } from '../lanes/instrumentation.ts';
import { LaneDriver, type EventSender } from '../lanes/lane-driver.ts';
import { PartitionLane, type LaneRecord } from '../lanes/partition-lane.ts';
import { ConcurrencySlots } from '../scheduling/concurrency-slots.ts';
import type { Logger } from '../ops/logger.ts';
import type { WorkerPool } from '../pool/worker-pool.ts';
import type { CommittedPosition } from './admin.ts';
import type { Consumer, IHeaders, Kafka, KafkaMessage } from './client.ts';
import { decideStart, type TopicInspector } from './start-position.ts';

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

/** An assignment entry handed back to the driver: with an offset, the partition starts there. */
interface PositionedPartition extends TopicPartition {
  readonly offset?: number;
}

/**
 * The group protocol a consumer uses: kafka.groupProtocol, where auto means consumer (KIP-848) with dynamic
 * membership and classic with static membership (docs/runtime.md, "Group protocol": measured, KIP-848 is back
 * within seconds of a broker's return where classic waits out two session timeouts; but a KIP-848 static member's
 * session is the broker's (45 s) and a crashed one's replacement is fenced until it ends).
 */
export function groupProtocol(config: ConveyorConfig): 'classic' | 'consumer' {
  const { groupProtocol: chosen, instanceId } = config.kafka;
  if (chosen !== 'auto') return chosen;
  return instanceId ? 'classic' : 'consumer';
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

export interface KafkaSourceDeps {
  readonly kafka: Kafka;
  readonly pool: WorkerPool;
  readonly deadLetters: DeadLetterPublisher;
  readonly publishers: Readonly<Record<Broker, EventSender>>;
  readonly events: Instrumentation;
  readonly logger: Logger;
  /** Partition counts, end and committed offsets of the handlers' topics (the admin port: start-position.ts). */
  readonly topics: TopicInspector;
  /** The memory budget's plan: this consumer's prefetch properties and its lanes' limits. */
  readonly memory: MemoryPlan;
  /** Resolves once the worker threads imported the handlers: the first messages wait for it (never rejects). */
  readonly workersWarm?: Promise<void>;
}

const key = (topic: string, partition: number): string => `${topic}\u0000${partition}`;

/** Committed metadata as this source wrote it: the Confluent client appends a NUL byte to what it sends. */
function storedMetadata(metadata: string | undefined): string {
  return metadata === undefined ? '' : metadata.replace(/\u0000+$/, '');
}

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
  /** The handler's concurrency, shared by the lanes of all its partitions. */
  private readonly slots: ConcurrencySlots;
  private consumer: Consumer | undefined;
  private commitTimer: NodeJS.Timeout | undefined;
  /** One commit in flight at most, one coalesced behind it (commit()). */
  private readonly commits = new CoalescedRun(() => this.commitOnce());
  private commitFailures = 0;
  private stopped = false;
  /** consumer.connect() resolved: until then there is nothing to commit, and disconnect() waits for the connect. */
  private connected = false;
  /** The group's first rebalance gave this member its assignment (possibly empty). */
  private assignedOnce = false;
  /** Partitions of each topic when this member started (start-position.ts); undefined: could not be read. */
  private partitionsAtStart: Map<string, number> | undefined;
  /** Partitions whose restored completed offsets (docs/commit-metadata.md) are still to come: messages skipped so far. */
  private readonly restoring = new Map<string, number>();
  /** Partitions whose last commit could not carry its completed offsets (one debug line per streak). */
  private readonly metadataOverflowing = new Set<string>();

  constructor(spec: HandlerSpec, config: ConveyorConfig, deps: KafkaSourceDeps) {
    this.spec = spec;
    this.config = config;
    this.deps = deps;
    this.log = deps.logger.child({ handler: spec.name, group: spec.group });
    this.slots = new ConcurrencySlots(spec.concurrency);
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
    const protocol = groupProtocol(this.config);
    const classic = protocol === 'classic';
    const consumer = this.deps.kafka.consumer({
      // auto.offset.reset is always earliest: autoOffsetReset is applied by onAssign (start-position.ts), only to
      // a group's first start on a topic, so a partition or topic that appears later is never skipped
      kafkaJS: { groupId: this.spec.group, fromBeginning: true, autoCommit: false },
      'group.id': this.spec.group,
      ...(k.instanceId ? { 'group.instance.id': k.instanceId } : {}),
      ...(classic
        ? {
            // static members get the long session of seed 000 (restarts without rebalance); dynamic ones a short
            // one, so that a crashed member's partitions move on quickly
            'session.timeout.ms': k.instanceId ? k.sessionTimeoutMs : k.dynamicSessionTimeoutMs,
            'partition.assignment.strategy': k.assignmentStrategy,
          }
        : // KIP-848: the broker assigns (always incrementally) and keeps the session (group.consumer.session.timeout.ms)
          { 'group.protocol': 'consumer' }),
      // a mistyped handler topic must not create a topic
      'allow.auto.create.topics': false,
      // new partitions and topics are noticed within this (librdkafka's default is 5 minutes)
      'topic.metadata.refresh.interval.ms': k.metadataRefreshMs,
      'enable.auto.commit': false,
      'auto.offset.reset': 'earliest',
      // prefetch (queued.max.messages.kbytes, fetch.max.bytes, ...) and js.consumer.max.batch.size from the memory budget
      ...this.deps.memory.kafkaConsumerProperties,
      'reconnect.backoff.ms': RECONNECT_BACKOFF.initialMs,
      'reconnect.backoff.max.ms': k.reconnectBackoffMaxMs,
      rebalance_cb: (err: { code: number }, assignment: TopicPartition[]) => this.onRebalance(err, assignment),
    } as never);
    this.consumer = consumer;
    await consumer.connect();
    this.connected = true;
    if (!this.stopped) this.partitionsAtStart = await this.readPartitionCounts();
    if (this.stopped) {
      // stop() came while connecting and returned at once: leave now, without ever joining the group.
      await consumer.disconnect().catch(() => {});
      return;
    }
    await consumer.subscribe({ topics: [...this.spec.topics] });
    let warm = this.deps.workersWarm;
    await consumer.run({
      eachBatchAutoResolve: true,
      eachBatch: async ({ batch, resolveOffset }) => {
        if (warm) {
          await warm; // the group was joined while the workers imported the handlers
          warm = undefined;
        }
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
    this.log.info(
      { topics: this.spec.topics, instanceId: k.instanceId || undefined, protocol, strategy: classic ? k.assignmentStrategy : undefined },
      'consumer started',
    );
  }

  private state(topic: string, partition: number): PartitionState {
    let state = this.partitions.get(key(topic, partition));
    if (!state) {
      const lane = new PartitionLane(topic, partition, this.deps.memory.laneLimits(this.partitions.size + 1), this.spec.ordering);
      const tracker = new OffsetTracker();
      const driver = new LaneDriver(lane, this.spec, {
        pool: this.deps.pool,
        deadLetters: this.deps.deadLetters,
        publishers: this.deps.publishers,
        acknowledge: (record) => tracker.ack(record.offset),
        events: this.deps.events,
        logger: this.deps.logger,
        maxBatch: this.config.pool.maxBatch,
        slots: this.slots,
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
    let skipped = 0;
    for (const m of messages) {
      const offset = BigInt(m.offset);
      if (last !== undefined && offset <= last) continue; // a re-fetch of what the lane already holds
      // false: the previous owner completed it (restored from the commit metadata); tracked and acknowledged
      if (!tracker.track(offset)) {
        skipped += 1;
        continue;
      }
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
    if (this.restoring.size > 0) this.noteRestored(topic, partition, tracker, skipped);
    driver.kick();
    return lane;
  }

  /** Counts the messages skipped as completed before; one log line per partition once its restored offsets passed. */
  private noteRestored(topic: string, partition: number, tracker: OffsetTracker, skipped: number): void {
    const k = key(topic, partition);
    const before = this.restoring.get(k);
    if (before === undefined) return;
    if (skipped > 0) {
      this.deps.events.emit('messages.skipped', { handler: this.spec.name, group: this.spec.group, topic, partition, count: skipped, reason: 'completed_before_restart' });
    }
    if (tracker.restoring) {
      this.restoring.set(k, before + skipped);
      return;
    }
    this.restoring.delete(k);
    this.log.info({ topic, partition, skipped: before + skipped }, 'messages completed by the previous owner skipped (commit metadata)');
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

  private async onRebalance(err: { code: number }, assignment: TopicPartition[]): Promise<PositionedPartition[] | undefined> {
    const partitions = assignment.map(({ topic, partition }) => ({ topic, partition }));
    if (err.code === ERR__ASSIGN_PARTITIONS) {
      for (const { topic, partition } of partitions) {
        const stale = this.partitions.get(key(topic, partition));
        if (stale?.lane.closed) this.partitions.delete(key(topic, partition));
        this.state(topic, partition);
      }
      this.resizeLanes();
      const positioned = await this.startPositions(partitions);
      this.assignedOnce = true;
      this.log.info({ partitions }, 'partitions assigned');
      this.deps.events.emit('partitions.assigned', { group: this.spec.group, partitions });
      return positioned;
    }
    if (err.code === ERR__REVOKE_PARTITIONS) await this.revoke(partitions);
    else this.log.error({ code: err.code }, 'rebalance error');
    return undefined;
  }

  /** The partitions each topic had when this member started; undefined when they could not be read. */
  private async readPartitionCounts(): Promise<Map<string, number> | undefined> {
    try {
      return await this.deps.topics.partitionCounts(this.spec.topics);
    } catch (err) {
      this.log.warn({ err }, 'could not read the partitions of the topics at start: partitions without a committed offset will be read from their beginning');
      return undefined;
    }
  }

  /**
   * Where each newly assigned partition starts (start-position.ts). Returns the assignment with explicit offsets
   * when some partition starts at its end (a group's first start with autoOffsetReset latest), else undefined
   * (librdkafka resumes from the committed offset, or reads from the beginning). Never throws: what cannot be read
   * is read from the beginning.
   */
  private async startPositions(partitions: readonly TopicPartition[]): Promise<PositionedPartition[] | undefined> {
    const consumer = this.consumer;
    if (!consumer || partitions.length === 0) return undefined;
    const timeoutMs = this.config.commit.timeoutMs;
    const topics = [...new Set(partitions.map((p) => p.topic))];
    let committed: Set<string> | undefined;
    let counts: Map<string, number> | undefined;
    for (const tp of partitions) this.restoring.delete(key(tp.topic, tp.partition));
    try {
      counts = await this.deps.topics.partitionCounts(topics);
      const positions = await this.deps.topics.committedPositions(this.spec.group, topics);
      committed = new Set([...positions].flatMap(([topic, byPartition]) => [...byPartition.keys()].map((partition) => key(topic, partition))));
      this.restoreCompleted(partitions, positions);
    } catch (err) {
      this.log.warn({ err, partitions }, 'could not read the committed offsets of newly assigned partitions: those without one are read from their beginning');
    }
    const reset = this.config.kafka.autoOffsetReset;
    const decisions = partitions.map((tp) => ({
      tp,
      decision: decideStart(
        {
          partition: tp.partition,
          committed: committed?.has(key(tp.topic, tp.partition)),
          partitionsAtStart: this.partitionsAtStart ? (this.partitionsAtStart.get(tp.topic) ?? 0) : undefined,
          siblingsCommitted: committed && counts
            ? Array.from({ length: counts.get(tp.topic) ?? 0 }, (_, p) => p).some((p) => p !== tp.partition && committed!.has(key(tp.topic, p)))
            : undefined,
        },
        reset,
      ),
    }));
    const notCommitted = decisions.filter((d) => d.decision.start !== 'committed');
    if (notCommitted.length > 0) {
      this.log.info({ partitions: notCommitted.map(({ tp, decision }) => ({ ...tp, ...decision })) }, 'partitions without a committed offset: start positions');
    }
    const latest = decisions.filter((d) => d.decision.start === 'latest').map((d) => d.tp);
    if (latest.length === 0) return undefined;
    const ends = new Map<string, bigint>();
    try {
      for (const topic of new Set(latest.map((tp) => tp.topic))) {
        const parts = latest.filter((tp) => tp.topic === topic).map((tp) => tp.partition);
        for (const [partition, end] of await this.deps.topics.endOffsets(topic, parts)) ends.set(key(topic, partition), end);
      }
    } catch (err) {
      this.log.warn({ err }, 'could not read the end offsets for autoOffsetReset latest: reading those partitions from their beginning');
      return undefined;
    }
    const pins = latest
      .filter((tp) => ends.has(key(tp.topic, tp.partition)))
      .map((tp) => ({ topic: tp.topic, partition: tp.partition, offset: ends.get(key(tp.topic, tp.partition))!.toString() }));
    // pinned once the assignment is in place: every later owner of these partitions finds a committed offset
    setImmediate(() => {
      void withTimeout(consumer.commitOffsets(pins), timeoutMs, 'committing the start positions').then(
        () => this.log.info({ offsets: pins }, 'group start positions sent for commit (autoOffsetReset latest)'),
        (err: unknown) => this.log.warn({ err, offsets: pins }, 'could not commit the start positions; the next owner reads those partitions from their beginning'),
      );
    });
    return partitions.map((tp) => {
      const end = ends.get(key(tp.topic, tp.partition));
      return end === undefined || !latest.includes(tp) ? { ...tp } : { ...tp, offset: Number(end) };
    });
  }

  /**
   * Hands each newly assigned partition's completed-ahead offsets, recorded in the metadata of its committed offset,
   * to its tracker before its first record arrives (docs/commit-metadata.md). Metadata that is absent, not ours, or
   * written for another offset restores nothing: everything after the committed offset is handled, as without it.
   */
  private restoreCompleted(partitions: readonly TopicPartition[], positions: Map<string, Map<number, CommittedPosition>>): void {
    for (const { topic, partition } of partitions) {
      const position = positions.get(topic)?.get(partition);
      if (position?.metadata === undefined) continue;
      const completed = decodeCompletedOffsets(position.metadata, position.offset);
      if (completed === undefined) {
        this.log.debug({ topic, partition, committed: position.offset.toString(), metadataLength: position.metadata.length }, 'commit metadata not usable: nothing restored');
        continue;
      }
      if (!this.partitions.get(key(topic, partition))?.tracker.restoreCompleted(completed)) continue;
      this.restoring.set(key(topic, partition), 0);
      this.log.info(
        { topic, partition, committed: position.offset.toString(), completedAhead: completed.length, last: completed[completed.length - 1]!.toString() },
        'offsets completed ahead of the committed one restored from its metadata: their messages will be skipped',
      );
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
    await this.commit();
    for (const s of states) this.partitions.delete(key(s.lane.topic, s.lane.partition));
    this.resizeLanes();
    this.log.info({ partitions }, 'partitions revoked');
    this.deps.events.emit('partitions.revoked', { group: this.spec.group, partitions });
  }

  /**
   * Commits every owned partition's watermark that moved. Never throws. Coalesced: at most one commit is in flight
   * and at most one waits behind it; callers that come meanwhile share the waiting one, which snapshots the
   * watermarks when it starts, so it carries the newest. A commit not answered within commit.timeoutMs counts as
   * failed (librdkafka can hold a commit for as long as the coordinator is gone): it is logged, and the next commit
   * carries the watermark again. A caller's promise resolves once a commit that started after its call settled.
   */
  commit(): Promise<void> {
    return this.commits.run();
  }

  private async commitOnce(): Promise<void> {
    const consumer = this.consumer;
    if (!consumer || !this.connected) return;
    const maxBytes = this.config.commit.metadataMaxBytes;
    // After two failed commits in a row, the watermarks alone until one is stored: metadata the brokers refuse (an
    // offset.metadata.max.bytes below commit.metadataMaxBytes) must never hold the watermarks back.
    const withMetadata = maxBytes > 0 && this.commitFailures < 2;
    const offsets = [...this.partitions.values()]
      .map((s) => ({ s, offset: s.tracker.uncommitted(), revision: s.tracker.revision }))
      .filter((x): x is { s: PartitionState; offset: bigint; revision: number } => x.offset !== undefined)
      .map((x) => ({ ...x, metadata: withMetadata ? this.metadataFor(x.s, x.offset, maxBytes) : '' }));
    if (offsets.length === 0) return;
    // without the metadata: logs and events stay small
    const list = offsets.map(({ s, offset }) => ({ topic: s.lane.topic, partition: s.lane.partition, offset: offset.toString() }));
    // no metadata property for none: the client would store an empty one as a lone NUL byte
    const request = offsets.map(({ s, offset, metadata }) => ({ topic: s.lane.topic, partition: s.lane.partition, offset: offset.toString(), ...(metadata ? { metadata } : {}) }));
    const timeoutMs = this.config.commit.timeoutMs;
    const deadline = Date.now() + timeoutMs;
    let timedOut = false;
    try {
      // The driver's commitOffsets resolves once librdkafka *queued* the commit (commitAsync), not when the
      // coordinator stored it: while the coordinator is away it resolves all the same and the commit is lost
      // silently. So a commit counts only once the group's committed offsets, read back, show it.
      await withTimeout(consumer.commitOffsets(request), timeoutMs, 'queueing the commit');
      const pending = new Map(offsets.map((o) => [key(o.s.lane.topic, o.s.lane.partition), o]));
      const topics = [...new Set(offsets.map((o) => o.s.lane.topic))];
      for (let wait = 10; pending.size > 0; wait = Math.min(wait * 2, 500)) {
        await sleep(Math.min(wait, Math.max(0, deadline - Date.now())));
        if (Date.now() >= deadline) break;
        const stored = await withTimeout(this.deps.topics.committedPositions(this.spec.group, topics), Math.max(1, deadline - Date.now()), 'reading the committed offsets back');
        for (const [k, { s, offset, metadata }] of pending) {
          const at = stored.get(s.lane.topic)?.get(s.lane.partition);
          // at the same offset, only its metadata tells this commit from the one before it
          if (at !== undefined && (at.offset > offset || (at.offset === offset && storedMetadata(at.metadata) === metadata))) pending.delete(k);
        }
      }
      const confirmed = offsets.filter((o) => !pending.has(key(o.s.lane.topic, o.s.lane.partition)));
      // a commit without its metadata (withheld after failures) leaves the completed-ahead set to the next one
      for (const { s, offset, revision } of confirmed) s.tracker.markCommitted(offset, withMetadata || maxBytes === 0 ? revision : -1);
      if (confirmed.length > 0) {
        const done = confirmed.map(({ s, offset }) => ({ topic: s.lane.topic, partition: s.lane.partition, offset: offset.toString() }));
        this.deps.events.emit('offsets.committed', { group: this.spec.group, offsets: done });
        this.log.debug({ offsets: done }, 'offsets committed');
      }
      if (pending.size > 0) {
        timedOut = true;
        throw new Error(`the coordinator did not store ${pending.size} of ${offsets.length} offsets within ${timeoutMs} ms (commit.timeoutMs)`);
      }
      this.commitFailures = 0;
    } catch (err) {
      this.commitFailures += 1;
      const reason = err instanceof Error ? err.message : String(err);
      timedOut ||= /within \d+ ms/.test(reason);
      this.deps.events.emit('offsets.commit_failed', { group: this.spec.group, offsets: list, reason, timedOut });
      // one line per failure streak step (1st, 2nd, 4th, 8th ...): an outage of minutes logs a handful of lines
      const n = this.commitFailures;
      if ((n & (n - 1)) === 0) {
        this.log.warn({ err, offsets: list, failuresInARow: n, timedOut }, 'commit failed; the next commit carries the newest watermark');
      }
    }
  }

  /**
   * The metadata a commit of `offset` carries: the partition's completed-ahead offsets, encoded; '' when there
   * are none, or when they do not fit in `maxBytes` (counted, and logged once per streak: the next owner then
   * handles everything after the watermark again, as without metadata).
   */
  private metadataFor(s: PartitionState, offset: bigint, maxBytes: number): string {
    const k = key(s.lane.topic, s.lane.partition);
    const completed = s.tracker.completedAhead();
    const metadata = completed.length === 0 ? '' : encodeCompletedOffsets(offset, completed, maxBytes);
    if (metadata !== undefined) {
      this.metadataOverflowing.delete(k);
      return metadata;
    }
    this.deps.events.emit('offsets.metadata_overflow', { group: this.spec.group, topic: s.lane.topic, partition: s.lane.partition, completedAhead: completed.length });
    if (!this.metadataOverflowing.has(k)) {
      this.metadataOverflowing.add(k);
      this.log.debug(
        { topic: s.lane.topic, partition: s.lane.partition, committing: offset.toString(), completedAhead: completed.length, maxBytes },
        'completed offsets do not fit in the commit metadata (commit.metadataMaxBytes): committing the watermark alone',
      );
    }
    return '';
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
