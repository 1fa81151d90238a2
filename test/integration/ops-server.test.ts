/**
 * The ops server of `node dist/runner.js`, over real HTTP, with the runner on the real brokers: /metrics counts
 * what the recorder fixture did (handled, retried, dead-lettered by error class, handler durations), the health
 * endpoints answer as Kubernetes and seed 001 expect, and a RabbitMQ queue handler is ready once its consumer is
 * set up and not ready while its connection is cut (a TCP proxy in front of RabbitMQ).
 * The Kafka outage (the broker stopped) is in ops-readiness.test.ts.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { useKafkaFixture } from '../support/fixture.ts';
import { produce, waitFor } from '../support/kafka.ts';
import { metricValue, opsBaseUrl, opsGet } from '../support/ops-http.ts';
import { deleteQueues, openChannel, startTcpProxy, uniqueQueue, type OpenedChannel } from '../support/rabbitmq.ts';
import { readRecords, startRunner, type RunnerProcess } from '../support/runner.ts';

describe('ops server over HTTP: Kafka handler', () => {
  const fx = useKafkaFixture();

  it('counts handled, retried and dead-lettered messages by error class, times each handled message, and reports health', async () => {
    const { topic, group } = await fx.topic('ops', 3);
    const okCount = 30;
    await produce(fx.kafka, topic, [
      ...Array.from({ length: okCount }, (_, i) => ({ partition: i % 3, value: { seq: i } })),
      { partition: 0, value: { seq: 30, fail: 'always' } }, // 2 retries, then dead-lettered (ReceiverError / Error)
      { partition: 1, value: { seq: 31, fail: 'never-retry' } }, // dead-lettered at once (ReceiverError / NonRetryableError)
      { partition: 2, value: { seq: 32, fail: 'once' } }, // 1 retry, then handled
    ]);
    const runner = await fx.startRunner({ topic, group, env: { CONVEYOR_POOL_SIZE: '2' } });
    const base = opsBaseUrl(runner);
    expect(runner.logs.find((l) => l.msg === 'ops server listening')).toMatchObject({ host: '0.0.0.0' });

    const live = await opsGet(base, '/health/live');
    expect(live.status).toBe(200);
    expect(live.json).toEqual({ status: 'alive' });

    await waitFor('ready', async () => (await opsGet(base, '/health/ready')).status === 200, 30_000);
    expect((await opsGet(base, '/health/ready')).json).toEqual({ status: 'ready' });

    const series = (result: string): string => `conveyor_messages_total{handler="recorder",topic="${topic}",result="${result}"}`;
    let text = '';
    await waitFor('every message handled or dead-lettered, in the metrics', async () => {
      text = (await opsGet(base, '/metrics')).text;
      return metricValue(text, series('ok')) === okCount + 1 && metricValue(text, series('dead_lettered')) === 2;
    }, 30_000);
    await new Promise((r) => setTimeout(r, 300));
    const metrics = await opsGet(base, '/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    text = metrics.text;
    const value = (s: string): number | undefined => metricValue(text, s);

    const records = readRecords(runner.recordFile);
    expect(records.filter((r) => r.ok).length, 'the handler itself saw what the metrics say').toBe(okCount + 1);
    expect(value(series('ok'))).toBe(okCount + 1);
    expect(value(series('retried'))).toBe(3);
    expect(value(series('dead_lettered'))).toBe(2);
    expect(value(`conveyor_handler_duration_seconds_count{handler="recorder",topic="${topic}"}`)).toBe(okCount + 1);
    expect(value(`conveyor_handler_duration_seconds_bucket{le="+Inf",handler="recorder",topic="${topic}"}`)).toBe(okCount + 1);
    expect(value(`conveyor_handler_duration_seconds_sum{handler="recorder",topic="${topic}"}`)).toBeGreaterThan(0);
    expect(value(`conveyor_retries_total{handler="recorder",topic="${topic}",error_class="ReceiverError"}`)).toBe(3);
    expect(value(`conveyor_dead_letters_total{handler="recorder",topic="${topic}",error_class="ReceiverError",error_type="Error"}`)).toBe(1);
    expect(value(`conveyor_dead_letters_total{handler="recorder",topic="${topic}",error_class="ReceiverError",error_type="NonRetryableError"}`)).toBe(1);
    expect(value('conveyor_publish_circuit_state{broker="kafka"}')).toBe(0);
    expect(value('conveyor_publish_circuit_state{broker="rabbitmq"}')).toBe(0);
    expect(value('conveyor_broker_up{broker="kafka"}')).toBe(1);
    expect(value(`conveyor_assigned_partitions{group="${group}"}`)).toBe(3);
    expect(value(`conveyor_rebalances_total{group="${group}",kind="assigned"}`)).toBeGreaterThanOrEqual(1);
    expect(value(`conveyor_offsets_committed_total{group="${group}"}`)).toBeGreaterThanOrEqual(3);
    for (const p of [0, 1, 2]) expect(value(`conveyor_lane_queue_depth{handler="recorder",topic="${topic}",partition="${p}"}`)).toBe(0);
    expect(value('conveyor_in_flight_messages{handler="recorder"}')).toBe(0);
    expect(value('conveyor_pool_threads')).toBe(2);
    expect(value('conveyor_pool_utilization')).toBe(0);
    expect(text).toMatch(/^process_cpu_user_seconds_total \d/m);
    expect(text).toMatch(/^nodejs_eventloop_lag_seconds \d/m);

    const bus = await opsGet(base, '/health/event-bus');
    expect(bus.status).toBe(200);
    expect(bus.json).toMatchObject({
      healthy: true,
      started: true,
      environment: 'local',
      group: 'default',
      bootstrap_servers: inject('kafkaBrokers'),
      circuit_state: 'closed',
      rabbitmq_circuit_state: 'closed',
      subscriber_count: 1,
      topic_count: 1,
      consumer_count: 1,
      assigned_partitions: 3,
      brokers: { kafka: { up: true } },
      reasons: [],
    });
    expect(bus.json.brokers.rabbitmq, 'no queue handler: RabbitMQ is not checked').toBeUndefined();

    expect((await opsGet(base, '/nope')).status).toBe(404);
    const post = await opsGet(base, '/metrics', { method: 'POST' });
    expect(post.status).toBe(405);
    expect((await opsGet(base, '/health/ready?verbose=1')).status, 'a query string does not change the path').toBe(200);

    expect((await runner.stop()).code).toBe(0);
    expect(runner.has('ops server stopped')).toBe(true);
  });
});

describe('ops server over HTTP: RabbitMQ queue handler', () => {
  let mq: OpenedChannel;
  let runner: RunnerProcess | undefined;
  const queues: string[] = [];

  beforeAll(async () => {
    mq = await openChannel();
  });
  afterAll(async () => {
    await runner?.stop('SIGKILL');
    await mq?.close();
    await deleteQueues(queues.flatMap((q) => [q, `${q}.dlq`, ...[1, 2, 3].map((n) => `${q}.retry.${n}`)]));
  });

  it('is ready once its consumer is set up, not ready while RabbitMQ cannot be reached, ready again after; live throughout', async () => {
    const queue = uniqueQueue('conveyor.test.ops-mq');
    queues.push(queue);
    const proxy = await startTcpProxy();
    try {
      runner = await startRunner({ queue, env: { AMQP_URL: proxy.url, CONVEYOR_POOL_SIZE: '2', RABBITMQ_HEARTBEAT_SECONDS: '5' } });
      const base = opsBaseUrl(runner);
      await waitFor('ready', async () => (await opsGet(base, '/health/ready')).status === 200, 30_000);

      for (let seq = 0; seq < 5; seq++) mq.channel.sendToQueue(queue, Buffer.from(JSON.stringify({ seq })), { persistent: true });
      await mq.channel.waitForConfirms();
      const ok = `conveyor_messages_total{handler="recorder",topic="${queue}",result="ok"}`;
      await waitFor('5 handled, in the metrics', async () => metricValue((await opsGet(base, '/metrics')).text, ok) === 5, 30_000);
      const text = (await opsGet(base, '/metrics')).text;
      expect(metricValue(text, `conveyor_lane_queue_depth{handler="recorder",topic="${queue}",partition="-1"}`)).toBe(0);
      expect(metricValue(text, 'conveyor_broker_up{broker="rabbitmq"}')).toBe(1);
      expect(metricValue(text, 'conveyor_broker_up{broker="kafka"}'), 'no Kafka handler: Kafka is not checked').toBeUndefined();

      const bus = await opsGet(base, '/health/event-bus');
      expect(bus.status).toBe(200);
      expect(bus.json).toMatchObject({ healthy: true, started: true, subscriber_count: 1, topic_count: 1, consumer_count: 1, assigned_partitions: 0, brokers: { rabbitmq: { up: true } } });
      expect(bus.text, 'no AMQP URL (it carries credentials) in the health response').not.toMatch(/amqp:\/\/|guest@/);

      await proxy.cut();
      await waitFor('not ready while RabbitMQ is cut off', async () => (await opsGet(base, '/health/ready')).status === 503, 20_000);
      const notReady = await opsGet(base, '/health/ready');
      expect(notReady.json.status).toBe('not_ready');
      expect(notReady.json.reasons.join('\n')).toMatch(/RabbitMQ unreachable|RabbitMQ consumer of queue .* not set up/);
      expect((await opsGet(base, '/health/live')).status).toBe(200);
      const down = await opsGet(base, '/health/event-bus');
      expect(down.status).toBe(503);
      expect(down.json.healthy).toBe(false);
      expect(down.text).not.toMatch(/amqp:\/\/|guest@/);

      await proxy.restore();
      await waitFor('ready again once RabbitMQ is back', async () => (await opsGet(base, '/health/ready')).status === 200, 30_000);
      expect(runner.child.exitCode).toBeNull();
      expect((await runner.stop()).code).toBe(0);
    } finally {
      await proxy.close();
    }
  });
});
