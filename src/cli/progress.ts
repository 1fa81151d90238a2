/**
 * Progress of long operations (scanning a dead-letter topic, replaying letters), on stderr so stdout stays clean
 * for output. On a terminal: a cli-progress bar redrawn in place. Otherwise (a pipe, a log file, CI): plain lines
 * such as `replayed 120/500`, at most one per second; an operation that ends within the first second prints
 * nothing, one that printed anything ends with its final count.
 */
import { SingleBar } from 'cli-progress';
import type { CliIO } from './context.ts';

export interface Progress {
  /** How many are done so far. */
  update(done: number): void;
  increment(by?: number): void;
  /** Ends the bar (or prints the final line); call it once, also on failure. */
  stop(): void;
}

export interface ProgressOptions {
  /** Milliseconds between plain lines (default 1000). */
  readonly intervalMs?: number;
  /** Clock (tests). */
  readonly now?: () => number;
}

/** Plain-line progress for a non-terminal stderr. Pure apart from `print`. */
export class ProgressLines implements Progress {
  private done = 0;
  private lastPrintedAt: number;
  private printedDone: number | undefined;
  private readonly intervalMs: number;
  private readonly now: () => number;
  private readonly print: (line: string) => void;
  private readonly verb: string;
  private readonly total: number;

  constructor(print: (line: string) => void, verb: string, total: number, options: ProgressOptions = {}) {
    this.print = print;
    this.verb = verb;
    this.total = total;
    this.intervalMs = options.intervalMs ?? 1000;
    this.now = options.now ?? Date.now;
    this.lastPrintedAt = this.now();
  }

  update(done: number): void {
    this.done = done;
    const now = this.now();
    if (now - this.lastPrintedAt < this.intervalMs) return;
    this.lastPrintedAt = now;
    this.emit();
  }

  increment(by = 1): void {
    this.update(this.done + by);
  }

  stop(): void {
    if (this.printedDone !== undefined && this.printedDone !== this.done) this.emit();
  }

  private emit(): void {
    this.printedDone = this.done;
    this.print(`${this.verb} ${this.done}/${this.total}`);
  }
}

class ProgressBar implements Progress {
  private readonly bar: SingleBar;
  private done = 0;

  constructor(verb: string, total: number) {
    this.bar = new SingleBar({
      format: `${verb} [{bar}] {value}/{total} {percentage}% | eta {eta_formatted}`,
      stream: process.stderr,
      hideCursor: true,
      clearOnComplete: false,
      etaBuffer: 50,
    });
    this.bar.start(total, 0);
  }

  update(done: number): void {
    this.done = done;
    this.bar.update(done);
  }

  increment(by = 1): void {
    this.update(this.done + by);
  }

  stop(): void {
    this.bar.stop();
  }
}

/** A bar on a terminal, throttled lines otherwise. */
export function startProgress(io: CliIO, verb: string, total: number, options: ProgressOptions = {}): Progress {
  return io.interactive ? new ProgressBar(verb, total) : new ProgressLines((line) => io.err(line), verb, total, options);
}
