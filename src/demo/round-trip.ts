/**
 * `npm run demo` (for now): one round trip through the local Kafka broker with an example handler file.
 * Produces a batch of events, consumes them with a manual-commit consumer group, runs each through
 * handlers/greetings.ts, commits after each handled message and prints what happened.
 * The runtime issue replaces this with the real runner and its worker pool.
 */
import { randomUUID } from 'node:crypto';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { isHandler, type Handler } from '../handlers/define-handler.ts';
import { CompressionTypes, createKafka, driverFeatures } from '../kafka/client.ts';

const brokers = (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');
const handlerFile = resolve(process.env.CONVEYOR_DEMO_HANDLER ?? 'handlers/greetings.ts');
const EVENTS = 30;
const PARTITIONS = 3;
const DEADLINE_MS = 60_000;

async function loadHandler(file: string): Promise<Handler> {
  const mod = (await import(pathToFileURL(file).href)) as { default?: unknown };
  if (!isHandler(mod.default)) throw new Error(`${file}: default export is not defineHandler({...})`);
  return mod.default;
}

async function main(): Promise<void> {
  const started = Date.now();
  const handler = await loadHandler(handlerFile);
  const topic = handler.topic ?? handler.topics?.[0];
  if (!topic) throw new Error(`${handlerFile}: declares no topic`);
  const { librdkafkaVersion, features } = driverFeatures();
  console.log(`handler   ${handler.name ?? handlerFile} from ${handlerFile} -> topic ${topic}`);
  console.log(`broker    ${brokers.join(',')} (librdkafka ${librdkafkaVersion}, zstd ${features.includes('zstd') ? 'yes' : 'no'})`);

  const kafka = createKafka({ brokers, clientId: 'conveyor-demo' });
  const admin = kafka.admin();
  await admin.connect();
  const created = await admin.createTopics({ topics: [{ topic, numPartitions: PARTITIONS }] });
  console.log(`topic     ${topic} ${created ? `created with ${PARTITIONS} partitions` : 'already exists'}`);

  const run = randomUUID();
  const producer = kafka.producer({ kafkaJS: { idempotent: true, acks: -1, compression: CompressionTypes.ZSTD } });
  await producer.connect();
  const users = ['ada', 'grace', 'linus', 'barbara', 'ken', 'margaret'];
  await producer.send({
    topic,
    messages: Array.from({ length: EVENTS }, (_, seq) => {
      const name = users[seq % users.length]!;
      return {
        key: name,
        value: JSON.stringify({ userId: `${name}-${run.slice(0, 8)}`, name, seq, run }),
        headers: { 'x-demo-run': run },
      };
    }),
  });
  await producer.disconnect();
  console.log(`produced  ${EVENTS} events keyed by user (idempotent, acks=all, zstd)`);

  const groupId = 'conveyor-demo';
  const consumer = kafka.consumer({ kafkaJS: { groupId, fromBeginning: true, autoCommit: false } });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic] });
  const lastSeq = new Map<number, number>();
  const perPartition = new Map<number, number>();
  let handled = 0;
  let earlier = 0;
  let outOfOrder = 0;
  const done = new Promise<void>((resolveDone, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${handled}/${EVENTS} events came back within ${DEADLINE_MS} ms`)), DEADLINE_MS);
    void consumer.run({
      eachMessage: async ({ partition, message }) => {
        const value = JSON.parse(message.value?.toString() ?? 'null') as { seq: number; run: string };
        const ac = new AbortController();
        await handler.handle(
          {
            topic, partition, offset: message.offset, key: message.key?.toString() ?? null, value,
            headers: Object.fromEntries(Object.entries(message.headers ?? {}).map(([k, v]) => [k, String(v)])),
            timestamp: Number(message.timestamp),
          },
          { attempt: 1, signal: ac.signal },
        );
        // Commit only after the handler returned: the next offset to read is this one + 1.
        await consumer.commitOffsets([{ topic, partition, offset: String(BigInt(message.offset) + 1n) }]);
        if (value.run !== run) { earlier += 1; return; }
        if ((lastSeq.get(partition) ?? -1) > value.seq) outOfOrder += 1;
        lastSeq.set(partition, value.seq);
        perPartition.set(partition, (perPartition.get(partition) ?? 0) + 1);
        handled += 1;
        if (handled === EVENTS) { clearTimeout(timer); resolveDone(); }
      },
    }).catch(reject);
  });
  await done;
  await consumer.disconnect();

  const offsets = await admin.fetchOffsets({ groupId, topics: [topic] });
  await admin.disconnect();
  const committed = offsets.flatMap((t) => t.partitions).sort((a, b) => a.partition - b.partition)
    .map((p) => `p${p.partition}=${p.offset}`).join(' ');
  const spread = [...perPartition].sort(([a], [b]) => a - b).map(([p, n]) => `p${p}=${n}`).join(' ');
  console.log(`handled   ${handled} events of this run with ${handler.name ?? 'the handler'}, by partition: ${spread}${earlier ? ` (+${earlier} left uncommitted by an earlier run)` : ''}`);
  console.log(`order     per-partition order ${outOfOrder === 0 ? 'kept' : `BROKEN ${outOfOrder} times`}`);
  console.log(`committed group ${groupId}: ${committed}`);
  console.log(`round trip ok in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  if (outOfOrder > 0) process.exitCode = 1;
}

main().catch((err: unknown) => {
  console.error(`demo failed: ${err instanceof Error ? err.message : String(err)}`);
  console.error('are the brokers up? `npm run brokers` starts them (npm run demo does so itself)');
  process.exit(1);
});
