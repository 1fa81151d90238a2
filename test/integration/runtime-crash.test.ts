/**
 * Invariant 1 on a real broker: at-least-once across a crash. The runner is SIGKILLed mid-stream (no
 * shutdown, no final commit); a new runner of the same group must handle every message, and the only
 * messages handled twice are those of the uncommitted window: at or after the partition's committed offset.
 */
import { describe, expect, it } from 'vitest';
import { useKafkaFixture } from '../support/fixture.ts';
import { committedOffsets, produce, waitFor } from '../support/kafka.ts';
import { readRecords, type Recorded } from '../support/runner.ts';

const PARTITIONS = 6;
const TOTAL = 3000;

/**
 * Dynamic membership: the dead member holds its partitions until its session expires, so the session is short.
 * Static membership (seed 000): the pod comes back under the same POD_NAME and takes its partitions over at once,
 * with the seeds' 300 s session.
 */
const MEMBERSHIPS = {
  dynamic: { KAFKA_DYNAMIC_SESSION_TIMEOUT_MS: '6000' },
  static: { POD_NAME: 'crashing-pod' },
} satisfies Record<string, Record<string, string>>;

describe('runtime: at-least-once under a crash', () => {
  const fx = useKafkaFixture();

  it.each(Object.keys(MEMBERSHIPS) as Array<keyof typeof MEMBERSHIPS>)('%s membership: every message handled at least once after a SIGKILL; duplicates only from the uncommitted window', async (membership) => {
    const { topic, group } = await fx.topic(`crash-${membership}`, PARTITIONS);
    const messages = Array.from({ length: TOTAL }, (_, seq) => ({ partition: seq % PARTITIONS, value: { seq, delayMs: 1 + (seq % 3) } }));
    await produce(fx.kafka, topic, messages);
    const env = { CONVEYOR_POOL_SIZE: '4', CONVEYOR_POOL_MAX_BATCH: '8', ...MEMBERSHIPS[membership] };

    const first = await fx.startRunner({ topic, group, env });
    await waitFor('a third of the messages handled', () => readRecords(first.recordFile).length >= TOTAL / 3, 60_000);
    await first.stop('SIGKILL');
    const before = readRecords(first.recordFile);
    const committed = await committedOffsets(fx.admin, group, topic);
    // The dead process cannot commit any more: a second read a moment later agrees.
    await new Promise((r) => setTimeout(r, 300));
    expect(await committedOffsets(fx.admin, group, topic)).toEqual(committed);

    // The kill happened mid-stream, after some commits, with handled-but-uncommitted work in the window.
    expect(before.length).toBeLessThan(TOTAL);
    const c = (p: number): bigint => {
      const offset = committed.get(p) ?? -1n;
      return offset < 0n ? 0n : offset;
    };
    expect([...Array(PARTITIONS).keys()].some((p) => c(p) > 0n), 'something was committed before the kill').toBe(true);
    // Every committed offset covers only handled messages (commit after ack): offsets below C[p] were recorded.
    for (let p = 0; p < PARTITIONS; p++) {
      const handled = new Set(before.filter((r) => r.partition === p && r.ok).map((r) => BigInt(r.offset)));
      for (let o = 0n; o < c(p); o++) expect(handled.has(o), `partition ${p} offset ${o} committed but not handled`).toBe(true);
    }
    const inWindow = before.filter((r) => BigInt(r.offset) >= c(r.partition));
    expect(inWindow.length, 'records handled but not committed at the kill').toBeGreaterThan(0);

    const second = await fx.startRunner({ topic, group, env });
    await waitFor(
      'every seq handled',
      () => new Set([...before, ...readRecords(second.recordFile)].map((r) => r.seq)).size === TOTAL,
      60_000,
    );
    const after = readRecords(second.recordFile);
    const { code } = await second.stop('SIGTERM');
    expect(code).toBe(0);

    const all: Recorded[] = [...before, ...after];
    expect(all.every((r) => r.ok)).toBe(true);
    const bySeq = Map.groupBy(all, (r) => r.seq);
    expect(bySeq.size).toBe(TOTAL);
    const duplicated = [...bySeq.values()].filter((rs) => rs.length > 1).map((rs) => rs[0]!);
    for (const r of duplicated) {
      expect(BigInt(r.offset), `seq ${r.seq} (partition ${r.partition}) handled twice below the committed offset`).toBeGreaterThanOrEqual(c(r.partition));
    }
    // The second runner resumed exactly at each partition's committed offset: nothing before it redone.
    for (let p = 0; p < PARTITIONS; p++) {
      const mine = after.filter((r) => r.partition === p).map((r) => BigInt(r.offset));
      if (mine.length > 0) expect(mine.reduce((a, b) => (a < b ? a : b)), `partition ${p} resume point`).toBe(c(p));
    }
    // The window the crash left was handled again, which is exactly where duplicates come from.
    expect(duplicated.length).toBe(inWindow.length);
  });
});
