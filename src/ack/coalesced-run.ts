/**
 * Runs an async job at most once at a time, with at most one run waiting behind it: what the commit path needs
 * (a commit carries the newest watermarks when it starts, so calls that come while one runs are served by one
 * more run, never by a queue that grows while the broker is away). A caller's promise settles once a run that
 * started after its call has finished. The job must not throw.
 */
export class CoalescedRun {
  readonly #job: () => Promise<void>;
  #running: Promise<void> | undefined;
  #queued: Promise<void> | undefined;

  constructor(job: () => Promise<void>) {
    this.#job = job;
  }

  run(): Promise<void> {
    if (!this.#running) {
      this.#running = this.#job().finally(() => {
        this.#running = undefined;
      });
      return this.#running;
    }
    this.#queued ??= this.#running.then(() => {
      this.#queued = undefined;
      return this.run();
    });
    return this.#queued;
  }
}
