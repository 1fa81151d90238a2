/**
 * Readiness follows Kafka: the broker is stopped while a runner consumes, /health/ready turns 503 within 15 s and
 * back to 200 within 15 s of the broker's return, while /health/live stays 200 and the runner keeps running
 * (seed 000: a broker outage is not a reason to die). A throwaway broker of this file's own, so that stopping it
 * disturbs nothing else. And ready means warm: every worker thread imported the handlers first.
 */
import { describe, expect, it } from 'vitest';
import { useKafkaFixture } from '../support/fixture.ts';
import { produce, uniqueName, waitFor } from '../support/kafka.ts';
import { metricValue, opsBaseUrl, opsGet } from '../support/ops-http.ts';
import { readRecords, startRunner } from '../support/runner.ts';
import { useThrowawayKafka } from '../support/throwaway-kafka.ts';

describe('ops server: readiness while Kafka is down', () => {
  const fx = useThrowawayKafka('conveyor-test-readiness');

  it('turns not ready within 15 s of Kafka stopping and ready again within 15 s of its return; live and running throughout', async () => {
    const topic = uniqueName('conveyor.test.ops-ready');
    const group = `${topic}.group`;
    const { broker, kafka, admin } = fx;
    await admin.createTopic(topic, 2);
    await produce(kafka, topic, Array.from({ length: 10 }, (_, i) => ({ partition: i % 2, value: { seq: i } })));
    const runner = fx.track(await startRunner({ topic, group, env: { KAFKA_BOOTSTRAP_SERVERS: broker.brokers, CONVEYOR_POOL_SIZE: '2' } }));
    const base = opsBaseUrl(runner);
    await waitFor('ready', async () => (await opsGet(base, '/health/ready')).status === 200, 30_000);
    await waitFor('the first messages handled', () => readRecords(runner.recordFile).length >= 10, 30_000);

    // liveness, polled all along: a broker outage is a readiness matter, never a liveness one
    const liveness: number[] = [];
    let polling = true;
    const poller = (async () => {
      while (polling) {
        liveness.push((await opsGet(base, '/health/live').catch(() => ({ status: 0 }))).status);
        await new Promise((r) => setTimeout(r, 500));
      }
    })();

    let notReadyAfterMs = -1;
    let readyAgainAfterMs = -1;
    try {
      await broker.pause();
      const stopped = Date.now();
      try {
        await waitFor('not ready while Kafka is down', async () => (await opsGet(base, '/health/ready')).status === 503, 15_000);
        notReadyAfterMs = Date.now() - stopped;
        const ready = await opsGet(base, '/health/ready');
        expect(ready.json.status).toBe('not_ready');
        expect(ready.json.reasons.join('\n')).toMatch(/^Kafka unreachable/m);
        const bus = await opsGet(base, '/health/event-bus');
        expect(bus.status).toBe(503);
        expect(bus.json).toMatchObject({ healthy: false, started: true, brokers: { kafka: { up: false } } });
        expect(metricValue((await opsGet(base, '/metrics')).text, 'conveyor_broker_up{broker="kafka"}')).toBe(0);
        expect(runner.child.exitCode, 'the runner is still running while Kafka is down').toBeNull();
      } finally {
        await broker.resume();
      }
      const started = Date.now();
      await waitFor('ready again once Kafka is back', async () => (await opsGet(base, '/health/ready')).status === 200, 15_000);
      readyAgainAfterMs = Date.now() - started;
    } finally {
      polling = false;
      await poller;
    }
    expect(notReadyAfterMs, 'not ready within 15 s of the stop').toBeLessThanOrEqual(15_000);
    expect(readyAgainAfterMs, 'ready again within 15 s of the start').toBeLessThanOrEqual(15_000);
    expect(liveness.length).toBeGreaterThan(5);
    expect(liveness.every((s) => s === 200), `liveness answers: ${liveness.join(',')}`).toBe(true);
    expect(metricValue((await opsGet(base, '/metrics')).text, 'conveyor_broker_up{broker="kafka"}')).toBe(1);

    // and it consumes again
    await produce(kafka, topic, Array.from({ length: 10 }, (_, i) => ({ partition: i % 2, value: { seq: 10 + i } })));
    await waitFor('messages after the outage handled', () => new Set(readRecords(runner.recordFile).map((r) => r.seq)).size >= 20, 60_000);
    expect((await runner.stop()).code).toBe(0);
  }, 180_000);
});

describe('ops server: ready means warm', () => {
  const fx = useKafkaFixture();

  it('answers ready only once every worker thread imported the handlers; the first messages after it do not wait for an import', async () => {
    const { topic, group } = await fx.topic('ops-warm', 2);
    const POOL = 2;
    const runner = await fx.startRunner({
      topic, group, handlersDir: 'test/fixtures/slow-import-handlers', env: { CONVEYOR_POOL_SIZE: String(POOL), TEST_IMPORT_MS: '1500' },
    });
    const base = opsBaseUrl(runner);
    await waitFor('ready', async () => (await opsGet(base, '/health/ready')).status === 200, 30_000);
    const readyAt = Date.now();
    const lines = (): Array<Record<string, number>> => readRecords(runner.recordFile) as unknown as Array<Record<string, number>>;
    const imports = lines().filter((l) => l.imported !== undefined);
    expect(imports, 'every worker thread had imported the handler when ready answered 200').toHaveLength(POOL);

    const producedAt = Date.now();
    await produce(fx.kafka, topic, Array.from({ length: 20 }, (_, i) => ({ partition: i % 2, value: { seq: i } })));
    await waitFor('handled', () => lines().filter((l) => l.seq !== undefined).length >= 20, 30_000);
    const handled = lines().filter((l) => l.seq !== undefined);
    // an import on the first task would add 1.5 s
    expect(Math.max(...handled.map((l) => l.handledAt!)) - producedAt).toBeLessThan(1_000);
    expect(readyAt).toBeGreaterThanOrEqual(Math.max(...imports.map((l) => l.at!)));
    expect((await runner.stop('SIGTERM')).code).toBe(0);
  });
});
