import { describe, expect, it } from 'vitest';
import {
  COMPLETED_OFFSETS_PREFIX,
  decodeCompletedOffsets,
  DEFAULT_METADATA_MAX_BYTES,
  encodeCompletedOffsets,
  MAX_COMPLETED_OFFSETS,
} from '../../src/ack/completed-offsets.ts';

const big = (...offsets: number[]): bigint[] => offsets.map(BigInt);

function roundTrip(base: bigint, completed: bigint[], maxBytes?: number): bigint[] | undefined {
  const text = encodeCompletedOffsets(base, completed, maxBytes);
  expect(text).toBeDefined();
  expect(text!.startsWith(COMPLETED_OFFSETS_PREFIX)).toBe(true);
  expect(text!.length).toBeLessThanOrEqual(maxBytes ?? DEFAULT_METADATA_MAX_BYTES);
  return decodeCompletedOffsets(text, base);
}

/** The encoding's kind byte (1 run-length, 2 bitset). */
function kind(text: string): number {
  return Buffer.from(text.slice(COMPLETED_OFFSETS_PREFIX.length), 'base64url')[0]!;
}

describe('completed offsets in the commit metadata', () => {
  it('round-trips a few offsets above the committed one', () => {
    expect(roundTrip(100n, big(101, 105, 106, 107, 200))).toEqual(big(101, 105, 106, 107, 200));
  });

  it('round-trips offsets next to the base and at the top of the 64-bit range', () => {
    expect(roundTrip(0n, big(1))).toEqual(big(1));
    const top = (1n << 63n) - 1n;
    expect(roundTrip(top - 3n, [top - 1n, top])).toEqual([top - 1n, top]);
  });

  it('encodes nothing to remember as empty metadata', () => {
    expect(encodeCompletedOffsets(42n, [])).toBe('');
    expect(decodeCompletedOffsets('', 42n)).toBeUndefined();
  });

  it('uses a run-length encoding for long runs and a bitset for an alternating pattern, whichever is smaller', () => {
    const runs = Array.from({ length: 50_000 }, (_, i) => 1_000_001n + BigInt(i));
    const dense = encodeCompletedOffsets(1_000_000n, runs)!;
    expect(kind(dense)).toBe(1);
    expect(dense.length).toBeLessThan(32);
    expect(decodeCompletedOffsets(dense, 1_000_000n)).toEqual(runs);

    const alternating = Array.from({ length: 5_000 }, (_, i) => 10n + 2n * BigInt(i + 1));
    const text = encodeCompletedOffsets(10n, alternating)!;
    expect(kind(text)).toBe(2);
    // a bit per offset of the span: about 10 000 bits, 1 250 bytes, 1 700 characters
    expect(text.length).toBeLessThan(1_700);
    expect(decodeCompletedOffsets(text, 10n)).toEqual(alternating);
  });

  it('round-trips a large sparse set (run-length) and a large dense random set (bitset)', () => {
    let seed = 7;
    const random = (): number => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
    const sparse: bigint[] = [];
    for (let at = 5_000_000_000n; sparse.length < 500; ) sparse.push((at += 1n + BigInt(Math.floor(random() * 100_000))));
    const sparseText = encodeCompletedOffsets(5_000_000_000n, sparse)!;
    expect(kind(sparseText)).toBe(1);
    expect(decodeCompletedOffsets(sparseText, 5_000_000_000n)).toEqual(sparse);

    const dense = Array.from({ length: 20_000 }, (_, i) => 1n + BigInt(i)).filter(() => random() < 0.5);
    const denseText = encodeCompletedOffsets(0n, dense)!;
    expect(kind(denseText)).toBe(2);
    expect(decodeCompletedOffsets(denseText, 0n)).toEqual(dense);
  });

  it('gives up (undefined) when the encoding does not fit the bound', () => {
    const alternating = Array.from({ length: 20_000 }, (_, i) => 2n * BigInt(i + 1));
    expect(encodeCompletedOffsets(0n, alternating)).toBeUndefined(); // 40 000 bits: 5 000 bytes before base64
    // 100 of them: a bitset of 201 bits, 30 bytes with its header, 40 characters of base64
    expect(encodeCompletedOffsets(0n, alternating.slice(0, 100), 43)).toBeUndefined();
    expect(encodeCompletedOffsets(0n, alternating.slice(0, 100), 44)).toHaveLength(44);
    expect(encodeCompletedOffsets(0n, [1n], COMPLETED_OFFSETS_PREFIX.length)).toBeUndefined();
  });

  it('gives up beyond MAX_COMPLETED_OFFSETS however well they compress', () => {
    const many = Array.from({ length: MAX_COMPLETED_OFFSETS + 1 }, (_, i) => 1n + BigInt(i));
    expect(encodeCompletedOffsets(0n, many)).toBeUndefined();
    expect(encodeCompletedOffsets(0n, many.slice(1))).toBeDefined();
  });

  it('refuses input that is not ascending offsets above a non-negative base', () => {
    expect(encodeCompletedOffsets(10n, big(12, 11))).toBeUndefined();
    expect(encodeCompletedOffsets(10n, big(11, 11))).toBeUndefined();
    expect(encodeCompletedOffsets(10n, big(10))).toBeUndefined();
    expect(encodeCompletedOffsets(10n, big(9))).toBeUndefined();
    expect(encodeCompletedOffsets(-1n, big(1))).toBeUndefined();
    expect(encodeCompletedOffsets(0n, [1n << 63n])).toBeUndefined();
  });

  it('decodes what the Confluent client stored (with its NUL terminator)', () => {
    const text = encodeCompletedOffsets(7n, big(9, 10))!;
    expect(decodeCompletedOffsets(`${text}\u0000`, 7n)).toEqual(big(9, 10));
  });

  it('refuses metadata encoded for another committed offset', () => {
    const text = encodeCompletedOffsets(100n, big(105))!;
    expect(decodeCompletedOffsets(text, 101n)).toBeUndefined();
    expect(decodeCompletedOffsets(text, 99n)).toBeUndefined();
    expect(decodeCompletedOffsets(text, 0n)).toBeUndefined();
  });

  it('refuses absent, foreign and garbage metadata without throwing', () => {
    const good = encodeCompletedOffsets(100n, big(105, 107))!;
    const body = good.slice(COMPLETED_OFFSETS_PREFIX.length);
    const bytes = Buffer.from(body, 'base64url');
    const withBytes = (mutate: (b: Buffer) => Buffer): string => COMPLETED_OFFSETS_PREFIX + mutate(Buffer.from(bytes)).toString('base64url');
    const cases: unknown[] = [
      undefined,
      null,
      '',
      '\u0000',
      'some other client',
      'cv2:' + body, // a version this one does not know
      'CV1:' + body,
      COMPLETED_OFFSETS_PREFIX,
      COMPLETED_OFFSETS_PREFIX + '!!!!',
      COMPLETED_OFFSETS_PREFIX + body + '=', // padding: not what encode writes
      COMPLETED_OFFSETS_PREFIX + body.slice(0, -1), // truncated
      good + 'AA', // trailing bytes
      withBytes((b) => ((b[0] = 3), b)), // unknown kind
      withBytes((b) => b.subarray(0, 2)), // cut inside the body
      COMPLETED_OFFSETS_PREFIX + Buffer.from([1, 100, 2, 0, 1]).toString('base64url'), // a run of length 0
      COMPLETED_OFFSETS_PREFIX + Buffer.from([1, 100, 1, 5]).toString('base64url'), // an odd number of runs
      COMPLETED_OFFSETS_PREFIX + Buffer.from([1, 100, 0]).toString('base64url'), // no runs
      COMPLETED_OFFSETS_PREFIX + Buffer.from([1, 0xe4, 0x00, 2, 5, 1]).toString('base64url'), // non-canonical varint base
      COMPLETED_OFFSETS_PREFIX + Buffer.from([1, 100, 2, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]).toString('base64url'), // 2^70-long run
      COMPLETED_OFFSETS_PREFIX + Buffer.from([1, 100, 2, 1, 0xff, 0xff, 0xff, 0x7f]).toString('base64url'), // more than MAX_COMPLETED_OFFSETS
      COMPLETED_OFFSETS_PREFIX + Buffer.from([2, 100, 8, 0b00000001]).toString('base64url'), // bitset with the base set
      COMPLETED_OFFSETS_PREFIX + Buffer.from([2, 100, 8, 0b00000010]).toString('base64url'), // bitset whose last bit is clear
      COMPLETED_OFFSETS_PREFIX + Buffer.from([2, 100, 4, 0b00011000]).toString('base64url'), // bits beyond its length
      COMPLETED_OFFSETS_PREFIX + Buffer.from([2, 100, 16, 0b10]).toString('base64url'), // fewer bytes than bits
      COMPLETED_OFFSETS_PREFIX + Buffer.from([2, 100, 1, 0]).toString('base64url'), // too short to hold anything
      42,
      { toString: () => good },
    ];
    for (const metadata of cases) expect(decodeCompletedOffsets(metadata as string, 100n), JSON.stringify(String(metadata))).toBeUndefined();
    expect(decodeCompletedOffsets(good, 100n)).toEqual(big(105, 107));
  });

  it('never throws or yields offsets at or below the committed one, whatever the bytes', () => {
    let seed = 11;
    const random = (n: number): number => Math.floor((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31 * n);
    for (let i = 0; i < 5_000; i++) {
      const bytes = Buffer.from(Array.from({ length: 1 + random(12) }, () => random(256)));
      bytes[0] = 1 + random(2);
      bytes[1] = 100; // base 100, so that the body is what gets exercised
      const decoded = decodeCompletedOffsets(COMPLETED_OFFSETS_PREFIX + bytes.toString('base64url'), 100n);
      if (decoded === undefined) continue;
      expect(decoded.length).toBeGreaterThan(0);
      expect(decoded[0]!).toBeGreaterThan(100n);
      for (let k = 1; k < decoded.length; k++) expect(decoded[k]!).toBeGreaterThan(decoded[k - 1]!);
    }
  });
});
