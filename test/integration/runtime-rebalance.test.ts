/**
 * Rebalancing on a real broker (seed 000): cooperative-sticky moves only the partitions that must move, a
 * graceful leave hands its partitions over at exactly the committed offset (invariant 4: no gap, no skip),
 * and static membership (POD_NAME) lets a member restart without the group rebalancing at all.
 */
import { describe, expect, it } from 'vitest';
import { useKafkaFixture } from '../support/fixture.ts';
import { committedOffsets, produce, waitFor } from '../support/kafka.ts';
import { readRecords, type LogLine, type Recorded, type RunnerProcess } from '../support/runner.ts';

const PARTITIONS = 6;
const ALL = [...Array(PARTITIONS).keys()];

type Parts = Array<{ partition: number }>;
const partsOf = (l: LogLine): number[] => ((l.partitions ?? []) as Parts).map((p) => p.partition);
const isRebalanceLog = (l: LogLine): boolean => l.msg === 'partitions assigned' || l.msg === 'partitions revoked';
const sorted = (s: Iterable<number>): number[] => [...s].sort((a, b) => a - b);

/** Messages `from`…`from + count - 1` spread over the partitions (seq % PARTITIONS). */
function wave(from: number, count: number, delayMs: number): Array<{ partition: number; value: { seq: number; delayMs: number } }> {
  return Array.from({ length: count }, (_, i) => ({ partition: (from + i) % PARTITIONS, value: { seq: from + i, delayMs } }));
}

interface Interval {
  readonly from: number;
  readonly to: number;
}

/** When the runner owned each partition, from its 'partitions assigned' / 'partitions revoked' log times. */
function ownership(runner: RunnerProcess): Map<number, Interval[]> {
  const open = new Map<number, number>();
  const owned = new Map<number, Interval[]>();
  const close = (p: number, to: number): void => {
    const from = open.get(p);
    if (from === undefined) return;
    owned.set(p, [...(owned.get(p) ?? []), { from, to }]);
    open.delete(p);
  };
  for (const l of runner.logs) {
    if (l.msg === 'partitions assigned') for (const p of partsOf(l)) if (!open.has(p)) open.set(p, l.time as number);
    if (l.msg === 'partitions revoked') for (const p of partsOf(l)) close(p, l.time as number);
  }
  for (const p of [...open.keys()]) close(p, Number.POSITIVE_INFINITY);
  return owned;
}

/**
 * Invariant 4 across members: each runner handled a partition only while it owned it (a revoke is logged after
 * the partition's in-flight work finished), and no two runners owned a partition at the same time.
 */
function expectExclusiveOwnership(runners: readonly RunnerProcess[]): void {
  const owned = runners.map(ownership);
  runners.forEach((runner, i) => {
    for (const r of readRecords(runner.recordFile)) {
      const inside = (owned[i]!.get(r.partition) ?? []).some(({ from, to }) => from <= r.started && r.ended <= to);
      expect(inside, `runner ${i} handled partition ${r.partition} offset ${r.offset} while not owning it`).toBe(true);
    }
  });
  for (const p of ALL) {
    const all = owned.flatMap((o, i) => (o.get(p) ?? []).map((iv) => ({ ...iv, i }))).sort((x, y) => x.from - y.from);
    for (let k = 1; k < all.length; k++) {
      expect(all[k]!.from, `partition ${p}: runner ${all[k]!.i} got it before runner ${all[k - 1]!.i} released it`).toBeGreaterThanOrEqual(all[k - 1]!.to);
    }
  }
}

/** Both runners own partitions, none twice, all of them between the two. */
function split(a: RunnerProcess, b: RunnerProcess): boolean {
  const pa = a.assigned();
  const pb = b.assigned();
  return pa.size > 0 && pb.size > 0 && [...pa].every((p) => !pb.has(p)) && pa.size + pb.size === PARTITIONS;
}

