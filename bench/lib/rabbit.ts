/**
 * What the RabbitMQ benchmarks share (bench/memory.ts, bench/rabbitmq.ts): the broker's URL, filling a fresh
 * durable queue, and deleting it with the retry and dead-letter queues Conveyor declared beside it.
 */
import amqp from 'amqplib';

export const amqpUrl = process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

/**
 * Declares `queue` (durable) and publishes `total` messages of `size` bytes into it (`body(i)` when given), with
 * publisher confirms every 5,000; checks the queue holds them. Returns the time it took, in ms.
 */
export async function fillQueue(queue: string, total: number, size: number, body?: (i: number) => Buffer): Promise<number> {
  const t0 = performance.now();
  const connection = await amqp.connect(amqpUrl, { noDelay: true });
  const channel = await connection.createConfirmChannel();
  await channel.assertQueue(queue, { durable: true });
  const fixed = Buffer.alloc(size, 'x');
  for (let i = 0; i < total; i++) {
    if (!channel.sendToQueue(queue, body ? body(i) : fixed, { persistent: false })) await new Promise((r) => channel.once('drain', r));
    if (i % 5000 === 4999) await channel.waitForConfirms();
  }
  await channel.waitForConfirms();
  const { messageCount } = await channel.checkQueue(queue);
  await channel.close();
  await connection.close();
  if (messageCount !== total) throw new Error(`queue ${queue} holds ${messageCount} messages, expected ${total}`);
  return performance.now() - t0;
}

/** Messages ready in `queue` (not delivered, or delivered and returned unacknowledged). */
export async function queueDepth(queue: string): Promise<number> {
  const connection = await amqp.connect(amqpUrl);
  try {
    const channel = await connection.createChannel();
    return (await channel.checkQueue(queue)).messageCount;
  } finally {
    await connection.close().catch(() => {});
  }
}

/** Deletes the queue and the retry and dead-letter queues Conveyor declared beside it (deleting a missing queue is fine). */
export async function deleteQueue(queue: string): Promise<void> {
  const connection = await amqp.connect(amqpUrl);
  const channel = await connection.createChannel();
  for (const name of [queue, `${queue}.dlq`, ...Array.from({ length: 32 }, (_, i) => `${queue}.retry.${i + 1}`)]) {
    await channel.deleteQueue(name).catch(() => {});
  }
  await connection.close().catch(() => {});
}
