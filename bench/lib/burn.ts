/**
 * The CPU-bound "work" of the cpu benchmark: a chain of SHA-256 digests seeded by the message value, like
 * handlers/thumbnails.ts. A fixed number of iterations (calibrated once, on the main thread, to about 1 ms)
 * is the same work for both contenders, so contention for cores shows up as lost throughput instead of being
 * hidden by a wall-clock busy loop.
 */
import { createHash } from 'node:crypto';
import { Worker } from 'node:worker_threads';

export function burn(iterations: number, seed: Uint8Array | null): number {
  let digest: Buffer = createHash('sha256').update(seed ?? new Uint8Array(0)).digest();
  for (let i = 1; i < iterations; i++) digest = createHash('sha256').update(digest).digest();
  return digest[0] ?? 0;
}

/** Iterations of `burn` that take about `targetMs` on this thread (median of several timed rounds). */
export function calibrate(targetMs = 1): { iterations: number; msPerCall: number } {
  const seed = Buffer.alloc(1024, 7);
  for (let i = 0; i < 50; i++) burn(1000, seed); // warm up the JIT and OpenSSL
  const probe = 2000;
  const perIteration: number[] = [];
  for (let round = 0; round < 9; round++) {
    const t0 = performance.now();
    burn(probe, seed);
    perIteration.push((performance.now() - t0) / probe);
  }
  perIteration.sort((a, b) => a - b);
  const msPerIteration = perIteration[Math.floor(perIteration.length / 2)] ?? 0.001;
  const iterations = Math.max(1, Math.round(targetMs / msPerIteration));
  // check: time 200 calls of the calibrated size
  const t0 = performance.now();
  for (let i = 0; i < 200; i++) burn(iterations, seed);
  return { iterations, msPerCall: (performance.now() - t0) / 200 };
}

/**
 * What the hardware allows: `threads` plain worker threads burning `perThread` messages each at once, in
 * messages per second (from the slowest thread). Compare 1 thread with `cores` threads for the best possible speedup.
 */
export async function burnRate(threads: number, iterations: number, perThread: number): Promise<number> {
  const url = new URL('./burn-worker.ts', import.meta.url);
  const times = await Promise.all(
    Array.from({ length: threads }, () => new Promise<number>((resolve, reject) => {
      const worker = new Worker(url, { workerData: { iterations, count: perThread } });
      worker.once('message', (ms: number) => resolve(ms));
      worker.once('error', reject);
    })),
  );
  return (threads * perThread) / (Math.max(...times) / 1000);
}
