/**
 * A handler's `concurrency`: how many units (runs of its handler) may be out at once across all its lanes in this
 * process. Lanes that found nothing free wait in line and are woken in turn as slots come back, so one busy
 * partition cannot keep the others from ever starting.
 */
export class ConcurrencySlots {
  readonly limit: number;
  private used = 0;
  private readonly waiters: Array<() => void> = [];
  private readonly queued = new Set<() => void>();

  constructor(limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`concurrency must be a positive integer; got ${limit}`);
    this.limit = limit;
  }

  get available(): number {
    return this.limit - this.used;
  }

  acquire(n: number): void {
    this.used += n;
  }

  /** Gives `n` slots back and wakes waiting lanes, oldest first, while slots are free. */
  release(n: number): void {
    this.used = Math.max(0, this.used - n);
    while (this.available > 0 && this.waiters.length > 0) {
      const wake = this.waiters.shift()!;
      this.queued.delete(wake);
      wake();
    }
  }

  /** Calls `wake` once a slot is free (once per call; a lane already in line is not queued twice). */
  wait(wake: () => void): void {
    if (this.queued.has(wake)) return;
    this.queued.add(wake);
    this.waiters.push(wake);
  }

  /** A lane that closed leaves the line. */
  leave(wake: () => void): void {
    if (!this.queued.delete(wake)) return;
    const i = this.waiters.indexOf(wake);
    if (i >= 0) this.waiters.splice(i, 1);
  }
}
