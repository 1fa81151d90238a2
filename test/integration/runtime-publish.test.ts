/** ctx.publish: events a handler publishes are on the broker before its source message is committed. */
import { describe, expect, it } from 'vitest';
import { committedOffsets, produce, readTopic, waitFor } from '../support/kafka.ts';
import { useKafkaFixture } from '../support/fixture.ts';

describe('runtime: ctx.publish', () => {
  const fx = useKafkaFixture();

  it('sends what a handler published before committing its message; a failed attempt publishes nothing', async () => {
    const { topic, group } = await fx.topic('publish-src', 2);
    const { topic: out } = await fx.topic('publish-out', 3);
    await produce(fx.kafka, topic, Array.from({ length: 40 }, (_, i) => ({
      key: `k${i % 4}`, partition: i % 2, value: { seq: i, ...(i === 5 ? { failAfterPublish: true } : {}) },
    })));
    const runner = await fx.startRunner({ topic, group, handlersDir: 'test/fixtures/publishing', env: { TEST_OUT_TOPIC: out } });
    await waitFor('all 40 committed', async () => {
      const c = await committedOffsets(fx.admin, group, topic);
      return c.get(0) === 20n && c.get(1) === 20n;
    }, 60_000);
    expect((await runner.stop()).code).toBe(0);

    const events = await readTopic(out, 40);
    await new Promise((r) => setTimeout(r, 500));
    const bySeq = Map.groupBy(events.map((e) => ({ ...e, body: JSON.parse(e.value) as { seq: number; attempt: number; offset: string } })), (e) => e.body.seq);
    expect(bySeq.size).toBe(40);
    for (const [seq, list] of bySeq) {
      expect(list, `seq ${seq}: one event`).toHaveLength(1);
      expect(list[0]!.key).toBe(`k${seq % 4}`);
      expect(list[0]!.headers['x-source-offset']).toBe(list[0]!.body.offset);
    }
    // the first attempt of seq 5 published, then failed: only the second attempt's event went out
    expect(bySeq.get(5)![0]!.body.attempt).toBe(2);
  });

  it('after a crash, every committed message has its event on the broker (published before the commit)', async () => {
    const { topic, group } = await fx.topic('publish-crash-src', 3);
    const { topic: out } = await fx.topic('publish-crash-out', 3);
    const total = 600;
    await produce(fx.kafka, topic, Array.from({ length: total }, (_, i) => ({ partition: i % 3, value: { seq: i, delayMs: 2 } })));
    const runner = await fx.startRunner({ topic, group, handlersDir: 'test/fixtures/publishing', env: { TEST_OUT_TOPIC: out } });
    await waitFor('some commits', async () => {
      const c = await committedOffsets(fx.admin, group, topic);
      return [...c.values()].reduce((n, o) => n + (o > 0n ? o : 0n), 0n) >= 150n;
    }, 60_000);
    await runner.stop('SIGKILL');
    const committed = await committedOffsets(fx.admin, group, topic);
    const committedCount = Number([...committed.values()].reduce((n, o) => n + (o > 0n ? o : 0n), 0n));
    expect(committedCount).toBeLessThan(total); // killed mid-stream

    const events = await readTopic(out, committedCount, 30_000);
    const published = new Set(events.map((e) => {
      const b = JSON.parse(e.value) as { partition: number; offset: string };
      return `${b.partition}/${b.offset}`;
    }));
    for (const [partition, end] of committed) {
      for (let offset = 0n; offset < end; offset++) {
        expect(published.has(`${partition}/${offset}`), `event of committed ${partition}/${offset}`).toBe(true);
      }
    }
  });
});
