/**
 * Health decisions, pure: readiness and seed 001's event-bus health from a snapshot of the runtime's state. The
 * runtime takes the snapshot (runtime.ts, `Runtime.health()`); the ops server only serves what these return.
 */
import type { CircuitStateName } from '../publish/circuit-breaker.ts';

export interface KafkaSourceHealth {
  readonly handler: string;
  readonly group: string;
  readonly topics: readonly string[];
  /** The consumer's connect() resolved. */
  readonly connected: boolean;
  /**
   * The first rebalance of the group completed for this member, even with an empty assignment (a group with more
   * members than partitions leaves some members without partitions; they are still ready).
   */
  readonly assigned: boolean;
  /** Partitions this member owns now. */
  readonly partitions: number;
}

export interface RabbitSourceHealth {
  readonly handler: string;
  readonly queue: string;
  /** Topology declared and the consumer registered on a live channel. */
  readonly consuming: boolean;
}

export interface BrokerReachability {
  /** undefined: not known yet (the first check has not finished). */
  readonly up: boolean | undefined;
  /** Why the last check failed (no secrets: never a URL with credentials). */
  readonly reason?: string | undefined;
}

export interface HealthSnapshot {
  /** Runtime.start() finished connecting every source. */
  readonly started: boolean;
  /** Runtime.stop() was called. */
  readonly stopping: boolean;
  /** Present when a handler consumes from Kafka. */
  readonly kafka?: BrokerReachability & { readonly sources: readonly KafkaSourceHealth[] } | undefined;
  /** Present when a handler consumes from RabbitMQ. */
  readonly rabbitmq?: BrokerReachability & { readonly sources: readonly RabbitSourceHealth[] } | undefined;
  /** Publish circuit breakers (events published by handlers and applications). */
  readonly circuits: { readonly kafka: CircuitStateName; readonly rabbitmq: CircuitStateName };
}

export interface Readiness {
  readonly ready: boolean;
  /** Why not ready, one line each; empty when ready. */
  readonly reasons: readonly string[];
}

/**
 * Ready when started, not stopping, every Kafka source connected and through its first assignment, every RabbitMQ
 * source consuming, and no broker that a handler consumes from is known to be unreachable.
 */
export function readiness(s: HealthSnapshot): Readiness {
  const reasons: string[] = [];
  if (s.stopping) reasons.push('shutting down');
  else if (!s.started) reasons.push('starting: not every consumer is connected yet');
  if (s.kafka) {
    if (s.kafka.up === false) reasons.push(`Kafka unreachable${s.kafka.reason ? `: ${s.kafka.reason}` : ''}`);
    for (const k of s.kafka.sources) {
      if (!k.connected) reasons.push(`handler ${k.handler}: Kafka consumer (group ${k.group}) not connected`);
      else if (!k.assigned) reasons.push(`handler ${k.handler}: waiting for the first partition assignment of group ${k.group}`);
    }
  }
  if (s.rabbitmq) {
    if (s.rabbitmq.up === false) reasons.push(`RabbitMQ unreachable${s.rabbitmq.reason ? `: ${s.rabbitmq.reason}` : ''}`);
    for (const r of s.rabbitmq.sources) {
      if (!r.consuming) reasons.push(`handler ${r.handler}: RabbitMQ consumer of queue ${r.queue} not set up`);
    }
  }
  return { ready: reasons.length === 0, reasons };
}

/** Who this runner is, for the event-bus health (seed 001's identity fields). */
export interface EventBusIdentity {
  /** kafka.environment */
  readonly environment: string;
  /** kafka.group */
  readonly group: string;
  /** kafka.bootstrapServers (addresses only: never credentials). */
  readonly bootstrapServers: string;
  /** Handlers discovered. */
  readonly subscriberCount: number;
  /** Distinct Kafka topics and RabbitMQ queues consumed. */
  readonly topicCount: number;
}

/** Seed 001's `health_check()` fields, plus what an operator needs to see why. */
export interface EventBusHealth {
  readonly healthy: boolean;
  readonly started: boolean;
  readonly environment: string;
  readonly group: string;
  readonly bootstrap_servers: string;
  readonly circuit_state: CircuitStateName;
  readonly rabbitmq_circuit_state: CircuitStateName;
  readonly subscriber_count: number;
  readonly topic_count: number;
  /** Sources consuming now: Kafka consumers connected and assigned, RabbitMQ consumers set up. */
  readonly consumer_count: number;
  readonly assigned_partitions: number;
  readonly brokers: {
    readonly kafka?: { readonly up: boolean | null; readonly reason?: string };
    readonly rabbitmq?: { readonly up: boolean | null; readonly reason?: string };
  };
  /** Why not healthy; empty when healthy. */
  readonly reasons: readonly string[];
}

/** Healthy: ready (see `readiness`) and neither publish circuit is open. */
export function eventBusHealth(s: HealthSnapshot, identity: EventBusIdentity): EventBusHealth {
  const reasons = [...readiness(s).reasons];
  if (s.circuits.kafka === 'open') reasons.push('the Kafka publish circuit breaker is open');
  if (s.circuits.rabbitmq === 'open') reasons.push('the RabbitMQ publish circuit breaker is open');
  const kafkaSources = s.kafka?.sources ?? [];
  const rabbitSources = s.rabbitmq?.sources ?? [];
  const broker = (b: BrokerReachability) => ({ up: b.up ?? null, ...(b.up === false && b.reason ? { reason: b.reason } : {}) });
  return {
    healthy: reasons.length === 0,
    started: s.started && !s.stopping,
    environment: identity.environment,
    group: identity.group,
    bootstrap_servers: identity.bootstrapServers,
    circuit_state: s.circuits.kafka,
    rabbitmq_circuit_state: s.circuits.rabbitmq,
    subscriber_count: identity.subscriberCount,
    topic_count: identity.topicCount,
    consumer_count: kafkaSources.filter((k) => k.connected && k.assigned).length + rabbitSources.filter((r) => r.consuming).length,
    assigned_partitions: kafkaSources.reduce((n, k) => n + k.partitions, 0),
    brokers: {
      ...(s.kafka ? { kafka: broker(s.kafka) } : {}),
      ...(s.rabbitmq ? { rabbitmq: broker(s.rabbitmq) } : {}),
    },
    reasons,
  };
}
