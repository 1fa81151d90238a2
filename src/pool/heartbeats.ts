/**
 * Worker threads' heartbeats in shared memory: each worker stores the time every BEAT_MS from a timer, so a thread
 * whose handler blocks its event loop stops beating. The balancer (thread-balancer.ts) passes over such a thread.
 * Times are milliseconds since `base`, in an Int32 that wraps every ~24 days: compared by wrapping subtraction.
 * Slots are threadId modulo SLOTS (live threads are few and their ids close together).
 */
export const BEAT_MS = 50;
/** A thread that has not beaten for this long counts as blocked. */
export const STALE_MS = 250;
const SLOTS = 1024;

export class Heartbeats {
  readonly buffer = new SharedArrayBuffer(4 * (SLOTS + 1));
  private readonly beats = new Int32Array(this.buffer);

  constructor() {
    // slot SLOTS holds the base (low 31 bits of Date.now() at creation): workers read it
    Atomics.store(this.beats, SLOTS, Date.now() % 2 ** 31);
  }

  /** Beaten within STALE_MS; a thread that never beat yet (starting) counts as responsive. */
  responsive(threadId: number): boolean {
    const last = Atomics.load(this.beats, threadId % SLOTS);
    if (last === 0) return true;
    return ((elapsed(this.beats) - last) | 0) < STALE_MS;
  }
}

function elapsed(beats: Int32Array): number {
  return ((Date.now() % 2 ** 31) - Atomics.load(beats, SLOTS)) | 0 || 1;
}

/** In a worker: beats for `threadId` until the thread ends (the timer does not keep it alive). */
export function startBeating(buffer: SharedArrayBuffer, threadId: number): void {
  const beats = new Int32Array(buffer);
  const beat = (): void => void Atomics.store(beats, threadId % SLOTS, elapsed(beats));
  beat();
  setInterval(beat, BEAT_MS).unref();
}
