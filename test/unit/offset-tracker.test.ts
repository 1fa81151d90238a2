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

  describe('completed ahead of the watermark', () => {
    it('lists offsets acknowledged beyond the watermark, ascending, and none on the in-order path', () => {
      const t = tracking(10, 11, 12, 13, 14);
      t.ack(10n);
      expect(t.completedAhead()).toEqual([]);
      t.ack(14n);
      t.ack(12n);
      expect(t.committable()).toBe(11n);
      expect(t.completedAhead()).toEqual([12n, 14n]);
      t.ack(11n);
      expect(t.committable()).toBe(13n);
      expect(t.completedAhead()).toEqual([14n]);
    });

    it('asks for a commit when only the completed-ahead set changed, with the watermark where it was', () => {
      const t = tracking(0, 1, 2, 3);
      t.ack(0n);
      expect(t.uncommitted()).toBe(1n);
      t.markCommitted(1n, t.revision);
      expect(t.uncommitted()).toBeUndefined();
      t.ack(3n);
      expect(t.uncommitted()).toBe(1n); // same watermark, but offset 3 is now done: the metadata must say so
      t.markCommitted(1n, t.revision);
      expect(t.uncommitted()).toBeUndefined();
    });

    it('keeps asking when an acknowledgement came after the commit was taken', () => {
      const t = tracking(0, 1, 2, 3);
      t.ack(2n);
      const offset = t.uncommitted()!;
      const revision = t.revision;
      t.ack(3n); // while the commit is in flight
      t.markCommitted(offset, revision);
      expect(t.uncommitted()).toBe(0n);
      expect(t.completedAhead()).toEqual([2n, 3n]);
    });

    it('commits the first offset received when it is in flight and later ones are done', () => {
      const t = tracking(40, 41, 42);
      expect(t.uncommitted()).toBeUndefined();
      t.ack(42n);
      expect(t.committable()).toBeUndefined();
      expect(t.uncommitted()).toBe(40n);
      expect(t.completedAhead()).toEqual([42n]);
    });

    it('does not ask for a commit on the in-order path beyond the watermark moving', () => {
      const t = tracking(0, 1, 2);
      t.ack(0n);
      t.markCommitted(t.uncommitted()!, t.revision);
      const revision = t.revision;
      t.ack(1n);
      t.ack(2n);
      expect(t.revision).toBe(revision);
      expect(t.uncommitted()).toBe(3n);
    });
  });

  describe('restored from the commit metadata', () => {
    it('reports restored offsets as done when they arrive, and acknowledges them', () => {
      const t = new OffsetTracker();
      expect(t.restoreCompleted([102n, 103n, 105n])).toBe(true);
      expect(t.track(100n)).toBe(true);
      expect(t.track(101n)).toBe(true);
      expect(t.track(102n)).toBe(false);
      expect(t.track(103n)).toBe(false);
      expect(t.track(104n)).toBe(true);
      expect(t.track(105n)).toBe(false);
      expect(t.track(106n)).toBe(true);
      t.ack(100n);
      t.ack(101n);
      expect(t.committable()).toBe(104n);
      t.ack(104n);
      expect(t.committable()).toBe(106n);
    });

    it('skips nothing but the restored offsets, also across gaps in the offsets', () => {
      const t = new OffsetTracker();
      t.restoreCompleted([5n, 7n, 9n]);
      const handled = [4n, 6n, 7n, 8n, 10n].filter((o) => t.track(o));
      expect(handled).toEqual([4n, 6n, 8n, 10n]); // 5 and 9 never arrived (compacted): nothing else is skipped
      expect(t.track(11n)).toBe(true);
    });

    it('carries restored offsets not yet received on in completedAhead', () => {
      const t = new OffsetTracker();
      t.restoreCompleted([3n, 8n, 9n]);
      t.track(1n);
      t.track(2n);
      t.ack(2n);
      expect(t.uncommitted()).toBe(1n);
      expect(t.completedAhead()).toEqual([2n, 3n, 8n, 9n]);
      t.ack(1n);
      expect(t.completedAhead()).toEqual([3n, 8n, 9n]);
      expect(t.track(3n)).toBe(false);
      expect(t.committable()).toBe(4n);
      expect(t.completedAhead()).toEqual([8n, 9n]);
    });

    it('is refused once offsets were received, or when not ascending', () => {
      const t = tracking(1);
      expect(t.restoreCompleted([3n])).toBe(false);
      expect(t.track(3n)).toBe(true);
      const u = new OffsetTracker();
      expect(u.restoreCompleted([3n, 3n])).toBe(false);
      expect(u.track(3n)).toBe(true);
    });
  });
});
