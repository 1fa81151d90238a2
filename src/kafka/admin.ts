/**
 * The admin port: every Kafka request that is not consuming or producing — reachability, topic offsets, committed
 * offsets, group descriptions, offset resets, reading records at given offsets — goes through here, on
 * @platformatic/kafka (pure JavaScript).
 *
 * Why not the Confluent client that consumes and produces: its admin requests run in librdkafka, and two of them
 * killed the process. `admin.fetchOffsets` for a group the cluster has never seen, or on a freshly formatted
 * cluster, segfaults (confluent-kafka-javascript #374; reproduced 5 of 5 with `node dist/runner.js` against a fresh
 * broker: exit 139 a second after "Admin client connected"), and an admin request racing a broker disconnect
 * aborted it in `rd_kafka_enq_once_del_source_return` (SIGABRT). A JavaScript client fails such a request with
 * an error instead. Reading records at chosen offsets uses the same client's Fetch request: no group is joined,
 * nothing committed.
 *
 * Every call is bounded by `timeoutMs` (kafka.timeoutSeconds, KAFKA_TIMEOUT_SECONDS) and fails with
 * - BrokerFailure (`events.broker.unavailable`) when Kafka does not answer in time, naming the addresses and the
 *   setting;
 * - KafkaSecurityFailure (`events.broker.auth_failed` / `events.broker.tls_failed`) when it refuses the login or
 *   the TLS handshake fails;
 * - ConveyorError `conveyor.kafka.request_failed` when it answers with an error (`conveyor.kafka.unknown_topic`
 *   for a topic that does not exist).
 * A group the cluster has never seen reads as "no committed offsets", not as an error.
 */
import { readFileSync } from 'node:fs';
import { Admin, ConfigResourceTypes, Consumer, consumerGroupDescribeV0, FetchIsolationLevels, FindCoordinatorKeyTypes, kGetConnection, type ClusterMetadata, type Connection, type RetryDelayGetter } from '@platformatic/kafka';
import type { ConveyorConfig } from '../config/schema.ts';
import { BrokerFailure, ConveyorError } from '../failure/errors.ts';
import { brokerErrorNames, classifyAdminError, describeAdminError, platformaticOptions, refusalDetail, type PlatformaticClientOptions } from './admin-options.ts';
import { securityProperties } from './client.ts';
import { KafkaSecurityFailure } from './security-failures.ts';

export interface KafkaAdminOptions {
  /** host:port list. */
  readonly brokers: readonly string[];
  readonly clientId: string;
  /** librdkafka-named security properties (client.ts securityProperties). */
  readonly security?: Readonly<Record<string, string>>;
  /** Bound of every call, in ms. */
  readonly timeoutMs: number;
}

/** The admin options the configuration gives: its brokers, security and kafka.timeoutSeconds. */
export function kafkaAdminOptions(config: ConveyorConfig, clientId: string, timeoutMs = config.kafka.timeoutSeconds * 1000): KafkaAdminOptions {
  return {
    brokers: config.kafka.bootstrapServers.split(',').map((s) => s.trim()).filter(Boolean),
    clientId,
    security: securityProperties(config),
    timeoutMs,
  };
}

export interface Watermarks {
  readonly partition: number;
  /** Log start offset: the first offset still stored. */
  readonly low: bigint;
  /** Log end offset (high watermark): the offset the next message gets. */
  readonly high: bigint;
}

export interface GroupMember {
  readonly memberId: string;
  readonly clientId: string;
  readonly host: string;
  readonly instanceId?: string;
}

export interface GroupDescription {
  readonly group: string;
  /** Empty, Stable, PreparingRebalance, Dead (never seen), ... as the broker says. */
  readonly state: string;
  readonly members: readonly GroupMember[];
}

export interface TopicPartitionOffset {
  readonly topic: string;
  readonly partition: number;
  readonly offset: bigint;
}

/** A committed offset and the metadata committed with it (docs/commit-metadata.md). */
export interface CommittedPosition {
  readonly offset: bigint;
  /** As stored: absent when the commit carried none (or an empty one). */
  readonly metadata?: string;
}

export interface PartitionRange {
  readonly partition: number;
  /** First offset to read. */
  readonly from: bigint;
  /** Read up to, not including, this offset. */
  readonly to: bigint;
}

