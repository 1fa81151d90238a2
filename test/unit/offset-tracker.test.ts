import { describe, expect, it } from 'vitest';
import { OffsetTracker } from '../../src/ack/offset-tracker.ts';

function tracking(...offsets: number[]): OffsetTracker {
  const t = new OffsetTracker();
  for (const o of offsets) t.track(BigInt(o));
  return t;
}

describe('OffsetTracker', () => {
  it('has nothing to commit before the first acknowledgement', () => {
    expect(tracking(0, 1, 2).committable()).toBeUndefined();
  });

  it('commits offset 5 only after 3 and 4 are acknowledged', () => {
    const t = tracking(3, 4, 5, 6);
    t.ack(5n);
    expect(t.committable()).toBeUndefined();
    t.ack(4n);
    expect(t.committable()).toBeUndefined();
    t.ack(3n);
    expect(t.committable()).toBe(6n); // 3, 4, 5 done: the next offset to read is 6
    t.ack(6n);
    expect(t.committable()).toBe(7n);
  });

  it('never moves past an unacknowledged message, however many after it complete', () => {
    const t = tracking(...Array.from({ length: 100 }, (_, i) => i));
    for (let i = 99; i >= 1; i--) t.ack(BigInt(i));
    expect(t.committable()).toBeUndefined();
    expect(t.outstanding).toBe(100);
    t.ack(0n);
    expect(t.committable()).toBe(100n);
    expect(t.outstanding).toBe(0);
  });

  it('handles gaps in offsets (compaction, transaction markers) by order of receipt', () => {
    const t = tracking(10, 14, 20);
    t.ack(10n);
    expect(t.committable()).toBe(11n);
    t.ack(20n);
    expect(t.committable()).toBe(11n);
    t.ack(14n);
    expect(t.committable()).toBe(21n);
  });

  it('reports a watermark once until it moves again', () => {
    const t = tracking(0, 1);
    t.ack(0n);
    expect(t.uncommitted()).toBe(1n);
    t.markCommitted(1n);
    expect(t.uncommitted()).toBeUndefined();
    t.ack(1n);
    expect(t.uncommitted()).toBe(2n);
  });

  it('ignores acknowledgements of offsets below the watermark or never tracked before it', () => {
    const t = tracking(5, 6);
    t.ack(5n);
    t.ack(5n);
    t.ack(2n);
    expect(t.committable()).toBe(6n);
    expect(t.outstanding).toBe(1);
  });

  it('refuses offsets that do not increase', () => {
    const t = tracking(5);
    expect(() => t.track(5n)).toThrow(RangeError);
    expect(() => t.track(4n)).toThrow(/must increase/);
  });

  it('knows the last offset it holds, also after everything was acknowledged', () => {
    const t = tracking(7, 8);
    expect(t.lastTracked()).toBe(8n);
    t.ack(7n);
    t.ack(8n);
    expect(t.lastTracked()).toBe(8n);
  });

  it('stays correct across its internal compaction', () => {
    const t = new OffsetTracker();
    for (let i = 0; i < 10_000; i++) t.track(BigInt(i * 2));
    for (let i = 0; i < 9_999; i++) t.ack(BigInt(i * 2));
    expect(t.committable()).toBe(BigInt(9_998 * 2 + 1));
    expect(t.outstanding).toBe(1);
    t.ack(BigInt(9_999 * 2));
    expect(t.committable()).toBe(BigInt(9_999 * 2 + 1));
  });
});
