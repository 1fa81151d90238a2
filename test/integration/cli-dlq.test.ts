/**
 * `conveyor dlq` against real brokers, on dead letters the runner made: list, show, replay back to where the messages
 * came from (read back: same key, value and headers, plus x-conveyor-replayed-from), resolve, and
 * events.dlq.not_found (exit 2) for unknown and already resolved ids. Kafka and RabbitMQ.
 */
import { randomUUID } from 'node:crypto';
import type { GetMessage } from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeadLetterEnvelope } from '../../src/failure/dead-letter.ts';
import { useKafkaFixture } from '../support/fixture.ts';
import { brokerConfig, jsonOf, runCli } from '../support/cli.ts';
import { committedOffsets, deleteTopics, readTopicRaw, uniqueName, waitFor } from '../support/kafka.ts';
import { deleteQueues, drainQueue, openChannel, uniqueQueue, type OpenedChannel } from '../support/rabbitmq.ts';
import { startRunner } from '../support/runner.ts';
import type { Kafka } from '../../src/kafka/client.ts';

interface ListedLetter {
  readonly id: string;
  readonly status: 'unresolved' | 'replayed' | 'resolved';
  readonly dlq: string;
  readonly envelope: DeadLetterEnvelope;
  readonly resolution?: { how: string; resolvedAt: string };
}


