/**
 * The concurrency model on a real broker (docs/runtime.md, "Order and parallelism"): threads are for CPU,
 * concurrency is for waiting; ordering per handler (partition, key, unordered); a failing key stalls only itself;
 * the commit never passes an unacknowledged offset.
 */
import { describe, expect, it } from 'vitest';
import { useKafkaFixture } from '../support/fixture.ts';
import { committedOffsets, produce, waitFor, type TestMessage } from '../support/kafka.ts';
import { readRecords, type Recorded } from '../support/runner.ts';

/** The most records whose [started, ended) intervals overlap at one moment. */
function mostAtOnce(records: readonly Recorded[]): number {
  const edges = records.flatMap((r) => [[r.started, 1] as const, [r.ended, -1] as const]).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let now = 0;
  let most = 0;
  for (const [, d] of edges) most = Math.max(most, (now += d));
  return most;
}

describe('runtime: concurrency and ordering', () => {
  const fx = useKafkaFixture();

  it('key ordering: one key at a time in offset order, many keys of one partition at once (concurrency 64, random delays)', async () => {
    const { topic, group } = await fx.topic('conc-key', 2);
    const KEYS = 40;
    const PER_KEY = 8;
    const messages: TestMessage[] = [];
    for (let i = 0; i < PER_KEY; i++) {
      for (let k = 0; k < KEYS; k++) messages.push({ partition: k % 2, key: `key-${k}`, value: { seq: i * KEYS + k, delayMs: 5 + Math.floor(Math.random() * 40) } });
    }
    await produce(fx.kafka, topic, messages);
    const runner = await fx.startRunner({ topic, group, env: { TEST_ORDERING: 'key', TEST_CONCURRENCY: '64', CONVEYOR_POOL_SIZE: '2' } });
    await waitFor('every message handled', () => readRecords(runner.recordFile).length >= messages.length, 60_000);
    await waitFor('offsets committed to the end', async () => {
      const c = await committedOffsets(fx.admin, group, topic);
      return c.get(0) === BigInt(messages.length / 2) && c.get(1) === BigInt(messages.length / 2);
    });
    expect((await runner.stop('SIGTERM')).code).toBe(0);

    const records = readRecords(runner.recordFile);
    expect(records).toHaveLength(messages.length); // each once
    for (let k = 0; k < KEYS; k++) {
      const mine = records.filter((r) => r.key === `key-${k}`).sort((a, b) => a.started - b.started);
      // in offset order, never two at once
      expect(mine.map((r) => BigInt(r.offset)), `key-${k} order`).toEqual(mine.map((r) => BigInt(r.offset)).sort((a, b) => (a < b ? -1 : 1)));
      for (let i = 1; i < mine.length; i++) expect(mine[i]!.started, `key-${k} #${i}`).toBeGreaterThanOrEqual(mine[i - 1]!.ended);
    }
    // many keys of one partition overlapped
    expect(mostAtOnce(records.filter((r) => r.partition === 0))).toBeGreaterThanOrEqual(10);
    expect(mostAtOnce(records)).toBeLessThanOrEqual(64);
  });

  it('partition ordering on ONE thread still runs 12 partitions at once (12 × 50 ms handlers finish in about 1/12 of the sequential time)', async () => {
    const PARTITIONS = 12;
    const PER_PARTITION = 8;
    const DELAY = 50;
    const { topic, group } = await fx.topic('conc-partition', PARTITIONS);
    const messages: TestMessage[] = [];
    for (let i = 0; i < PER_PARTITION; i++) for (let p = 0; p < PARTITIONS; p++) messages.push({ partition: p, value: { seq: i, delayMs: DELAY } });
    await produce(fx.kafka, topic, messages);
    const runner = await fx.startRunner({ topic, group, env: { CONVEYOR_POOL_SIZE: '1' } });
    await waitFor('every message handled', () => readRecords(runner.recordFile).length >= messages.length, 60_000);
    expect((await runner.stop('SIGTERM')).code).toBe(0);

    const records = readRecords(runner.recordFile);
    expect(new Set(records.map((r) => r.thread)).size).toBe(1);
    for (let p = 0; p < PARTITIONS; p++) {
      const mine = records.filter((r) => r.partition === p);
      expect(mine.map((r) => r.seq), `partition ${p}`).toEqual([...Array(PER_PARTITION).keys()]);
      for (let i = 1; i < mine.length; i++) expect(mine[i]!.started).toBeGreaterThanOrEqual(mine[i - 1]!.ended);
    }
    const sequentialMs = messages.length * DELAY; // 4.8 s one at a time
    const span = Math.max(...records.map((r) => r.ended)) - Math.min(...records.map((r) => r.started));
    expect(mostAtOnce(records)).toBeGreaterThanOrEqual(PARTITIONS - 1);
    // ideal 1/12 (400 ms); a quarter leaves room for a loaded machine and still fails at thread-bound concurrency
    expect(span).toBeLessThan(sequentialMs / 4);
  });

  it('key ordering: a failing key is retried while the other keys of its partition complete; its later messages wait for it', async () => {
    const { topic, group } = await fx.topic('conc-retry', 1);
    const messages: TestMessage[] = [{ key: 'bad', value: { seq: 0, fail: 'once' } }];
    for (let i = 1; i <= 30; i++) messages.push({ key: `good-${i % 10}`, value: { seq: i, delayMs: 5 } });
    messages.push({ key: 'bad', value: { seq: 31 } });
    await produce(fx.kafka, topic, messages);
    const runner = await fx.startRunner({ topic, group, env: { TEST_ORDERING: 'key', TEST_CONCURRENCY: '16', TEST_BACKOFF_MS: '1500', TEST_MAX_BACKOFF_MS: '1500' } });
    await waitFor('every message handled', () => new Set(readRecords(runner.recordFile).filter((r) => r.ok).map((r) => r.seq)).size >= messages.length, 30_000);
    await waitFor('offset committed to the end', async () => (await committedOffsets(fx.admin, group, topic)).get(0) === BigInt(messages.length));
    expect((await runner.stop('SIGTERM')).code).toBe(0);

    const records = readRecords(runner.recordFile);
    const [failed, retried] = records.filter((r) => r.seq === 0);
    expect(failed).toMatchObject({ attempt: 1, ok: false });
    expect(retried).toMatchObject({ attempt: 2, ok: true });
    const goods = records.filter((r) => r.seq >= 1 && r.seq <= 30);
    // the other keys did not wait for the retry ...
    expect(Math.max(...goods.map((r) => r.ended))).toBeLessThan(retried!.started);
    // ... the bad key's next message did
    const next = records.find((r) => r.seq === 31)!;
    expect(next.started).toBeGreaterThanOrEqual(retried!.ended);
  });

  it('unordered: never commits past a message still in flight, however many after it are done', async () => {
    const { topic, group } = await fx.topic('conc-commit', 1);
    const messages: TestMessage[] = [{ value: { seq: 0, delayMs: 4000 } }];
    for (let i = 1; i < 50; i++) messages.push({ value: { seq: i } });
    await produce(fx.kafka, topic, messages);
    const runner = await fx.startRunner({ topic, group, env: { TEST_ORDERING: 'unordered', TEST_CONCURRENCY: '8', CONVEYOR_COMMIT_INTERVAL_MS: '100' } });
    await waitFor('the 49 after the slow one handled', () => readRecords(runner.recordFile).filter((r) => r.seq > 0).length >= 49, 20_000);
    const slow = () => readRecords(runner.recordFile).find((r) => r.seq === 0);
    await new Promise((r) => setTimeout(r, 500)); // a few commit intervals
    // offset 0 is not acknowledged: nothing of the partition may be committed
    const committedMeanwhile = (await committedOffsets(fx.admin, group, topic)).get(0) ?? 0n;
    expect(slow(), 'the slow message was still running when the commit was read').toBeUndefined();
    expect(committedMeanwhile).toBe(0n);
    await waitFor('the slow one handled', () => slow() !== undefined, 20_000);
    await waitFor('then committed to the end', async () => (await committedOffsets(fx.admin, group, topic)).get(0) === 50n);
    expect((await runner.stop('SIGTERM')).code).toBe(0);
  });

  it('ctx.log in a worker writes one structured line with the message coordinates (the logger loads on first use)', async () => {
    const { topic, group } = await fx.topic('conc-log', 1);
    await produce(fx.kafka, topic, [{ key: 'k', value: { seq: 7, log: true }, headers: { 'x-correlation-id': 'corr-7' } }]);
    const runner = await fx.startRunner({ topic, group });
    await waitFor('the line logged', () => runner.logs.some((l) => l.msg === 'recorder says hello'), 20_000);
    const line = runner.logs.find((l) => l.msg === 'recorder says hello')!;
    expect(line).toMatchObject({ level: 30, seq: 7, handler: 'recorder', topic, partition: 0, offset: '0', correlationId: 'corr-7' });
    expect((await runner.stop('SIGTERM')).code).toBe(0);
  });
});
