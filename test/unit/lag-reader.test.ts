/** Where a group resumes reading (what its lag counts from), and the age of a message. */
import { describe, expect, it } from 'vitest';
import { ageSeconds, resumePosition } from '../../src/ops/lag-reader.ts';

describe('lag measurement', () => {
  it('counts from the committed offset when it lies in the partition', () => {
    expect(resumePosition(4n, 0n, 10n, 'latest')).toBe(4n);
    expect(resumePosition(0n, 0n, 10n, 'latest')).toBe(0n);
    expect(resumePosition(10n, 0n, 10n, 'earliest')).toBe(10n);
  });

  it('counts from where auto.offset.reset sends the group when nothing is committed', () => {
    expect(resumePosition(null, 3n, 10n, 'earliest')).toBe(3n);
    expect(resumePosition(null, 3n, 10n, 'latest')).toBe(10n);
  });

  it('counts from where auto.offset.reset sends the group when the committed offset is outside the partition', () => {
    // deleted by retention
    expect(resumePosition(2n, 5n, 10n, 'earliest')).toBe(5n);
    expect(resumePosition(2n, 5n, 10n, 'latest')).toBe(10n);
    // beyond the end (the topic was recreated)
    expect(resumePosition(20n, 0n, 10n, 'earliest')).toBe(0n);
  });

  it('gives ages in seconds with millisecond precision, never negative', () => {
    expect(ageSeconds(1_000, 601_500)).toBe(600.5);
    expect(ageSeconds(5_000, 4_000)).toBe(0);
  });
});