describe('conveyor dlq on Kafka', () => {
  const fx = useKafkaFixture();
  const resolvedTopics: string[] = [];
  afterAll(async () => {
    await deleteTopics(resolvedTopics);
  });

  it('lists, shows, replays (--filter), resolves the runner\'s dead letters; unknown or resolved ids are events.dlq.not_found', async () => {
    const { topic, dlq, group } = await fx.topic('cli-dlq', 2);
    resolvedTopics.push(`${dlq}.resolved`);
    const correlationId = randomUUID();
    const binary = Buffer.from([0xff, 0xfe, 0x00, 0x80, 0x7b]); // not UTF-8, not JSON: DeserializationFailure, kept as base64
    const producer = fx.kafka.producer({ 'enable.idempotence': true, acks: -1 } as never);
    await producer.connect();
    await producer.send({
      topic,
      messages: [
        { key: 'k0', partition: 0, value: JSON.stringify({ seq: 0 }) },
        { key: 'k1', partition: 0, value: JSON.stringify({ seq: 1, fail: 'always' }), headers: { tenant: 'acme', 'x-correlation-id': correlationId } },
        { key: 'k2', partition: 1, value: JSON.stringify({ seq: 2, fail: 'always' }), headers: { tenant: 'globex' } },
        { key: 'k3', partition: 1, value: JSON.stringify({ seq: 3, fail: 'never-retry' }) },
        { key: 'k4', partition: 1, value: binary },
        { key: 'k5', partition: 0, value: JSON.stringify({ seq: 5 }) },
      ],
    });
    await producer.disconnect();
    const env = { TEST_TOPIC: topic, TEST_GROUP: group };
    const runner = await fx.startRunner({ topic, group, env: { TEST_RETRIES: '0' } });
    await waitFor('every message handled or dead-lettered and committed', async () => {
      const committed = await committedOffsets(fx.admin, group, topic);
      return committed.get(0) === 3n && committed.get(1) === 3n;
    });
    expect((await runner.stop()).code).toBe(0);
    const config = brokerConfig();

    // list: the four dead letters, oldest first per partition, with ids <dlq>:<partition>:<offset>
    const listed = jsonOf<ListedLetter[]>(await runCli(['dlq', 'list', '--config', config, '--json'], env));
    expect(listed).toHaveLength(4);
    expect(listed.every((l) => l.status === 'unresolved' && l.dlq === dlq)).toBe(true);
    const bySeqKey = new Map(listed.map((l) => [l.envelope.original_message.key, l]));
    expect([...bySeqKey.keys()].sort()).toEqual(['k1', 'k2', 'k3', 'k4']);
    for (const l of listed) expect(l.id).toMatch(new RegExp(`^${dlq.replaceAll('.', '\\.')}:[01]:\\d+$`));
    expect(bySeqKey.get('k1')!.envelope).toMatchObject({ original_topic: topic, error_type: 'Error', error_class: 'ReceiverError', correlation_id: correlationId });
    expect(bySeqKey.get('k3')!.envelope.error_type).toBe('NonRetryableError');
    expect(bySeqKey.get('k4')!.envelope).toMatchObject({ error_type: 'DeserializationFailure', original_message: { value_encoding: 'base64' } });

    // the table an operator reads
    const table = await runCli(['dlq', 'list', '--config', config], env);
    expect(table.code).toBe(0);
    const rows = table.stdout.trimEnd().split('\n');
    expect(rows[0]).toMatch(/^ID\s+FAILED AT\s+HANDLER\s+ERROR\s+ORIGIN\s+KEY\s+REASON$/);
    expect(rows).toHaveLength(5);
    expect(rows.find((r) => r.startsWith(bySeqKey.get('k1')!.id))).toMatch(/recorder\s+ReceiverError\/Error\s+\S+\[0\]@1\s+k1\s+handler threw Error: instructed failure of seq 1/);

    // show: the full envelope and the original value
    const shown = await runCli(['dlq', 'show', bySeqKey.get('k1')!.id, '--config', config], env);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain(`id:          ${bySeqKey.get('k1')!.id}`);
    expect(shown.stdout).toContain('status:      unresolved');
    expect(shown.stdout).toContain(`"correlation_id": "${correlationId}"`);
    expect(shown.stdout).toMatch(/original value \(JSON\):\n\{\n {2}"seq": 1,\n {2}"fail": "always"\n\}/);

    // replay the two handler errors and the undecodable one (any of a field's values); the NonRetryableError stays
    const replayed = await runCli(['dlq', 'replay', '--config', config, '--filter', 'error_type=Error', '--filter', 'error_type=DeserializationFailure'], env);
    expect(replayed.code, replayed.stderr).toBe(0);
    expect(replayed.stdout).toContain(`replayed 3 of 3 dead letter(s) from ${dlq}`);

    // back on the original topic and partition: same key, value bytes and headers, plus where they came from
    const records = await readTopicRaw(topic, 9);
    const replays = records.filter((r) => r.headers['x-conveyor-replayed-from'] !== undefined);
    expect(replays).toHaveLength(3);
    for (const key of ['k1', 'k2', 'k4']) {
      const letter = bySeqKey.get(key)!;
      const original = records.find((r) => r.key?.toString() === key && r.headers['x-conveyor-replayed-from'] === undefined)!;
      const replay = replays.find((r) => r.key?.toString() === key)!;
      expect(replay, key).toBeDefined();
      expect(replay.partition).toBe(original.partition);
      expect(replay.value!.equals(original.value!)).toBe(true);
      expect(replay.headers).toEqual({ ...original.headers, 'x-conveyor-replayed-from': letter.id });
    }
    expect(replays.find((r) => r.key?.toString() === 'k4')!.value).toEqual(binary);

    // replayed letters are resolved: list shows only the NonRetryableError; --all shows all four, marked
    const after = jsonOf<ListedLetter[]>(await runCli(['dlq', 'list', '--config', config, '--json'], env));
    expect(after.map((l) => l.id)).toEqual([bySeqKey.get('k3')!.id]);
    const all = jsonOf<ListedLetter[]>(await runCli(['dlq', 'list', '--config', config, '--json', '--all'], env));
    expect(all.map((l) => [l.envelope.original_message.key, l.status]).sort()).toEqual([
      ['k1', 'replayed'],
      ['k2', 'replayed'],
      ['k3', 'unresolved'],
      ['k4', 'replayed'],
    ]);
    // a second replay finds nothing left to replay
    const again = await runCli(['dlq', 'replay', '--config', config, '--filter', 'error_type=Error'], env);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/^nothing to replay/);

    // resolve the last one without replaying it
    const k3 = bySeqKey.get('k3')!.id;
    const resolved = await runCli(['dlq', 'resolve', k3, '--config', config], env);
    expect(resolved.code, resolved.stderr).toBe(0);
    expect(resolved.stdout).toContain(`resolved ${k3}`);
    expect(jsonOf<ListedLetter[]>(await runCli(['dlq', 'list', '--config', config, '--json'], env))).toEqual([]);
    expect((await readTopicRaw(topic, 9)).length, 'resolve republishes nothing').toBe(9);

    // already resolved, unknown offset, not an id at all: events.dlq.not_found, exit 2
    for (const [args, why] of [
      [['dlq', 'show', k3], /already resolved at .*Z/],
      [['dlq', 'resolve', k3], /already resolved/],
      [['dlq', 'resolve', bySeqKey.get('k1')!.id], /already replayed .*\(to conveyor\.test\.cli-dlq/],
      [['dlq', 'show', `${dlq}:0:999`], /nothing stored at that offset/],
      [['dlq', 'show', 'no-such-letter'], /not a dead-letter id/],
    ] as const) {
      const result = await runCli([...args, '--config', config], env);
      expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(2);
      expect(result.stderr).toMatch(new RegExp(`^conveyor dlq (show|resolve): events\\.dlq\\.not_found: no dead letter `));
      expect(result.stderr).toMatch(why);
      expect(result.stdout).toBe('');
    }
    // --all shows a resolved letter anyway
    const shownResolved = await runCli(['dlq', 'show', k3, '--config', config, '--all', '--json'], env);
    expect(jsonOf<ListedLetter>(shownResolved)).toMatchObject({ id: k3, status: 'resolved', resolution: { how: 'resolved' } });
  });

  it('a Kafka that does not answer: exit 69 with events.broker.unavailable, within the configured timeout', async () => {
    const config = brokerConfig({ bootstrapServers: '127.0.0.1:1' });
    const result = await runCli(['dlq', 'list', '--config', config, '--topic', 'conveyor.test.nowhere.dlq'], { KAFKA_TIMEOUT_SECONDS: '2' });
    expect(result.code, result.stderr).toBe(69);
    expect(result.stderr).toMatch(/^conveyor dlq list: events\.broker\.unavailable: Kafka at 127\.0\.0\.1:1 did not answer/);
    expect(result.ms).toBeLessThan(10_000);
  });
});

