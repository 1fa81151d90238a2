import { describe, expect, it } from 'vitest';
import { backoffCeiling, backoffDelay, RECONNECT_BACKOFF, sleep } from '../../src/failure/backoff.ts';

describe('retry backoff: exponential with full jitter', () => {
  const policy = { baseMs: 1000, maxMs: 30_000 };

  it('doubles the ceiling with each retry: 1 s, 2 s, 4 s (seed 001, base 1.0)', () => {
    expect([0, 1, 2].map((n) => backoffCeiling(n, policy))).toEqual([1000, 2000, 4000]);
  });

  it('never exceeds the cap', () => {
    expect(backoffCeiling(5, policy)).toBe(30_000);
    expect(backoffCeiling(60, policy)).toBe(30_000);
  });

  it('draws every delay in [0, ceiling)', () => {
    for (let n = 0; n < 8; n++) {
      expect(backoffDelay(n, policy, () => 0)).toBe(0);
      expect(backoffDelay(n, policy, () => 0.999999)).toBeLessThan(backoffCeiling(n, policy));
      expect(backoffDelay(n, policy, () => 0.5)).toBe(Math.floor(backoffCeiling(n, policy) / 2));
    }
  });

  it('spreads delays (jitter) rather than repeating one value', () => {
    const delays = new Set(Array.from({ length: 50 }, () => backoffDelay(3, policy)));
    expect(delays.size).toBeGreaterThan(10);
    for (const d of delays) expect(d).toBeGreaterThanOrEqual(0);
    for (const d of delays) expect(d).toBeLessThan(8000);
  });

  it('reconnects from 100 ms up to at most 30 s (seed 000)', () => {
    expect(RECONNECT_BACKOFF).toEqual({ initialMs: 100, maxMs: 30_000 });
  });

  it('sleep stops early when its signal aborts', async () => {
    const c = new AbortController();
    const slept = sleep(60_000, c.signal);
    c.abort(new Error('revoked'));
    await expect(slept).rejects.toThrow('revoked');
  });
});
