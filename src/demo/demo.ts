/**
 * `npm run demo`: the runtime end to end on the local brokers. Produces a few thousand sample events for the
 * example handlers in handlers/ (plain JSON, a payments handler that fails sometimes and publishes a receipt to
 * RabbitMQ for each payment it accepts, a RabbitMQ queue handler for those receipts, a CPU-heavy one), runs
 * Conveyor until every event is committed and every receipt handled, and prints what happened.
 */
import { randomUUID } from 'node:crypto';
import { loadConfig } from '../config/load.ts';
import { KafkaAdmin, kafkaAdminOptions } from '../kafka/admin.ts';
import { createKafka, kafkaClientOptions } from '../kafka/client.ts';
import { createLogger } from '../ops/logger.ts';
import { Runtime } from '../runtime.ts';

const PARTITIONS = 6;
const DEADLINE_MS = 180_000;

interface Plan {
  readonly topic: string;
  readonly messages: Array<{ key: string; value: string }>;
}

function plans(run: string): { plans: Plan[]; expectRetried: number; expectDeadLettered: number } {
  const users = Array.from({ length: 50 }, (_, i) => `user-${i}`);
  const greetings = Array.from({ length: 3000 }, (_, i) => {
    const user = users[i % users.length]!;
    return { key: user, value: JSON.stringify({ userId: user, name: `Name ${i}`, run }) };
  });
  let expectRetried = 0;
  let expectDeadLettered = 0;
  const payments = Array.from({ length: 1500 }, (_, i) => {
    const account = i % 97 === 0 ? 'blocked' : `acct-${i % 40}`;
    const amount = i % 101 === 0 ? -5 : 10 + (i % 50);
    const flaky = i % 10 === 3;
    // the handler checks in this order: negative amount (no retry), blocked account (3 retries), flaky (1 retry)
    if (amount < 0) expectDeadLettered += 1;
    else if (account === 'blocked') {
      expectDeadLettered += 1;
      expectRetried += 3;
    } else if (flaky) expectRetried += 1;
    return { key: account, value: JSON.stringify({ paymentId: `p-${i}`, account, amount, flaky, run }) };
  });
  const images = Array.from({ length: 500 }, (_, i) => ({
    key: `img-${i}`,
    value: JSON.stringify({ imageId: `img-${i}-${run}`, width: 1024, height: 768 }),
  }));
  return {
    plans: [
      { topic: 'conveyor.demo.greetings', messages: greetings },
      { topic: 'conveyor.demo.payments', messages: payments },
      { topic: 'conveyor.demo.images', messages: images },
    ],
    expectRetried,
    expectDeadLettered,
  };
}