describe('runtime: rebalancing', () => {
  const fx = useKafkaFixture();

  async function start(topic: string, group: string, env: Record<string, string>): Promise<RunnerProcess> {
    return fx.startRunner({ topic, group, env: { CONVEYOR_POOL_SIZE: '3', CONVEYOR_POOL_MAX_BATCH: '4', ...env } });
  }

  // classic: cooperative-sticky, assigned by the group leader; consumer (KIP-848, the default for dynamic members):
  // assigned by the broker, incrementally, on heartbeats
  it.each(['classic', 'consumer'] as const)('%s protocol: a joining member takes some partitions while the first keeps the rest; a leaving one hands over at its committed offset', async (protocol) => {
    const { topic, group } = await fx.topic(`rebalance-${protocol}`, PARTITIONS);
    // dynamic membership: no POD_NAME
    const env = { KAFKA_DYNAMIC_SESSION_TIMEOUT_MS: '10000', KAFKA_GROUP_PROTOCOL: protocol };

    // Wave 1 is still being handled by A alone when B joins (a KIP-848 member gets partitions on its heartbeats,
    // every 5 s by default: wave 1 lasts longer than that).
    await produce(fx.kafka, topic, wave(0, 1200, 25));
    const a = await start(topic, group, env);
    await waitFor('A owns all partitions', () => a.assigned().size === PARTITIONS);
    await waitFor('A handling wave 1', () => readRecords(a.recordFile).length >= 100);
    const b = await start(topic, group, env);
    await waitFor('A and B share the partitions', () => split(a, b), 30_000);
    expect(readRecords(a.recordFile).length, 'B joined while wave 1 was in progress').toBeLessThan(1200);

    // A was never left without partitions: the rebalance revoked some of them only (no eager revoke-all).
    let owned = new Set<number>();
    let revokes = 0;
    for (const l of a.logs.filter(isRebalanceLog)) {
      const parts = partsOf(l);
      if (l.msg === 'partitions assigned') for (const p of parts) owned.add(p);
      else {
        if (parts.length > 0) revokes += 1;
        for (const p of parts) owned.delete(p);
        expect(owned.size, `A left without partitions by ${JSON.stringify(l)}`).toBeGreaterThan(0);
      }
    }
    if (protocol === 'classic') expect(revokes, 'A released partitions in one revoke').toBe(1);
    else expect(revokes, 'A released partitions, never all of them').toBeGreaterThan(0);
    expect(sorted(owned)).toEqual(sorted(a.assigned()));

    // Wave 2 while both run: every message handled, by both members.
    await produce(fx.kafka, topic, wave(1200, 600, 2));
    const seqs = (): Set<number> => new Set([...readRecords(a.recordFile), ...readRecords(b.recordFile)].map((r) => r.seq));
    await waitFor('waves 1 and 2 handled', () => seqs().size === 1800, 60_000);
    const bOwned = b.assigned();
    const bRecords = readRecords(b.recordFile);
    expect(bRecords.length).toBeGreaterThan(0);
    expect(new Set(bRecords.map((r) => r.partition))).toEqual(bOwned);

    // Wave 3 is slow, so B leaves mid-stream with work queued and in flight.
    await produce(fx.kafka, topic, wave(1800, 600, 25));
    await waitFor('B handling wave 3', () => readRecords(b.recordFile).filter((r) => r.seq >= 1800).length >= 30);
    const aLogsBefore = a.logs.length;
    const stoppedAt = Date.now();
    expect((await b.stop('SIGTERM')).code).toBe(0);
    const committed = await committedOffsets(fx.admin, group, topic);
    await waitFor('A owns all partitions again', () => a.assigned().size === PARTITIONS, 30_000);
    // Contrast with static membership below: a dynamic member's leave makes A log a rebalance.
    const takeover = a.logs.slice(aLogsBefore).find((l) => l.msg === 'partitions assigned');
    expect(sorted(partsOf(takeover!))).toEqual(sorted(bOwned));
    const takeoverAt = takeover!.time as number;
    expect(takeoverAt).toBeGreaterThanOrEqual(stoppedAt);

    // Wave 4 after B is gone: all of it handled by A.
    await produce(fx.kafka, topic, wave(2400, 600, 1));
    await waitFor('every message handled', () => seqs().size === 3000, 60_000);
    const aRecords = readRecords(a.recordFile);
    const bFinal = readRecords(b.recordFile);
    expect(bFinal.filter((r) => r.seq >= 2400)).toEqual([]);
    expect(new Set(aRecords.filter((r) => r.seq >= 2400).map((r) => r.seq)).size).toBe(600);

    for (const p of bOwned) {
      const cp = committed.get(p)!;
      // B committed exactly what it handled on a graceful stop ...
      const byB = bFinal.filter((r) => r.partition === p).map((r) => BigInt(r.offset));
      expect(byB.reduce((x, y) => (x > y ? x : y)) + 1n, `partition ${p}: B's last handled offset + 1`).toBe(cp);
      // ... and A resumed exactly there: first offset after the takeover = committed, then contiguous.
      const afterTakeover: Recorded[] = aRecords.filter((r) => r.partition === p && r.started >= takeoverAt);
      expect(afterTakeover.length).toBeGreaterThan(0);
      expect(BigInt(afterTakeover[0]!.offset), `partition ${p}: first offset A handled after the takeover`).toBe(cp);
      afterTakeover.forEach((r, i) => expect(BigInt(r.offset), `partition ${p} #${i}`).toBe(cp + BigInt(i)));
    }
    // Wave 3 was mid-stream when B left: its committed offsets are not simply the end of the partitions.
    expect(bFinal.filter((r) => r.seq >= 1800).length).toBeLessThan(600 / 2);
    expectExclusiveOwnership([a, b]);
    // When B joined, A committed what it had handled of the partitions it gave up, and B started right there.
    const revokedFromA = a.logs.filter((l) => l.msg === 'partitions revoked' && (l.time as number) < stoppedAt).flatMap(partsOf);
    expect(sorted(revokedFromA)).toEqual(sorted(bOwned));
    for (const p of revokedFromA) {
      const lastByA = aRecords.filter((r) => r.partition === p && r.started < takeoverAt).map((r) => BigInt(r.offset)).reduce((x, y) => (x > y ? x : y), -1n);
      const firstByB = bFinal.find((r) => r.partition === p)!;
      expect(BigInt(firstByB.offset), `partition ${p}: B's first offset after A handled up to ${lastByA}`).toBe(lastByA + 1n);
    }
    // Every hand-over was graceful, so nothing was handled twice and nothing skipped: exactly once overall.
    const all = [...aRecords, ...bFinal];
    expect(all.length).toBe(3000);
    expect(new Set(all.map((r) => r.seq)).size).toBe(3000);

    expect((await a.stop('SIGTERM')).code).toBe(0);
  });

  /**
   * A and B share the group; B stops gracefully and starts again at once (a rolling restart). Returns what A
   * logged about its partitions meanwhile, and B's partitions before and after.
   */
  async function restartB(membership: 'static' | 'dynamic') {
    const { topic, group } = await fx.topic(membership, PARTITIONS);
    const env = (pod: string): Record<string, string> => ({
      KAFKA_SESSION_TIMEOUT_MS: '60000',
      // the classic protocol's mechanics (the default for static members; chosen here for the dynamic contrast too)
      KAFKA_GROUP_PROTOCOL: 'classic',
      ...(membership === 'static' ? { POD_NAME: pod } : {}),
    });

    // A joins first (the group leader), then B.
    const a = await start(topic, group, env('a'));
    await waitFor('A owns all partitions', () => a.assigned().size === PARTITIONS);
    const b1 = await start(topic, group, env('b'));
    await waitFor('A and B share the partitions', () => split(a, b1), 30_000);
    await produce(fx.kafka, topic, wave(0, 600, 1));
    await waitFor('wave 1 handled', () => readRecords(a.recordFile).length + readRecords(b1.recordFile).length >= 600, 30_000);
    const aOwned = a.assigned();
    const bOwned = b1.assigned();

    // Restart B as the same pod.
    const aLogsBefore = a.logs.length;
    expect((await b1.stop('SIGTERM')).code).toBe(0);
    const b2 = await start(topic, group, env('b'));
    await waitFor('A and B share the partitions again', () => split(a, b2), 30_000);

    // Messages keep flowing; then wait longer than a heartbeat interval (3 s) for any late rebalance.
    await produce(fx.kafka, topic, wave(600, 600, 1));
    const seqs = (): Set<number> => new Set([a, b1, b2].flatMap((r) => readRecords(r.recordFile)).map((r) => r.seq));
    await waitFor('wave 2 handled', () => seqs().size === 1200, 30_000);
    await new Promise((r) => setTimeout(r, 4000));
    const aRebalanceLogs = a.logs.slice(aLogsBefore).filter(isRebalanceLog);
    expectExclusiveOwnership([a, b1, b2]);
    const result = { a, b2, aOwned, bOwned, aRebalanceLogs, aOwnedAfter: a.assigned(), b2Owned: b2.assigned() };
    expect((await b2.stop('SIGTERM')).code).toBe(0);
    expect((await a.stop('SIGTERM')).code).toBe(0);
    return result;
  }

  it('static membership: a member restarting with the same POD_NAME gets its partitions back and the group does not rebalance', async () => {
    const { a, b2, aOwned, bOwned, aRebalanceLogs, aOwnedAfter, b2Owned } = await restartB('static');
    expect(aRebalanceLogs, 'A logged no rebalance during B restart').toEqual([]);
    expect(sorted(aOwnedAfter)).toEqual(sorted(aOwned));
    expect(sorted(b2Owned)).toEqual(sorted(bOwned));
    expect(sorted(b2.logs.filter((l) => l.msg === 'partitions assigned').flatMap(partsOf)), 'B got back the partitions it had').toEqual(sorted(bOwned));
    // Each handled wave 2 on its own partitions.
    expect(new Set(readRecords(b2.recordFile).map((r) => r.partition))).toEqual(bOwned);
    expect(new Set(readRecords(a.recordFile).filter((r) => r.seq >= 600).map((r) => r.partition))).toEqual(aOwned);
  });

  it('contrast, dynamic membership: the same restart makes the group rebalance, and A takes part', async () => {
    const { aRebalanceLogs, aOwned, aOwnedAfter } = await restartB('dynamic');
    // B's leave and its return start a new generation; A rejoins and its rebalance callback runs. Whether A
    // briefly takes over B's partitions depends on whether B returned before A's next heartbeat.
    expect(aRebalanceLogs.filter((l) => l.msg === 'partitions assigned').length).toBeGreaterThan(0);
    expect(sorted(aOwnedAfter)).toEqual(sorted(aOwned));
  });

  it('key ordering: a member joining while out-of-order work is in flight loses nothing, keeps each key in order, and hands over at the watermark', async () => {
    const { topic, group } = await fx.topic('rebalance-key', PARTITIONS);
    const KEYS = 60;
    const TOTAL = 1800;
    // keys spread over the partitions; random delays make later offsets finish before earlier ones of other keys
    const messages = Array.from({ length: TOTAL }, (_, seq) => ({
      partition: (seq % KEYS) % PARTITIONS,
      key: `key-${seq % KEYS}`,
      value: { seq, delayMs: 50 + ((seq * 7919) % 150) },
    }));
    await produce(fx.kafka, topic, messages);
    const env = { KAFKA_DYNAMIC_SESSION_TIMEOUT_MS: '10000', TEST_ORDERING: 'key', TEST_CONCURRENCY: '24' };
    const a = await start(topic, group, env);
    await waitFor('A handling', () => readRecords(a.recordFile).length >= 150);
    const b = await start(topic, group, env);
    await waitFor('A and B share the partitions', () => split(a, b), 30_000);
    expect(readRecords(a.recordFile).length, 'B joined while A was mid-stream').toBeLessThan(TOTAL);
    const seqs = (): Set<number> => new Set([...readRecords(a.recordFile), ...readRecords(b.recordFile)].map((r) => r.seq));
    await waitFor('every message handled', () => seqs().size === TOTAL, 90_000);
    await waitFor('committed to the end', async () => {
      const c = await committedOffsets(fx.admin, group, topic);
      return ALL.every((p) => c.get(p) === BigInt(TOTAL / PARTITIONS));
    }, 30_000);
    expect((await b.stop('SIGTERM')).code).toBe(0);
    expect((await a.stop('SIGTERM')).code).toBe(0);

    const aRecords = readRecords(a.recordFile);
    const bRecords = readRecords(b.recordFile);
    expectExclusiveOwnership([a, b]);
    // at-least-once: every message; repeats only in partitions that moved, and only offsets A had not committed
    const moved = new Set(a.logs.filter((l) => l.msg === 'partitions revoked').flatMap(partsOf));
    const counts = new Map<number, number>();
    for (const r of [...aRecords, ...bRecords]) counts.set(r.seq, (counts.get(r.seq) ?? 0) + 1);
    for (const [seq, n] of counts) if (n > 1) expect(moved.has(messages[seq]!.partition), `seq ${seq} repeated in a partition that did not move`).toBe(true);
    // within each member, each key in offset order and one at a time
    for (const records of [aRecords, bRecords]) {
      for (let k = 0; k < KEYS; k++) {
        const mine = records.filter((r) => r.key === `key-${k}`).sort((x, y) => x.started - y.started);
        for (let i = 1; i < mine.length; i++) {
          expect(BigInt(mine[i]!.offset) > BigInt(mine[i - 1]!.offset), `key-${k} order`).toBe(true);
          expect(mine[i]!.started).toBeGreaterThanOrEqual(mine[i - 1]!.ended);
        }
      }
    }
    // B started each moved partition at or below what A had handled contiguously: nothing skipped in between
    for (const p of moved) {
      const byB = bRecords.filter((r) => r.partition === p).map((r) => BigInt(r.offset));
      if (byB.length === 0) continue; // moved and came back (the consumer protocol can do that): A did it all
      const firstByB = byB.reduce((x, y) => (x < y ? x : y));
      const byA = new Set(aRecords.filter((r) => r.partition === p).map((r) => BigInt(r.offset)));
      for (let o = 0n; o < firstByB; o++) expect(byA.has(o), `partition ${p}: offset ${o} below B's first was handled by A`).toBe(true);
    }
  });
});