/** A stored record as read. Header values are bytes, in their order, repeats kept. */
export interface StoredRecord {
  readonly topic: string;
  readonly partition: number;
  readonly offset: bigint;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly headers: ReadonlyArray<readonly [string, Buffer | null]>;
  /** Milliseconds since the epoch; 0 when the record has none. */
  readonly timestamp: number;
}

/** The platformatic options with a retry-delay function (see #platformaticOptions). */
type AdminClientOptions = Omit<PlatformaticClientOptions, 'retryDelay'> & { readonly retryDelay: RetryDelayGetter };

/** Attempts of a metadata request beyond the first: an unknown topic is retried too (it may be a topic just created). */
const METADATA_RETRIES = 3;

/** ListOffsets' special timestamps. */
const LATEST = -1n;
const EARLIEST = -2n;

export class KafkaAdmin {
  readonly timeoutMs: number;
  readonly #options: KafkaAdminOptions;
  readonly #where: string;
  #client: Admin | undefined;
  #reader: Consumer | undefined;
  #clientOptions: AdminClientOptions | undefined;
  /** The pending calls, failed at once when a connection attempt is refused (login, TLS): no retry fixes that. */
  readonly #pending = new Set<(refusal: unknown) => void>();

  constructor(options: KafkaAdminOptions) {
    this.#options = options;
    this.timeoutMs = options.timeoutMs;
    this.#where = options.brokers.join(',');
  }

  /** The cluster's metadata for these topics (none: brokers only); a topic that does not exist fails it (conveyor.kafka.request_failed). */
  async metadata(topics: readonly string[] = []): Promise<ClusterMetadata> {
    return this.#request('reading metadata', (admin) => admin.metadata({ topics: [...topics], forceUpdate: true, autocreateTopics: false, retries: METADATA_RETRIES }));
  }

  /**
   * Does a broker answer? Any answer, even an error about a topic, means yes. Never throws: resolves with the
   * reason when no broker answered (or with the refusal, for a login or TLS failure).
   */
  async reachable(topics: readonly string[] = []): Promise<{ up: true } | { up: false; reason: string }> {
    try {
      await this.metadata(topics);
      return { up: true };
    } catch (err) {
      // an answer with an error (request_failed, unknown_topic) is an answer
      if (!(err instanceof BrokerFailure)) return { up: true };
      // a fresh connection next time: nothing of a failed one is kept
      await this.close();
      return { up: false, reason: (err as Error).message };
    }
  }

