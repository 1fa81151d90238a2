import { describe, expect, it } from 'vitest';
import { ConcurrencySlots } from '../../src/scheduling/concurrency-slots.ts';
import { KeyOrdering } from '../../src/scheduling/key-ordering.ts';
import type { Schedulable, Unit } from '../../src/scheduling/ordering.ts';
import { PartitionOrdering } from '../../src/scheduling/partition-ordering.ts';
import { Unordered } from '../../src/scheduling/unordered.ts';

interface R extends Schedulable {
  readonly k: string | null;
}
const rec = (offset: number, k: string | null = null): R => ({ offset: BigInt(offset), key: k === null ? null : Buffer.from(k), k });
const show = (units: Array<Unit<R>>): string[][] => units.map((u) => u.map((r) => `${r.k ?? '-'}${r.offset}`));

describe('key ordering', () => {
  it('runs different keys of a partition at once, and one key one message at a time in offset order', () => {
    const o = new KeyOrdering<R>();
    for (const [i, k] of ['a', 'b', 'a', 'c', 'b', 'a'].entries()) o.add(rec(i, k));
    // one record per key this round (the budget shared by three ready keys), oldest key head first
    const first = o.take(3, 8);
    expect(show(first)).toEqual([['a0'], ['b1'], ['c3']]);
    expect(o.take(10, 8)).toEqual([]); // every key has a record out
    o.done(first[1]![0]!); // b1 done: b4 may start, a2 may not
    expect(show(o.take(10, 8))).toEqual([['b4']]);
    o.done(first[0]![0]!);
    expect(show(o.take(10, 8))).toEqual([['a2', 'a5']]); // a's waiting records, in order, as one unit
  });

  it('holds back only the key of a record in retry; the other keys of the partition go on', () => {
    const o = new KeyOrdering<R>();
    for (const [i, k] of ['a', 'b', 'a', 'b', 'b'].entries()) o.add(rec(i, k));
    const [a0, b1] = o.take(2, 2);
    o.done(b1![0]!); // b1 handled; a0 failed: it stays taken while it waits for its retry
    const next = o.take(10, 8);
    expect(show(next)).toEqual([['b3', 'b4']]);
    for (const r of next[0]!) o.done(r);
    expect(o.take(10, 8)).toEqual([]); // a2 waits for a0
    o.giveBack(a0!); // the retry delay passed
    expect(show(o.take(10, 8))).toEqual([['a0', 'a2']]);
  });

  it('orders messages without a key among themselves, as one key', () => {
    const o = new KeyOrdering<R>();
    o.add(rec(0, null));
    o.add(rec(1, 'x'));
    o.add(rec(2, null));
    expect(show(o.take(2, 8))).toEqual([['-0'], ['x1']]);
    expect(o.take(10, 8)).toEqual([]);
  });

  it('keeps a hot key from starving the others: each key has one unit out, oldest head first', () => {
    const o = new KeyOrdering<R>();
    let offset = 0;
    for (let i = 0; i < 100; i++) o.add(rec(offset++, 'hot'));
    for (const k of ['c1', 'c2', 'c3']) o.add(rec(offset++, k));
    const units = o.take(8, 8);
    expect(units).toHaveLength(4);
    expect(units.map((u) => u[0]!.k)).toEqual(['hot', 'c1', 'c2', 'c3']);
    expect(units[0]!.length).toBeLessThanOrEqual(2); // the budget is shared: the hot key does not take it all
  });

  it('puts several keys in one unit when fewer units are allowed than keys are ready, each key still in order', () => {
    const o = new KeyOrdering<R>();
    for (const [i, k] of ['a', 'b', 'c', 'd'].entries()) o.add(rec(i, k));
    const units = o.take(10, 2);
    expect(units).toHaveLength(2);
    expect(units.flat()).toHaveLength(4);
  });

  it('forgets a key once it holds nothing', () => {
    const o = new KeyOrdering<R>();
    o.add(rec(0, 'a'));
    const [[r]] = o.take(1, 1) as [[R]];
    o.done(r);
    expect(o.activeKeys).toBe(0);
    expect(o.waiting).toBe(0);
  });

  it('never has two units of one key out at once, and finishes each key in offset order, over a random run', () => {
    const o = new KeyOrdering<R>();
    let seed = 7;
    const rand = (n: number): number => Math.floor(((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * n);
    let offset = 0;
    const out: Array<R[]> = []; // units out, each with its records not yet finished, in run order
    const finished = new Map<string, number>();
    let overlaps = 0;
    for (let step = 0; step < 20_000; step++) {
      const action = rand(3);
      if (action === 0) o.add(rec(offset++, `k${rand(20)}`));
      else if (action === 1) {
        for (const unit of o.take(rand(10) + 1, rand(4) + 1)) {
          for (const k of new Set(unit.map((r) => r.k))) {
            if (out.some((u) => u.some((r) => r.k === k))) expect.fail(`key ${k} has two units out`);
          }
          if (new Set(unit.map((r) => r.k)).size > 1) overlaps += 1;
          out.push([...unit]);
        }
      } else if (out.length > 0) {
        const i = rand(out.length);
        const unit = out[i]!;
        const r = unit.shift()!; // a unit runs its records in order
        if (rand(5) === 0) {
          o.giveBack([r, ...unit]); // failed and retried later, with the rest of its unit
          out.splice(i, 1);
          continue;
        }
        o.done(r);
        expect(Number(r.offset)).toBeGreaterThan(finished.get(r.k!) ?? -1);
        finished.set(r.k!, Number(r.offset));
        if (unit.length === 0) out.splice(i, 1);
      }
    }
    expect(finished.size).toBe(20);
    expect(overlaps).toBeGreaterThan(0); // the run did share units between keys
  });
});

describe('partition ordering', () => {
  it('hands out one unit of consecutive records at a time', () => {
    const o = new PartitionOrdering<R>();
    for (let i = 0; i < 5; i++) o.add(rec(i, `k${i}`));
    const [unit] = o.take(3, 8);
    expect(show([unit!])).toEqual([['k00', 'k11', 'k22']]);
    expect(o.take(3, 8)).toEqual([]);
    for (const r of unit!) o.done(r);
    expect(show(o.take(3, 8))).toEqual([['k33', 'k44']]);
  });
});

describe('unordered', () => {
  it('hands out any waiting record, oldest first, split into at most the allowed units', () => {
    const o = new Unordered<R>();
    for (let i = 0; i < 7; i++) o.add(rec(i));
    expect(show(o.take(4, 2))).toEqual([['-0', '-1'], ['-2', '-3']]);
    expect(show(o.take(10, 10))).toEqual([['-4'], ['-5'], ['-6']]);
  });

  it('with one slot free, takes only its share of the backlog, not a long chain the other slots could have run', () => {
    const o = new Unordered<R>();
    for (let i = 0; i < 20; i++) o.add(rec(i));
    // concurrency 4: 20 waiting → 5 a unit
    expect(o.take(64, 1, 4)[0]).toHaveLength(5);
    // concurrency 1: one unit carries up to the batch cap
    expect(o.take(64, 1, 1)[0]).toHaveLength(15);
  });

  it('holds back nothing for a record in retry; given back, it starts again first', () => {
    const o = new Unordered<R>();
    for (let i = 0; i < 3; i++) o.add(rec(i));
    const [[r0]] = o.take(1, 1) as [[R]];
    expect(show(o.take(1, 1))).toEqual([['-1']]);
    o.giveBack([r0]);
    expect(show(o.take(1, 1))).toEqual([['-0']]);
  });
});

describe('concurrency slots', () => {
  it('wakes waiting lanes in turn as slots come back, each once', () => {
    const slots = new ConcurrencySlots(2);
    slots.acquire(2);
    const woken: string[] = [];
    // a woken lane takes a slot at once (LaneDriver.kick)
    const a = (): void => void (woken.push('a'), slots.acquire(1));
    const b = (): void => void (woken.push('b'), slots.acquire(1));
    slots.wait(a);
    slots.wait(b);
    slots.wait(a);
    slots.release(1);
    expect(woken).toEqual(['a']);
    slots.release(1);
    expect(woken).toEqual(['a', 'b']);
    expect(slots.available).toBe(0);
  });

  it('drops a lane that left the line', () => {
    const slots = new ConcurrencySlots(1);
    slots.acquire(1);
    const woken: string[] = [];
    const a = (): void => void woken.push('a');
    slots.wait(a);
    slots.leave(a);
    slots.release(1);
    expect(woken).toEqual([]);
  });

  it('refuses a concurrency that is not a positive integer', () => {
    expect(() => new ConcurrencySlots(0)).toThrow(RangeError);
  });
});
