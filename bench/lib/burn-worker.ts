// A bare worker thread for the cpu benchmark's hardware ceiling: burns `count` messages' worth of CPU and
// reports how long it took (no Kafka, no pool, no messages crossing threads).
import { parentPort, workerData } from 'node:worker_threads';
import { burn } from './burn.ts';

const { iterations, count } = workerData as { iterations: number; count: number };
const seed = Buffer.alloc(1024, 7);
for (let i = 0; i < 20; i++) burn(iterations, seed);
const t0 = performance.now();
for (let i = 0; i < count; i++) burn(iterations, seed);
parentPort?.postMessage(performance.now() - t0);
