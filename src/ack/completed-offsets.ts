/**
 * Offsets completed ahead of a partition's committed watermark, as text for the commit's metadata
 * (docs/commit-metadata.md). A commit stays the contiguous watermark; this remembers what was finished beyond it so
 * that the partition's next owner skips those messages after a crash or rebalance instead of handling them again.
 * Confluent Parallel Consumer does the same (OffsetMapCodecManager: run-length or bitset, the smaller one, bounded).
 *
 * Text: `cv1:` + base64url (no padding) of bytes
 *
 *   kind (1 byte: 1 run-length, 2 bitset) · base (varint: the committed offset it was encoded for) · body
 *
 *   run-length: varint count of runs, then that many varint run lengths, alternating "not completed",
 *               "completed", ..., starting at the base, ending with a "completed" run (the base itself is never
 *               completed: it is the first offset the next owner reads, so every run is at least 1 long);
 *   bitset:     varint number of bits N, then ceil(N / 8) bytes; bit i (least significant first) set: base + i is
 *               completed; bit 0 clear, bit N-1 set, no bits beyond N.
 *
 * Varints are unsigned LEB128 (7 bits a byte, least significant group first). The base is in the encoding so that
 * metadata read back with another committed offset (committed by something that did not write it, say a reset or
 * an older client) is refused instead of skipping the wrong messages. decode refuses everything it did not write,
 * and only ever yields offsets above the committed offset.
 */

/** Prefix of every encoding; another version gets another prefix, and decode refuses what it does not know. */
export const COMPLETED_OFFSETS_PREFIX = 'cv1:';

/**
 * Default bound of the metadata text, in bytes: the broker's offset.metadata.max.bytes defaults to 4096, and a
 * commit with longer metadata fails whole (OFFSET_METADATA_TOO_LARGE). The Confluent client sends the text with a
 * NUL byte appended; the rest is a margin for a broker configured a little lower.
 */
export const DEFAULT_METADATA_MAX_BYTES = 4000;

/**
 * The most offsets one encoding may hold. A run-length encoding of a few bytes can stand for millions of offsets;
 * decoded, they are held in memory until their records arrive, so encode and decode both stop here.
 */
export const MAX_COMPLETED_OFFSETS = 100_000;

const RUN_LENGTH = 1;
const BITSET = 2;
/** 64-bit offsets need at most 10 groups of 7 bits. */
const MAX_VARINT_BYTES = 10;
const MAX_OFFSET = (1n << 63n) - 1n;
const BASE64URL = /^[A-Za-z0-9_-]*$/;

/**
 * The metadata for a commit of `base` whose `completed` offsets (ascending, all above `base`) are done: '' when
 * there are none (nothing to remember), undefined when they do not fit in `maxBytes` (or exceed
 * MAX_COMPLETED_OFFSETS, or the input is not ascending offsets above a non-negative base). Never throws.
 */
export function encodeCompletedOffsets(base: bigint, completed: readonly bigint[], maxBytes = DEFAULT_METADATA_MAX_BYTES): string | undefined {
  if (base < 0n || base > MAX_OFFSET) return undefined;
  if (completed.length === 0) return '';
  if (completed.length > MAX_COMPLETED_OFFSETS) return undefined;
  let previous = base;
  for (const offset of completed) {
    if (offset <= previous || offset > MAX_OFFSET) return undefined;
    previous = offset;
  }
  // what fits in maxBytes of text: 4 base64 characters carry 3 bytes
  const budget = Math.floor(((maxBytes - COMPLETED_OFFSETS_PREFIX.length) * 3) / 4);
  if (budget <= 0) return undefined;
  const runs = runLength(base, completed);
  const span = previous - base + 1n;
  // the bitset is built only when it can be the smaller one (a sparse set over a long span never is)
  const bitsetBytes = span <= BigInt(budget * 8) ? 1 + varintSize(base) + varintSize(span) + Math.ceil(Number(span) / 8) : Infinity;
  const payload = runs.length <= bitsetBytes ? runs : bitset(base, completed, Number(span));
  if (payload.length > budget) return undefined;
  return COMPLETED_OFFSETS_PREFIX + Buffer.from(payload).toString('base64url');
}

/**
 * The completed offsets that `metadata` records above `committed` (ascending), or undefined when it records none
 * that can be trusted: absent, empty, not ours (another prefix: written by another client), malformed, or written
 * for another committed offset. Never throws.
 */
export function decodeCompletedOffsets(metadata: string | null | undefined, committed: bigint): bigint[] | undefined {
  try {
    if (typeof metadata !== 'string' || typeof committed !== 'bigint') return undefined;
    // the Confluent client stores the text with a NUL byte appended (its binding adds the C terminator)
    let text = metadata;
    while (text.endsWith('\u0000')) text = text.slice(0, -1);
    if (!text.startsWith(COMPLETED_OFFSETS_PREFIX)) return undefined;
    const encoded = text.slice(COMPLETED_OFFSETS_PREFIX.length);
    if (encoded.length === 0 || !BASE64URL.test(encoded)) return undefined;
    const bytes = Buffer.from(encoded, 'base64url');
    // Node decodes leniently: only a canonical encoding (what encode writes) is accepted
    if (bytes.toString('base64url') !== encoded) return undefined;
    const reader = new Reader(bytes);
    const kind = reader.byte();
    const base = reader.varint();
    if (base === undefined || base !== committed) return undefined;
    const offsets = kind === RUN_LENGTH ? readRuns(reader, base) : kind === BITSET ? readBitset(reader, base) : undefined;
    if (!offsets || offsets.length === 0 || !reader.done()) return undefined;
    return offsets;
  } catch {
    return undefined;
  }
}

