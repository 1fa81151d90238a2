/** `npm run demo`'s program, run as a user would after the build: the runtime end to end, exit 0. */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { describe, expect, inject, it } from 'vitest';

const run = promisify(execFile);

describe('the demo', () => {
  it('runs the example handlers, retries, dead-letters, keeps order and reports it', async () => {
    expect(existsSync('dist/demo/demo.js'), 'build first: npm test builds before it tests').toBe(true);
    const { stdout } = await run(process.execPath, ['dist/demo/demo.js'], {
      env: { ...process.env, KAFKA_BOOTSTRAP_SERVERS: inject('kafkaBrokers'), AMQP_URL: inject('amqpUrl'), CONVEYOR_OPS_PORT: '0' },
      timeout: 170_000,
    });
    const row = (name: string) => stdout.match(new RegExp(`^${name}\\s+(\\d+)\\s+(\\d+)\\s+(\\d+)$`, 'm'))?.slice(1).map(Number);
    // this run's events: 3000 greetings, 1500 payments (192 retries, 30 dead letters), 500 images
    expect(stdout).toMatch(/expected from this run's events: 192 retries, 30 dead-lettered \(to conveyor.demo.payments.dlq\), 1470 receipts through RabbitMQ/);
    expect(row('greetings')?.[0]).toBeGreaterThanOrEqual(3000);
    expect(row('payments')).toEqual([1470, 192, 30]);
    expect(row('thumbnails')?.[0]).toBeGreaterThanOrEqual(500);
    // one receipt per accepted payment, published to RabbitMQ by the payments handler and consumed from a queue
    expect(row('receipts')?.[0]).toBeGreaterThanOrEqual(1470);
    expect(stdout).toMatch(/per-partition order verified across \d+ partitions/);
    expect(stdout).toMatch(/throughput \d+ msg\/s/);
  }, 180_000);
});