  /** Every topic of the cluster (internal ones left out). */
  async topics(): Promise<Set<string>> {
    return new Set(await this.#request('listing topics', (admin) => admin.listTopics({ includeInternals: false })));
  }

  /** Log start and end offset of every partition of `topic`, by partition; `conveyor.kafka.unknown_topic` when it does not exist. */
  async topicOffsets(topic: string): Promise<Watermarks[]> {
    const partitions = await this.#partitionsOf(topic);
    const [low, high] = await Promise.all([this.#listOffsets(topic, partitions, EARLIEST), this.#listOffsets(topic, partitions, LATEST)]);
    return partitions.map((partition) => ({ partition, low: low.get(partition) ?? 0n, high: high.get(partition) ?? 0n }));
  }

  /** Partitions each topic has now; 0 for a topic that does not exist. */
  async partitionCounts(topics: readonly string[]): Promise<Map<string, number>> {
    const metadata = await this.metadata(topics);
    return new Map(topics.map((t) => [t, metadata.topics.get(t)?.partitionsCount ?? 0]));
  }

  /** The end offset (the offset the next message gets) of each given partition of `topic`. */
  async endOffsets(topic: string, partitions: readonly number[]): Promise<Map<number, bigint>> {
    return this.#listOffsets(topic, partitions, LATEST);
  }

  /** Per partition: the first offset whose timestamp is at or after `timeMs`, or the end offset when none is. */
  async offsetsByTimestamp(topic: string, timeMs: number): Promise<Map<number, bigint>> {
    const partitions = await this.#partitionsOf(topic);
    const [at, high] = await Promise.all([this.#listOffsets(topic, partitions, BigInt(timeMs)), this.#listOffsets(topic, partitions, LATEST)]);
    return new Map(partitions.map((p) => {
      const offset = at.get(p);
      return [p, offset === undefined || offset < 0n ? (high.get(p) ?? 0n) : offset];
    }));
  }

  /**
   * The group's committed offsets, per topic and partition; only partitions with a committed offset appear. With
   * `topics`, only those. A group the cluster has never seen (or a fresh cluster) has none: an empty map.
   */
  async committedOffsets(group: string, topics?: readonly string[]): Promise<Map<string, Map<number, bigint>>> {
    const positions = await this.committedPositions(group, topics);
    return new Map([...positions].map(([topic, byPartition]) => [topic, new Map([...byPartition].map(([partition, { offset }]) => [partition, offset]))]));
  }

  /** As committedOffsets, each with the metadata committed along with it (absent when none: null or empty). */
  async committedPositions(group: string, topics?: readonly string[]): Promise<Map<string, Map<number, CommittedPosition>>> {
    const [answer] = await this.#request(`reading the committed offsets of group ${group}`, (admin) => admin.listConsumerGroupOffsets({ groups: [group] }));
    const wanted = topics ? new Set(topics) : undefined;
    const result = new Map<string, Map<number, CommittedPosition>>();
    for (const t of answer?.topics ?? []) {
      if (wanted && !wanted.has(t.name)) continue;
      for (const p of t.partitions) {
        if (p.committedOffset < 0n) continue;
        let byPartition = result.get(t.name);
        if (!byPartition) result.set(t.name, (byPartition = new Map()));
        byPartition.set(p.partitionIndex, p.metadata ? { offset: p.committedOffset, metadata: p.metadata } : { offset: p.committedOffset });
      }
    }
    return result;
  }

  /** The group's state and members; a group the cluster has never seen is `Dead` with no members. */
  async describeGroup(group: string): Promise<GroupDescription> {
    const groups = await this.#request(`describing group ${group}`, (admin) => admin.describeGroups({ groups: [group] }));
    const described = groups.get(group);
    if (described && described.state.toUpperCase() !== 'DEAD') {
      return {
        group,
        state: described.state,
        members: [...described.members.values()].map((m) => ({
          memberId: m.id,
          clientId: m.clientId,
          host: m.clientHost,
          ...(m.groupInstanceId ? { instanceId: m.groupInstanceId } : {}),
        })),
      };
    }
    // DescribeGroups knows classic groups only: a KIP-848 consumer group (group.protocol=consumer) reads as dead
    // there, so ask its coordinator with ConsumerGroupDescribe (KIP-848's API, which the client's Admin lacks)
    const consumerGroup = await this.#request(`describing consumer group ${group}`, async (admin) => {
      const [coordinator] = await admin.findCoordinator({ keyType: FindCoordinatorKeyTypes.GROUP, keys: [group] });
      if (!coordinator) return undefined;
      const connection = await new Promise<Connection>((resolve, reject) =>
        admin[kGetConnection]({ host: coordinator.host, port: coordinator.port }, (err, c) => (err || !c ? reject(err ?? new Error('no connection')) : resolve(c))),
      );
      const response = await consumerGroupDescribeV0.api.async(connection, [group], false).catch(() => undefined);
      return response?.groups.find((g) => g.groupId === group && g.errorCode === 0);
    });
    if (!consumerGroup) return { group, state: described?.state ?? 'DEAD', members: [] };
    return {
      group,
      state: consumerGroup.groupState,
      members: consumerGroup.members.map((m) => ({
        memberId: m.memberId,
        clientId: m.clientId,
        host: m.clientHost,
        ...(m.instanceId ? { instanceId: m.instanceId } : {}),
      })),
    };
  }

  /** Ids and states of the cluster's consumer groups. */
  async listGroups(): Promise<Map<string, string>> {
    const groups = await this.#request('listing consumer groups', (admin) => admin.listGroups());
    return new Map([...groups.values()].map((g) => [g.id, g.state]));
  }

  /**
   * Commits these offsets for `group` from outside it (no generation, no member). Check that the group has no
   * members first: its members would overwrite them. A broker that refuses because members joined meanwhile
   * (UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION, REBALANCE_IN_PROGRESS) makes `events.group.active`.
   */
  async alterGroupOffsets(group: string, offsets: readonly TopicPartitionOffset[]): Promise<void> {
    const byTopic = new Map<string, Array<{ partition: number; offset: bigint }>>();
    for (const o of offsets) {
      const list = byTopic.get(o.topic) ?? [];
      list.push({ partition: o.partition, offset: o.offset });
      byTopic.set(o.topic, list);
    }
    try {
      await this.#request(`committing offsets for group ${group}`, (admin) =>
        admin.alterConsumerGroupOffsets({ groupId: group, topics: [...byTopic].map(([name, partitionOffsets]) => ({ name, partitionOffsets })) }),
      );
    } catch (err) {
      const names = brokerErrorNames((err as { cause?: unknown }).cause);
      if (names.has('UNKNOWN_MEMBER_ID') || names.has('ILLEGAL_GENERATION') || names.has('REBALANCE_IN_PROGRESS')) {
        throw new ConveyorError('events.group.active', `group ${group} refused the new offsets: it has members now. Stop its consumers, then run this again.`, {
          context: { group },
          cause: err,
        });
      }
      throw err;
    }
  }

  /** Creates `topic` unless it exists (then false); `configs`: topic configuration entries (e.g. cleanup.policy). */
  async createTopic(topic: string, partitions: number, configs: Readonly<Record<string, string>> = {}): Promise<boolean> {
    try {
      await this.#request(`creating topic ${topic}`, (admin) =>
        admin.createTopics({ topics: [topic], partitions, replicas: -1, configs: Object.entries(configs).map(([name, value]) => ({ name, value })) }),
      );
      return true;
    } catch (err) {
      if (brokerErrorNames((err as { cause?: unknown }).cause).has('TOPIC_ALREADY_EXISTS')) return false;
      throw err;
    }
  }

  /** `topic`'s max.message.bytes (what the broker accepts per record batch); undefined when it has no valid value. */
  async maxMessageBytes(topic: string): Promise<number | undefined> {
    const [description] = await this.#request(`reading the configuration of ${topic}`, (admin) =>
      admin.describeConfigs({ resources: [{ resourceType: ConfigResourceTypes.TOPIC, resourceName: topic, configurationKeys: ['max.message.bytes'] }] }),
    );
    const value = description?.configs.find((c) => c.name === 'max.message.bytes')?.value;
    const bytes = value === null || value === undefined ? NaN : Number(value);
    return Number.isSafeInteger(bytes) && bytes > 0 ? bytes : undefined;
  }

