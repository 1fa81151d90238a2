import { afterEach, describe, expect, it } from 'vitest';
import { Instrumentation } from '../../src/lanes/instrumentation.ts';
import type { CircuitStateName } from '../../src/publish/circuit-breaker.ts';
import { ConveyorMetrics, type MetricsReadings } from '../../src/ops/metrics.ts';
import { metricValue as value } from '../support/ops-http.ts';

const event = { handler: 'orders', group: 'prod.orders', topic: 'shop.orders', partition: 1, offset: '10' };

interface State {
  lanes: Array<{ handler: string; topic: string; partition: number; depth: number }>;
  pool: ReturnType<MetricsReadings['pool']>;
  circuits: Array<{ broker: string; state: CircuitStateName }>;
  brokers: Array<{ broker: string; up: boolean | undefined }>;
  assignments: Array<{ group: string; partitions: number }>;
}

describe('metrics', () => {
  let metrics: ConveyorMetrics | undefined;
  afterEach(() => metrics?.close());

  function setUp(state: Partial<State> = {}, defaultMetrics = false): { events: Instrumentation; state: State } {
    const events = new Instrumentation();
    const s: State = { lanes: [], pool: undefined, circuits: [], brokers: [], assignments: [], ...state };
    metrics = new ConveyorMetrics(events, {
      handlers: [{ name: 'orders', topics: ['shop.orders'] }, { name: 'receipts', topics: ['shop.receipts'] }],
      readings: { lanes: () => s.lanes, pool: () => s.pool, circuits: () => s.circuits, brokers: () => s.brokers, assignments: () => s.assignments },
      defaultMetrics,
    });
    return { events, state: s };
  }

  it('exports every Kafka group at lag level 0 (ok) and no commit failures from the start, before any measurement', async () => {
    const events = new Instrumentation();
    metrics = new ConveyorMetrics(events, {
      handlers: [{ name: 'orders', topics: ['shop.orders'], group: 'prod.orders' }, { name: 'mail', topics: ['mail.queue'] }],
      readings: { lanes: () => [], pool: () => undefined, circuits: () => [], brokers: () => [], assignments: () => [] },
      defaultMetrics: false,
    });
    let text = await metrics.metrics();
    expect(value(text, 'conveyor_consumer_lag_level{group="prod.orders"}')).toBe(0);
    expect(value(text, 'conveyor_offset_commit_failures_total{group="prod.orders"}')).toBe(0);
    expect(text).not.toMatch(/conveyor_consumer_lag_level\{group="mail/);
    events.emit('lag.level_changed', { group: 'prod.orders', level: 'warning', previous: 'ok', lag: 20_000, lagSeconds: 400, suppressed: false });
    events.emit('offsets.commit_failed', { group: 'prod.orders', offsets: [], reason: 'no answer', timedOut: true });
    text = await metrics.metrics();
    expect(value(text, 'conveyor_consumer_lag_level{group="prod.orders"}')).toBe(2);
    expect(value(text, 'conveyor_offset_commit_failures_total{group="prod.orders"}')).toBe(1);
  });

  it('counts messages skipped as completed before a restart, and commits whose completed offsets did not fit, from zero', async () => {
    const events = new Instrumentation();
    metrics = new ConveyorMetrics(events, {
      handlers: [{ name: 'orders', topics: ['shop.orders'], group: 'prod.orders' }, { name: 'mail', topics: ['mail.queue'] }],
      readings: { lanes: () => [], pool: () => undefined, circuits: () => [], brokers: () => [], assignments: () => [] },
      defaultMetrics: false,
    });
    const skipped = 'conveyor_messages_skipped_total{handler="orders",topic="shop.orders",reason="completed_before_restart"}';
    let text = await metrics.metrics();
    expect(value(text, skipped)).toBe(0);
    expect(value(text, 'conveyor_offset_metadata_overflow_total{group="prod.orders"}')).toBe(0);
    expect(text).not.toMatch(/conveyor_messages_skipped_total\{handler="mail"/); // a queue has no commit metadata
    events.emit('messages.skipped', { handler: 'orders', group: 'prod.orders', topic: 'shop.orders', partition: 0, count: 3, reason: 'completed_before_restart' });
    events.emit('messages.skipped', { handler: 'orders', group: 'prod.orders', topic: 'shop.orders', partition: 1, count: 2, reason: 'completed_before_restart' });
    events.emit('offsets.metadata_overflow', { group: 'prod.orders', topic: 'shop.orders', partition: 0, completedAhead: 90_000 });
    text = await metrics.metrics();
    expect(value(text, skipped)).toBe(5);
    expect(value(text, 'conveyor_offset_metadata_overflow_total{group="prod.orders"}')).toBe(1);
  });

  it("counts handled messages and puts each message's handler time in the duration histogram", async () => {
    const { events } = setUp();
    events.emit('messages.handled', { ...event, count: 3, lastOffset: '12', durationMs: 50, durationsMs: new Float64Array([0.2, 3, 40]) });
    events.emit('messages.handled', { ...event, count: 1, lastOffset: '13', durationMs: 2, durationsMs: new Float64Array([1.5, 99]) });
    const text = await metrics!.metrics();
    expect(value(text, 'conveyor_messages_total{handler="orders",topic="shop.orders",result="ok"}')).toBe(4);
    expect(value(text, 'conveyor_handler_duration_seconds_count{handler="orders",topic="shop.orders"}')).toBe(4);
    expect(value(text, 'conveyor_handler_duration_seconds_sum{handler="orders",topic="shop.orders"}')).toBeCloseTo(0.0447, 6);
    // 0.2 ms ≤ 0.5 ms; 1.5 ms and 3 ms ≤ 5 ms; 40 ms ≤ 50 ms
    expect(value(text, 'conveyor_handler_duration_seconds_bucket{le="0.0005",handler="orders",topic="shop.orders"}')).toBe(1);
    expect(value(text, 'conveyor_handler_duration_seconds_bucket{le="0.005",handler="orders",topic="shop.orders"}')).toBe(3);
    expect(value(text, 'conveyor_handler_duration_seconds_bucket{le="0.025",handler="orders",topic="shop.orders"}')).toBe(3);
    expect(value(text, 'conveyor_handler_duration_seconds_bucket{le="0.05",handler="orders",topic="shop.orders"}')).toBe(4);
  });

  it("falls back to the batch's mean time per message when the worker gave no per-message times", async () => {
    const { events } = setUp();
    events.emit('messages.handled', { ...event, count: 4, lastOffset: '13', durationMs: 8 });
    const text = await metrics!.metrics();
    expect(value(text, 'conveyor_handler_duration_seconds_count{handler="orders",topic="shop.orders"}')).toBe(4);
    expect(value(text, 'conveyor_handler_duration_seconds_bucket{le="0.001",handler="orders",topic="shop.orders"}')).toBe(0);
    expect(value(text, 'conveyor_handler_duration_seconds_bucket{le="0.0025",handler="orders",topic="shop.orders"}')).toBe(4);
  });

  it('starts every handler\'s outcomes at zero, so that rate() works from the first scrape', async () => {
    setUp();
    const text = await metrics!.metrics();
    for (const result of ['ok', 'retried', 'dead_lettered']) {
      expect(value(text, `conveyor_messages_total{handler="receipts",topic="shop.receipts",result="${result}"}`)).toBe(0);
    }
    expect(value(text, 'conveyor_handler_duration_seconds_count{handler="receipts",topic="shop.receipts"}')).toBe(0);
    expect(value(text, 'conveyor_in_flight_messages{handler="receipts"}')).toBe(0);
  });

  it('counts retries by error class, dead letters by class and type, and failed dead-letter publishes', async () => {
    const { events } = setUp();
    const failure = { attempt: 1, delayMs: 10, reason: 'boom' };
    events.emit('message.retry', { ...event, ...failure, errorClass: 'ReceiverError', errorType: 'Error' });
    events.emit('message.retry', { ...event, ...failure, attempt: 2, errorClass: 'ReceiverError', errorType: 'Error' });
    events.emit('message.retry', { ...event, ...failure, errorClass: 'RuntimeFailure', errorType: 'HandlerTimeout' });
    events.emit('dead_letter.publish_failed', { ...event, deadLetterTopic: 'shop.orders.dlq', attempt: 1, reason: 'down' });
    events.emit('message.dead_lettered', { ...event, deadLetterTopic: 'shop.orders.dlq', retryCount: 2, errorClass: 'ReceiverError', errorType: 'Error' });
    events.emit('message.dead_lettered', { ...event, deadLetterTopic: 'shop.orders.dlq', retryCount: 0, errorClass: 'ReceiverError', errorType: 'NonRetryableError' });
    const text = await metrics!.metrics();
    expect(value(text, 'conveyor_messages_total{handler="orders",topic="shop.orders",result="retried"}')).toBe(3);
    expect(value(text, 'conveyor_messages_total{handler="orders",topic="shop.orders",result="dead_lettered"}')).toBe(2);
    expect(value(text, 'conveyor_retries_total{handler="orders",topic="shop.orders",error_class="ReceiverError"}')).toBe(2);
    expect(value(text, 'conveyor_retries_total{handler="orders",topic="shop.orders",error_class="RuntimeFailure"}')).toBe(1);
    expect(value(text, 'conveyor_dead_letters_total{handler="orders",topic="shop.orders",error_class="ReceiverError",error_type="Error"}')).toBe(1);
    expect(value(text, 'conveyor_dead_letters_total{handler="orders",topic="shop.orders",error_class="ReceiverError",error_type="NonRetryableError"}')).toBe(1);
    expect(value(text, 'conveyor_dead_letter_publish_failures_total{handler="orders",topic="shop.orders"}')).toBe(1);
  });

  it('counts rebalances by kind and committed partition offsets per group', async () => {
    const { events } = setUp();
    events.emit('partitions.assigned', { group: 'prod.orders', partitions: [{ topic: 'shop.orders', partition: 0 }] });
    events.emit('partitions.assigned', { group: 'prod.orders', partitions: [] });
    events.emit('partitions.revoked', { group: 'prod.orders', partitions: [{ topic: 'shop.orders', partition: 0 }] });
    events.emit('offsets.committed', { group: 'prod.orders', offsets: [{ topic: 'shop.orders', partition: 0, offset: '5' }, { topic: 'shop.orders', partition: 1, offset: '7' }] });
    const text = await metrics!.metrics();
    expect(value(text, 'conveyor_rebalances_total{group="prod.orders",kind="assigned"}')).toBe(2);
    expect(value(text, 'conveyor_rebalances_total{group="prod.orders",kind="revoked"}')).toBe(1);
    expect(value(text, 'conveyor_offsets_committed_total{group="prod.orders"}')).toBe(2);
  });

  it("turns the lag monitor's events into lag gauges (messages, seconds) per partition and a level per group", async () => {
    const { events } = setUp();
    events.emit('lag.sampled', { group: 'prod.orders', topic: 'shop.orders', partition: 2, lag: 12_000, lagSeconds: 95.5 });
    events.emit('lag.sampled', { group: 'prod.orders', topic: 'shop.orders', partition: 2, lag: 11_000, lagSeconds: 80 });
    events.emit('lag.level_changed', { group: 'prod.orders', level: 'warning', previous: 'info', lag: 11_000, lagSeconds: 80, suppressed: false });
    let text = await metrics!.metrics();
    expect(value(text, 'conveyor_consumer_lag{group="prod.orders",topic="shop.orders",partition="2"}')).toBe(11_000);
    expect(value(text, 'conveyor_consumer_lag_seconds{group="prod.orders",topic="shop.orders",partition="2"}')).toBe(80);
    expect(value(text, 'conveyor_consumer_lag_level{group="prod.orders"}')).toBe(2);
    events.emit('lag.level_changed', { group: 'prod.orders', level: 'critical', previous: 'warning', lag: 50_000, lagSeconds: 1000, suppressed: false });
    text = await metrics!.metrics();
    expect(value(text, 'conveyor_consumer_lag_level{group="prod.orders"}')).toBe(3);
  });

  it('reads lanes, pool, circuits, brokers and assignments at scrape time, dropping what is gone', async () => {
    const { state } = setUp({
      lanes: [
        { handler: 'orders', topic: 'shop.orders', partition: 0, depth: 7 },
        { handler: 'orders', topic: 'shop.orders', partition: 1, depth: 0 },
        // a RabbitMQ queue with concurrency 2: two lanes, one series
        { handler: 'receipts', topic: 'shop.receipts', partition: -1, depth: 2 },
        { handler: 'receipts', topic: 'shop.receipts', partition: -1, depth: 3 },
      ],
      pool: { size: 4, threads: 4, busy: 3, inFlight: new Map([['orders', 40]]), replaced: { crash: 1, timeout: 2 }, lateFailures: [{ handler: 'orders', kind: 'unhandled_rejection', count: 1 }] },
      circuits: [{ broker: 'kafka', state: 'closed' }, { broker: 'rabbitmq', state: 'open' }],
      brokers: [{ broker: 'kafka', up: true }, { broker: 'rabbitmq', up: false }],
      assignments: [{ group: 'prod.orders', partitions: 2 }],
    });
    let text = await metrics!.metrics();
    expect(value(text, 'conveyor_lane_queue_depth{handler="orders",topic="shop.orders",partition="0"}')).toBe(7);
    expect(value(text, 'conveyor_lane_queue_depth{handler="orders",topic="shop.orders",partition="1"}')).toBe(0);
    expect(value(text, 'conveyor_lane_queue_depth{handler="receipts",topic="shop.receipts",partition="-1"}')).toBe(5);
    expect(value(text, 'conveyor_in_flight_messages{handler="orders"}')).toBe(40);
    expect(value(text, 'conveyor_pool_utilization')).toBe(0.75);
    expect(value(text, 'conveyor_pool_threads')).toBe(4);
    expect(value(text, 'conveyor_worker_replacements_total{reason="crash"}')).toBe(1);
    expect(value(text, 'conveyor_worker_replacements_total{reason="timeout"}')).toBe(2);
    expect(value(text, 'conveyor_worker_late_failures_total{handler="orders",kind="unhandled_rejection"}')).toBe(1);
    expect(value(text, 'conveyor_worker_late_failures_total{handler="orders",kind="uncaught_exception"}'), 'every handler and kind from zero').toBe(0);
    expect(value(text, 'conveyor_publish_circuit_state{broker="kafka"}')).toBe(0);
    expect(value(text, 'conveyor_publish_circuit_state{broker="rabbitmq"}')).toBe(2);
    expect(value(text, 'conveyor_broker_up{broker="kafka"}')).toBe(1);
    expect(value(text, 'conveyor_broker_up{broker="rabbitmq"}')).toBe(0);
    expect(value(text, 'conveyor_assigned_partitions{group="prod.orders"}')).toBe(2);

    state.lanes = [{ handler: 'orders', topic: 'shop.orders', partition: 1, depth: 4 }]; // partition 0 revoked
    state.pool = { size: 4, threads: 4, busy: 0, inFlight: new Map(), replaced: { crash: 1, timeout: 2 } };
    state.circuits = [{ broker: 'kafka', state: 'half_open' }, { broker: 'rabbitmq', state: 'closed' }];
    state.brokers = [{ broker: 'kafka', up: undefined }];
    text = await metrics!.metrics();
    expect(value(text, 'conveyor_lane_queue_depth{handler="orders",topic="shop.orders",partition="0"}')).toBeUndefined();
    expect(value(text, 'conveyor_lane_queue_depth{handler="orders",topic="shop.orders",partition="1"}')).toBe(4);
    expect(value(text, 'conveyor_in_flight_messages{handler="orders"}')).toBe(0);
    expect(value(text, 'conveyor_pool_utilization')).toBe(0);
    expect(value(text, 'conveyor_publish_circuit_state{broker="kafka"}')).toBe(1);
    expect(value(text, 'conveyor_broker_up{broker="kafka"}'), 'not known yet: no series rather than a guess').toBeUndefined();
  });

  it('includes the process and Node.js default metrics without a prefix', async () => {
    setUp({}, true);
    const text = await metrics!.metrics();
    expect(text).toMatch(/^process_cpu_user_seconds_total \d/m);
    expect(text).toMatch(/^process_resident_memory_bytes \d/m);
    expect(text).toMatch(/^nodejs_eventloop_lag_seconds \d/m);
    expect(text).toMatch(/^nodejs_heap_size_used_bytes \d/m);
    expect(metrics!.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    // a second runtime in the same process shares them (their collectors are installed once)
    const second = new ConveyorMetrics(new Instrumentation(), { handlers: [], readings: { lanes: () => [], pool: () => undefined, circuits: () => [], brokers: () => [], assignments: () => [] } });
    expect(await second.metrics()).toMatch(/^process_resident_memory_bytes \d/m);
    second.close();
  });

  it('stops counting once closed', async () => {
    const { events } = setUp();
    metrics!.close();
    events.emit('messages.handled', { ...event, count: 3, lastOffset: '12', durationMs: 5 });
    expect(value(await metrics!.metrics(), 'conveyor_messages_total{handler="orders",topic="shop.orders",result="ok"}')).toBe(0);
  });
});