async function main(): Promise<number> {
  const config = loadConfig({ file: process.env.CONVEYOR_DEMO_CONFIG ?? 'config/demo.yaml' });
  const logger = createLogger('conveyor', config.log.level);
  const runtime = await Runtime.create(config, logger);
  const kafka = createKafka(kafkaClientOptions(config, 'conveyor-demo'));
  const admin = new KafkaAdmin(kafkaAdminOptions(config, 'conveyor-demo'));

  const run = randomUUID().slice(0, 8);
  const { plans: work, expectRetried, expectDeadLettered } = plans(run);
  const expectReceipts = work.find((p) => p.topic === 'conveyor.demo.payments')!.messages.length - expectDeadLettered;
  const existing = await admin.topics();
  for (const topic of work.map((p) => p.topic).filter((t) => !existing.has(t))) await admin.createTopic(topic, PARTITIONS);

  const producer = kafka.producer({ 'enable.idempotence': true, acks: -1, 'compression.type': 'zstd', 'linger.ms': 5 } as never);
  await producer.connect();
  const produced = Date.now();
  for (const plan of work) {
    for (let i = 0; i < plan.messages.length; i += 500) {
      await producer.send({ topic: plan.topic, messages: plan.messages.slice(i, i + 500) });
    }
  }
  await producer.disconnect();
  const total = work.reduce((n, p) => n + p.messages.length, 0);
  console.log(`produced  ${total} events in ${Date.now() - produced} ms: ${work.map((p) => `${p.messages.length} → ${p.topic}`).join(', ')}`);

  // Where each partition ends now: the run is done when the groups have committed up to here.
  const ends = new Map<string, bigint>();
  for (const plan of work) {
    for (const o of await admin.topicOffsets(plan.topic)) ends.set(`${plan.topic}/${o.partition}`, o.high);
  }
  // Partitions that got nothing new count as done at what their group already committed.
  const committed = new Map<string, bigint>();
  for (const h of runtime.handlers.filter((s) => s.broker === 'kafka')) {
    for (const [topic, partitions] of await admin.committedOffsets(h.group, h.topics)) {
      for (const [partition, offset] of partitions) committed.set(`${topic}/${partition}`, offset);
    }
  }
  await admin.close();

  const lastHandled = new Map<string, bigint>();
  const perHandler = new Map<string, { handled: number; retried: number; deadLettered: number }>();
  const counts = (h: string) => perHandler.get(h) ?? (perHandler.set(h, { handled: 0, retried: 0, deadLettered: 0 }), perHandler.get(h)!);
  let outOfOrder = 0;
  const inOrder = (topic: string, partition: number, first: bigint, last: bigint): void => {
    const k = `${topic}/${partition}`;
    if ((lastHandled.get(k) ?? -1n) >= first) outOfOrder += 1;
    lastHandled.set(k, last);
  };
  runtime.events.on('messages.handled', (e) => {
    counts(e.handler).handled += e.count;
    // RabbitMQ lanes (partition -1) of a concurrent handler have no order to keep
    if (e.partition >= 0) inOrder(e.topic, e.partition, BigInt(e.offset), BigInt(e.lastOffset));
  });
  runtime.events.on('message.retry', (e) => (counts(e.handler).retried += 1));
  runtime.events.on('message.dead_lettered', (e) => {
    counts(e.handler).deadLettered += 1;
    if (e.partition >= 0) inOrder(e.topic, e.partition, BigInt(e.offset), BigInt(e.offset));
  });
  runtime.events.on('offsets.committed', (e) => {
    for (const o of e.offsets) committed.set(`${o.topic}/${o.partition}`, BigInt(o.offset));
  });
  const receipts = (): number => counts('receipts').handled;
  const done = (): boolean => [...ends].every(([k, end]) => end === 0n || (committed.get(k) ?? -1n) >= end) && receipts() >= expectReceipts;

  const started = Date.now();
  await runtime.start();
  console.log(`running   ${runtime.handlers.map((h) => `${h.name} (${h.topics.join(',')})`).join(', ')} on ${runtime.config.pool.size || 'all'} worker threads`);
  let lastPrint = 0;
  while (!done()) {
    if (Date.now() - started > DEADLINE_MS) {
      console.error(`demo: not all events were committed within ${DEADLINE_MS / 1000} s`);
      await runtime.stop();
      return 1;
    }
    if (Date.now() - lastPrint >= 1000) {
      lastPrint = Date.now();
      console.log(`progress  ${runtime.stats.handled + runtime.stats.deadLettered} handled or dead-lettered, ${runtime.stats.retries} retries, ${receipts()}/${expectReceipts} receipts`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const elapsed = (Date.now() - started) / 1000;
  await runtime.stop();

  const rows = [...perHandler].sort(([a], [b]) => a.localeCompare(b));
  console.log('\nhandler       processed   retried   dead-lettered');
  for (const [name, c] of rows) console.log(`${name.padEnd(13)} ${String(c.handled).padStart(9)} ${String(c.retried).padStart(9)} ${String(c.deadLettered).padStart(15)}`);
  const handled = rows.reduce((n, [, c]) => n + c.handled + c.deadLettered, 0);
  console.log(`\nexpected from this run's events: ${expectRetried} retries, ${expectDeadLettered} dead-lettered (to conveyor.demo.payments.dlq), ${expectReceipts} receipts through RabbitMQ`);
  console.log(`order     per-partition order ${outOfOrder === 0 ? 'verified' : `BROKEN ${outOfOrder} times`} across ${lastHandled.size} partitions`);
  console.log(`committed every partition up to its end offset`);
  console.log(`throughput ${Math.round(handled / elapsed)} msg/s (${handled} messages in ${elapsed.toFixed(1)} s, including the CPU-heavy ones)`);
  return outOfOrder === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`demo failed: ${err instanceof Error ? err.stack : String(err)}`);
    console.error('are the brokers up? `npm run brokers` starts them (npm run demo does so itself)');
    process.exit(1);
  },
);