describe('conveyor dlq on RabbitMQ', () => {
  let mq: OpenedChannel;
  const queues: string[] = [];
  beforeAll(async () => {
    mq = await openChannel();
  });
  afterAll(async () => {
    await mq?.close();
    await deleteQueues(queues.flatMap((q) => [q, `${q}.dlq`, `${q}.retry.1`]));
  });

  const depth = async (queue: string): Promise<number> => (await mq.channel.checkQueue(queue)).messageCount;

  it("browses <queue>.dlq without taking anything, replays a letter to the handler's queue, resolves another", async () => {
    const queue = uniqueQueue('conveyor.test.cli-dlq-mq');
    queues.push(queue);
    const dlq = `${queue}.dlq`;
    await mq.channel.assertQueue(queue, { durable: true });
    for (const [seq, fail] of [[0, 'always'], [1, undefined], [2, 'always']] as const) {
      mq.channel.sendToQueue(queue, Buffer.from(JSON.stringify({ seq, ...(fail ? { fail } : {}) })), { persistent: true, headers: { tenant: `t${seq}` } });
    }
    await mq.channel.waitForConfirms();
    const runner = await startRunner({ queue, env: { TEST_RETRIES: '0' } });
    try {
      await waitFor('two dead letters and nothing left', async () => (await depth(queue)) === 0 && (await mq.channel.checkQueue(dlq).then((q) => q.messageCount).catch(() => 0)) === 2);
    } finally {
      expect((await runner.stop()).code).toBe(0);
    }
    const env = { TEST_QUEUE: queue };
    const config = brokerConfig();

    const listed = jsonOf<ListedLetter[]>(await runCli(['dlq', 'list', '--config', config, '--json'], env));
    expect(listed.map((l) => JSON.parse(l.envelope.original_message.value!).seq)).toEqual([0, 2]);
    for (const l of listed) expect(l.id).toMatch(new RegExp(`^${dlq.replaceAll('.', '\\.')}:[0-9a-f-]{36}$`));
    expect(await depth(dlq), 'listing takes nothing').toBe(2);
    const shown = await runCli(['dlq', 'show', listed[1]!.id, '--config', config], env);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toContain(`"original_topic": "${queue}"`);
    expect(await depth(dlq), 'showing takes nothing').toBe(2);

    // replay the oldest: back on the handler's queue, confirmed, then gone from the dead-letter queue
    const replayed = await runCli(['dlq', 'replay', '--config', config, '--limit', '1'], env);
    expect(replayed.code, replayed.stderr).toBe(0);
    expect(replayed.stdout).toContain(`replayed 1 of 1 dead letter(s) from ${dlq}`);
    expect(await depth(dlq)).toBe(1);
    const [back] = (await drainQueue(mq.channel, queue, { count: 1, timeoutMs: 5000 })) as [GetMessage];
    expect(JSON.parse(back.content.toString())).toEqual({ seq: 0, fail: 'always' });
    expect(back.properties.headers).toMatchObject({
      tenant: 't0',
      'x-conveyor-replayed-from': listed[0]!.id,
      // where it was first published: the runner gives these back to the handler as message.key
      'x-conveyor-exchange': '',
      'x-conveyor-routing-key': queue,
    });

    // resolve the other: taken off the dead-letter queue, nothing republished
    const resolved = await runCli(['dlq', 'resolve', listed[1]!.id, '--config', config], env);
    expect(resolved.code, resolved.stderr).toBe(0);
    expect(await depth(dlq)).toBe(0);
    expect(await depth(queue)).toBe(0);

    for (const id of [listed[0]!.id, listed[1]!.id]) {
      const result = await runCli(['dlq', 'show', id, '--config', config], env);
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(/events\.dlq\.not_found: no dead letter .*: not in queue/);
    }
  });
});
