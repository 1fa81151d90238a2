import { describe, expect, it } from 'vitest';
import { CoalescedRun } from '../../src/ack/coalesced-run.ts';

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe('CoalescedRun (the commit path)', () => {
  it('runs at once when idle', async () => {
    let runs = 0;
    const run = new CoalescedRun(async () => {
      runs += 1;
    });
    await run.run();
    expect(runs).toBe(1);
  });

  it('serves every call made during a run with exactly one more run, started after that run ended', async () => {
    const gates: Array<{ promise: Promise<void>; resolve: () => void }> = [];
    const started: number[] = [];
    const ended: number[] = [];
    const run = new CoalescedRun(async () => {
      const n = gates.length;
      started.push(n);
      const gate = deferred();
      gates.push(gate);
      await gate.promise;
      ended.push(n);
    });
    const first = run.run();
    const calls = [run.run(), run.run(), run.run(), run.run()];
    expect(started).toEqual([0]);
    gates[0]!.resolve();
    await first;
    await new Promise((r) => setImmediate(r));
    expect(started, 'one coalesced run, not one per call').toEqual([0, 1]);
    let settled = 0;
    for (const c of calls) void c.then(() => (settled += 1));
    await new Promise((r) => setImmediate(r));
    expect(settled, 'callers wait for the run that started after their call').toBe(0);
    gates[1]!.resolve();
    await Promise.all(calls);
    expect(ended).toEqual([0, 1]);
  });

  it('never holds more than one run in waiting however long a run hangs', async () => {
    let starts = 0;
    const gate = deferred();
    const run = new CoalescedRun(async () => {
      starts += 1;
      if (starts === 1) await gate.promise;
    });
    for (let i = 0; i < 1000; i++) void run.run();
    gate.resolve();
    await run.run();
    expect(starts).toBe(2);
  });
});