function runLength(base: bigint, completed: readonly bigint[]): Uint8Array {
  const lengths: bigint[] = [];
  let at = base; // the first offset not yet described
  let i = 0;
  while (i < completed.length) {
    const start = completed[i]!;
    let end = start;
    while (i + 1 < completed.length && completed[i + 1] === end + 1n) end = completed[++i]!;
    i += 1;
    lengths.push(start - at, end - start + 1n);
    at = end + 1n;
  }
  const out = new Writer();
  out.byte(RUN_LENGTH);
  out.varint(base);
  out.varint(BigInt(lengths.length));
  for (const n of lengths) out.varint(n);
  return out.bytes();
}

function bitset(base: bigint, completed: readonly bigint[], bits: number): Uint8Array {
  const set = new Uint8Array(Math.ceil(bits / 8));
  for (const offset of completed) {
    const i = Number(offset - base);
    set[i >> 3]! |= 1 << (i & 7);
  }
  const out = new Writer();
  out.byte(BITSET);
  out.varint(base);
  out.varint(BigInt(bits));
  out.raw(set);
  return out.bytes();
}

function readRuns(reader: Reader, base: bigint): bigint[] | undefined {
  const count = reader.varint();
  // an even number of runs, each at least 1 long and at least a byte: a count beyond the bytes left is malformed
  if (count === undefined || count === 0n || count % 2n !== 0n || count > BigInt(reader.left())) return undefined;
  const offsets: bigint[] = [];
  let at = base;
  for (let r = 0n; r < count; r += 2n) {
    const skipped = reader.varint();
    const done = reader.varint();
    if (skipped === undefined || done === undefined || skipped === 0n || done === 0n) return undefined;
    if (BigInt(offsets.length) + done > BigInt(MAX_COMPLETED_OFFSETS)) return undefined;
    at += skipped;
    if (at + done - 1n > MAX_OFFSET) return undefined;
    for (let n = 0n; n < done; n += 1n) offsets.push(at++);
  }
  return offsets;
}

function readBitset(reader: Reader, base: bigint): bigint[] | undefined {
  const bits = reader.varint();
  if (bits === undefined || bits < 2n || Math.ceil(Number(bits) / 8) !== reader.left()) return undefined;
  const n = Number(bits);
  if (base + bits - 1n > MAX_OFFSET) return undefined;
  const set = reader.rest();
  // bit 0 is the base (never completed), bit N-1 the last completed offset, nothing set beyond it
  if ((set[0]! & 1) !== 0 || (set[(n - 1) >> 3]! & (1 << ((n - 1) & 7))) === 0) return undefined;
  if (n % 8 !== 0 && set[set.length - 1]! >> (n % 8) !== 0) return undefined;
  const offsets: bigint[] = [];
  for (let i = 1; i < n; i++) {
    if ((set[i >> 3]! & (1 << (i & 7))) === 0) continue;
    if (offsets.length >= MAX_COMPLETED_OFFSETS) return undefined;
    offsets.push(base + BigInt(i));
  }
  return offsets;
}

function varintSize(value: bigint): number {
  let n = 1;
  for (let v = value >> 7n; v > 0n; v >>= 7n) n += 1;
  return n;
}

class Writer {
  private readonly chunks: number[] = [];
  private tail: Uint8Array | undefined;

  byte(value: number): void {
    this.chunks.push(value);
  }

  varint(value: bigint): void {
    let v = value;
    while (v >= 0x80n) {
      this.chunks.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    this.chunks.push(Number(v));
  }

  raw(bytes: Uint8Array): void {
    this.tail = bytes;
  }

  bytes(): Uint8Array {
    const head = Uint8Array.from(this.chunks);
    if (!this.tail) return head;
    const out = new Uint8Array(head.length + this.tail.length);
    out.set(head);
    out.set(this.tail, head.length);
    return out;
  }
}

class Reader {
  private at = 0;
  private readonly data: Uint8Array;

  constructor(data: Uint8Array) {
    this.data = data;
  }

  byte(): number | undefined {
    return this.at < this.data.length ? this.data[this.at++] : undefined;
  }

  /** A canonical varint (no superfluous zero groups, at most 10 bytes), or undefined. */
  varint(): bigint | undefined {
    let value = 0n;
    for (let i = 0; i < MAX_VARINT_BYTES; i++) {
      const b = this.byte();
      if (b === undefined) return undefined;
      value |= BigInt(b & 0x7f) << BigInt(7 * i);
      if ((b & 0x80) === 0) return i > 0 && b === 0 ? undefined : value;
    }
    return undefined;
  }

  left(): number {
    return this.data.length - this.at;
  }

  rest(): Uint8Array {
    const rest = this.data.subarray(this.at);
    this.at = this.data.length;
    return rest;
  }

  done(): boolean {
    return this.at === this.data.length;
  }
}