  /** Deletes these topics (tests, tools). */
  async deleteTopics(topics: readonly string[]): Promise<void> {
    if (topics.length === 0) return;
    await this.#request(`deleting topics ${topics.join(', ')}`, (admin) => admin.deleteTopics({ topics: [...topics] }));
  }

  /** Deletes the records of `topic`'s `partition` before `offset` (its log then starts there). */
  async deleteRecords(topic: string, partition: number, offset: bigint): Promise<void> {
    await this.#request(`deleting records of ${topic}`, (admin) => admin.deleteRecords({ topics: [{ name: topic, partitions: [{ partition, offset }] }] }));
  }

  /**
   * Reads each range of `topic`, calling `onRecord` for every record in it, partitions interleaved, each in offset
   * order; `onRecord` returning false ends the read of that record's partition. `onProgress` gets the number of offsets covered so far. Fetch requests to the partitions' leaders: no
   * group is joined. Offsets that no longer exist (deleted meanwhile) are skipped; a range ends at the partition's
   * end when that comes first. Fails with BrokerFailure when a round of reads gets no answer within `timeoutMs`.
   */
  async read(topic: string, ranges: readonly PartitionRange[], onRecord: (record: StoredRecord) => boolean | void, onProgress?: (covered: number) => void): Promise<void> {
    const open = ranges.filter((r) => r.from < r.to);
    if (open.length === 0) return;
    const next = new Map(open.map((r) => [r.partition, r.from]));
    const covered = (): number => open.reduce((n, r) => n + Number((next.get(r.partition) ?? r.to) - r.from), 0);
    let progressAt = Date.now();
    let lastCovered = -1;
    while (next.size > 0) {
      const now = covered();
      if (now !== lastCovered) {
        lastCovered = now;
        progressAt = Date.now();
      } else if (Date.now() - progressAt > this.timeoutMs) {
        throw this.#unavailable(`reading ${topic}`, new Error(`no records for ${this.timeoutMs} ms with partitions ${[...next.keys()].join(', ')} not read to their end`));
      }
      const metadata = await this.metadata([topic]);
      const described = metadata.topics.get(topic);
      if (!described) throw this.#unknownTopic(topic);
      // one Fetch per leader, each partition from where it got to
      const byLeader = new Map<number, number[]>();
      for (const partition of next.keys()) {
        const leader = described.partitions[partition]?.leader;
        if (leader === undefined) throw new ConveyorError('conveyor.kafka.unknown_partition', `${topic} has no partition ${partition}`, { context: { topic } });
        byLeader.set(leader, [...(byLeader.get(leader) ?? []), partition]);
      }
      for (const [leader, partitions] of byLeader) {
        let response: Awaited<ReturnType<Consumer['fetch']>>;
        try {
          response = await this.#readerRequest(`reading ${topic}`, (reader) =>
            reader.fetch({
              node: leader,
              maxWaitTime: 100,
              minBytes: 1,
              maxBytes: 4 * 1024 * 1024,
              isolationLevel: FetchIsolationLevels.READ_UNCOMMITTED,
              topics: [
                {
                  topicId: described.id,
                  partitions: partitions.map((partition) => ({
                    partition,
                    fetchOffset: next.get(partition)!,
                    currentLeaderEpoch: -1,
                    lastFetchedEpoch: -1,
                    partitionMaxBytes: 1024 * 1024,
                  })),
                },
              ],
            }),
          );
        } catch (err) {
          // records deleted meanwhile (retention, deleteRecords): go on from where the partitions start now
          if (!brokerErrorNames((err as { cause?: unknown }).cause).has('OFFSET_OUT_OF_RANGE')) throw err;
          for (const w of await this.topicOffsets(topic)) {
            const at = next.get(w.partition);
            const range = open.find((r) => r.partition === w.partition);
            if (at === undefined || !range) continue;
            const from = maxBig(at, w.low);
            if (from >= range.to || from >= w.high) next.delete(w.partition);
            else next.set(w.partition, from);
          }
          continue;
        }
        for (const answer of response.responses.flatMap((t) => t.partitions)) {
          const partition = answer.partitionIndex;
          const range = open.find((r) => r.partition === partition);
          const from = next.get(partition);
          if (!range || from === undefined) continue;
          let reached = from;
          let done = false;
          for (const batch of answer.records ?? []) {
            if (done) break;
            // control batches (transaction markers) hold no messages
            if ((batch.attributes & 0x20) !== 0) {
              reached = maxBig(reached, batch.firstOffset + BigInt(batch.lastOffsetDelta) + 1n);
              continue;
            }
            for (const record of batch.records) {
              const offset = batch.firstOffset + BigInt(record.offsetDelta);
              if (offset < from || offset >= range.to) continue;
              const more = onRecord({
                topic,
                partition,
                offset,
                key: record.key ?? null,
                value: record.value ?? null,
                headers: record.headers.map(([k, v]) => [k?.toString('utf8') ?? '', v] as const),
                timestamp: Number(batch.firstTimestamp + record.timestampDelta),
              });
              if (more === false) {
                done = true;
                break;
              }
            }
            reached = maxBig(reached, batch.firstOffset + BigInt(batch.lastOffsetDelta) + 1n);
          }
          // what the partition still holds: records before its start were deleted, none exist at or after its end
          if (reached < answer.logStartOffset) reached = answer.logStartOffset;
          if (done || reached >= range.to || reached >= answer.highWatermark) next.delete(partition);
          else next.set(partition, reached);
        }
      }
      onProgress?.(covered());
    }
  }

  async close(): Promise<void> {
    const client = this.#client;
    const reader = this.#reader;
    this.#client = undefined;
    this.#reader = undefined;
    await Promise.all([client?.close().catch(() => {}), reader?.close().catch(() => {})]);
  }

  /** The partition numbers of `topic`, from fresh metadata. */
  async #partitionsOf(topic: string): Promise<number[]> {
    const metadata = await this.metadata([topic]).catch((err: unknown) => {
      if (brokerErrorNames((err as { cause?: unknown }).cause).has('UNKNOWN_TOPIC_OR_PARTITION')) throw this.#unknownTopic(topic);
      throw err;
    });
    const described = metadata.topics.get(topic);
    if (!described) throw this.#unknownTopic(topic);
    return Array.from({ length: described.partitionsCount }, (_, i) => i);
  }

  async #listOffsets(topic: string, partitions: readonly number[], timestamp: bigint): Promise<Map<number, bigint>> {
    const answer = await this.#request(`reading the offsets of ${topic}`, (admin) =>
      admin.listOffsets({
        topics: [{ name: topic, partitions: partitions.map((partitionIndex) => ({ partitionIndex, timestamp })) }],
        isolationLevel: FetchIsolationLevels.READ_UNCOMMITTED,
      }),
    );
    return new Map(answer.flatMap((t) => t.partitions.map((p) => [p.partitionIndex, p.offset] as const)));
  }

  #unknownTopic(topic: string): ConveyorError {
    return new ConveyorError('conveyor.kafka.unknown_topic', `topic ${topic} does not exist on Kafka at ${this.#where}`, { context: { topic } });
  }

  #platformaticOptions(): AdminClientOptions {
    if (!this.#clientOptions) {
      const options = platformaticOptions(this.#options.brokers, this.#options.clientId, this.#options.security ?? {}, this.timeoutMs, (path) => readFileSync(path));
      // The client retries a connection the broker refused at login or in the TLS handshake like any lost one (its
      // network error wraps the refusal): every attempt's error passes through here, so a refusal fails the
      // pending calls at once instead of after timeoutMs.
      const retryDelay: RetryDelayGetter = (_client, _operation, _attempt, _retries, error) => {
        const kind = classifyAdminError(error);
        if (kind === 'authentication' || kind === 'tls') for (const fail of [...this.#pending]) fail(error);
        return options.retryDelay;
      };
      this.#clientOptions = { ...options, retryDelay };
    }
    return this.#clientOptions!;
  }

  #request<T>(what: string, call: (admin: Admin) => Promise<T>): Promise<T> {
    return this.#bounded(what, () => call((this.#client ??= new Admin(this.#platformaticOptions()))));
  }

  #readerRequest<T>(what: string, call: (reader: Consumer) => Promise<T>): Promise<T> {
    // a consumer only for its Fetch request: never consume()d, so it never joins its (unused) group
    return this.#bounded(what, () => call((this.#reader ??= new Consumer({ ...this.#platformaticOptions(), groupId: `conveyor.admin-reader.${process.pid}` }))));
  }

  async #bounded<T>(what: string, call: () => Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    let refused: ((refusal: unknown) => void) | undefined;
    try {
      return await Promise.race([
        call(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(this.#unavailable(what, new Error(`no answer within ${this.timeoutMs} ms`))), this.timeoutMs);
          refused = reject;
          this.#pending.add(reject);
        }),
      ]);
    } catch (err) {
      throw this.#failure(what, err);
    } finally {
      clearTimeout(timer);
      if (refused) this.#pending.delete(refused);
    }
  }

  #failure(what: string, err: unknown): ConveyorError {
    if (err instanceof ConveyorError) return err;
    const kind = classifyAdminError(err);
    if (kind === 'unreachable') return this.#unavailable(what, err);
    if (kind === 'authentication' || kind === 'tls') {
      const security = this.#options.security ?? {};
      return new KafkaSecurityFailure(
        { kind, detail: refusalDetail(err) },
        {
          brokers: this.#where,
          securityProtocol: security['security.protocol'] ?? 'plaintext',
          ...(security['sasl.mechanisms'] ? { saslMechanism: security['sasl.mechanisms'] } : {}),
          ...(security['sasl.username'] ? { saslUsername: security['sasl.username'] } : {}),
        },
      );
    }
    return new ConveyorError('conveyor.kafka.request_failed', `${what}: Kafka at ${this.#where} answered with an error: ${describeAdminError(err)}`, { cause: err });
  }

  #unavailable(what: string, err: unknown): BrokerFailure {
    return new BrokerFailure(
      `Kafka at ${this.#where} did not answer within ${this.timeoutMs / 1000} s (${what}: ${describeAdminError(err)}). Check kafka.bootstrapServers ` +
        '(KAFKA_BOOTSTRAP_SERVERS) and that the brokers are up; KAFKA_TIMEOUT_SECONDS sets how long to wait.',
      { cause: err },
    );
  }
}

function maxBig(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}
