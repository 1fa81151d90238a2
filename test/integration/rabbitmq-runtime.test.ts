/**
 * RabbitMQ queue handlers, end to end: `node dist/runner.js` with the recorder fixture consuming a real queue.
 * Order with one message in flight, parallelism with `concurrency`, delayed retries through the retry queues
 * (delays honoured, the queue not blocked), the dead-letter queue's envelope, redelivery after SIGKILL, and a
 * RabbitMQ restart in the middle of the stream.
 */
import type { GetMessage } from 'amqplib';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../support/kafka.ts';
import { deleteExchanges, deleteQueues, drainQueue, openChannel, rabbitApp, uniqueQueue, type OpenedChannel } from '../support/rabbitmq.ts';
import type { Instruction } from '../fixtures/handlers/recorder.ts';
import { readRecords, startRunner, type Recorded, type RunnerOptions, type RunnerProcess } from '../support/runner.ts';

describe('runtime: RabbitMQ queue handlers', () => {
  let mq: OpenedChannel;
  let runners: RunnerProcess[] = [];
  const queues: string[] = [];
  const exchanges: string[] = [];

  beforeAll(async () => {
    mq = await openChannel();
  });
  afterEach(async () => {
    await Promise.all(runners.map((r) => r.stop('SIGKILL')));
    runners = [];
  });
  afterAll(async () => {
    await mq?.close();
    await deleteQueues(queues.flatMap((q) => [q, `${q}.dlq`, ...[1, 2, 3, 4, 5, 6, 7, 8].map((n) => `${q}.retry.${n}`)]));
    await deleteExchanges(exchanges);
  });

  /** A fresh durable queue (and its derived queues, deleted after the file). */
  async function freshQueue(prefix: string): Promise<string> {
    const queue = uniqueQueue(`conveyor.test.${prefix}`);
    queues.push(queue);
    await mq.channel.assertQueue(queue, { durable: true });
    return queue;
  }

  async function send(queue: string, messages: readonly Instruction[], options: { headers?: Record<string, string> } = {}): Promise<void> {
    for (const m of messages) mq.channel.sendToQueue(queue, Buffer.from(JSON.stringify(m)), { persistent: true, ...(options.headers ? { headers: options.headers } : {}) });
    await mq.channel.waitForConfirms();
  }

  async function run(queue: string, env: Record<string, string> = {}, options: Partial<RunnerOptions> = {}): Promise<RunnerProcess> {
    const runner = await startRunner({ queue, env, ...options });
    runners.push(runner);
    return runner;
  }

  /** Ready plus unacknowledged messages: 0 only when everything was acked. */
  async function depth(queue: string): Promise<number> {
    return (await mq.channel.checkQueue(queue)).messageCount;
  }

  const succeeded = (records: readonly Recorded[]): Recorded[] => records.filter((r) => r.ok);

  it('an ordered handler (the default) handles one message at a time, in the order of the queue', async () => {
    const queue = await freshQueue('mq-order');
    const total = 60;
    await send(queue, Array.from({ length: total }, (_, i) => ({ seq: i, delayMs: (i * 7) % 13 })));
    const runner = await run(queue, { CONVEYOR_POOL_SIZE: '2' });
    await waitFor('all handled', () => readRecords(runner.recordFile).length >= total, 30_000);
    expect((await runner.stop()).code).toBe(0);

    const records = readRecords(runner.recordFile);
    expect(records.map((r) => r.seq)).toEqual(Array.from({ length: total }, (_, i) => i));
    for (let i = 1; i < records.length; i++) {
      expect(records[i]!.started, `seq ${i} started before seq ${i - 1} ended`).toBeGreaterThanOrEqual(records[i - 1]!.ended);
    }
    expect(records.every((r) => r.partition === -1 && r.key === queue)).toBe(true);
    expect(await depth(queue), 'every message acked').toBe(0);
  });

  it('a handler with concurrency N runs up to N messages at once, on several threads', async () => {
    const queue = await freshQueue('mq-parallel');
    const total = 24;
    await send(queue, Array.from({ length: total }, (_, i) => ({ seq: i, delayMs: 300 })));
    const runner = await run(queue, { CONVEYOR_POOL_SIZE: '4', TEST_CONCURRENCY: '4' });
    await waitFor('all handled', () => readRecords(runner.recordFile).length >= total, 30_000);
    expect((await runner.stop()).code).toBe(0);

    const records = readRecords(runner.recordFile);
    expect(new Set(records.map((r) => r.seq)).size).toBe(total);
    // the most handlers running at the same moment
    let most = 0;
    for (const r of records) most = Math.max(most, records.filter((o) => o.started <= r.started && o.ended > r.started).length);
    expect(most, 'messages overlapped').toBeGreaterThanOrEqual(3);
    expect(most, 'never more than the concurrency').toBeLessThanOrEqual(4);
    expect(new Set(records.map((r) => r.thread)).size).toBeGreaterThan(1);
    // 24 × 300 ms one at a time would take 7.2 s
    const span = Math.max(...records.map((r) => r.ended)) - Math.min(...records.map((r) => r.started));
    expect(span).toBeLessThan(4_000);
    expect(await depth(queue)).toBe(0);
  });

  it('ordering key: one routing key at a time in order of delivery, different routing keys at once', async () => {
    const queue = await freshQueue('mq-key');
    const exchange = uniqueQueue('conveyor.test.mq-key-exchange');
    exchanges.push(exchange);
    const runner = await run(queue, { TEST_EXCHANGE: exchange, TEST_ROUTING_KEY: '#', TEST_CONCURRENCY: '8', TEST_ORDERING: 'key' });
    const KEYS = 10;
    const PER_KEY = 8;
    for (let i = 0; i < PER_KEY; i++) {
      for (let k = 0; k < KEYS; k++) {
        const m: Instruction = { seq: i * KEYS + k, delayMs: 10 + ((i * 31 + k * 17) % 40) };
        mq.channel.publish(exchange, `key.${k}`, Buffer.from(JSON.stringify(m)), { persistent: true });
      }
    }
    await mq.channel.waitForConfirms();
    await waitFor('all handled', () => readRecords(runner.recordFile).length >= KEYS * PER_KEY, 30_000);
    expect((await runner.stop()).code).toBe(0);

    const records = readRecords(runner.recordFile);
    expect(new Set(records.map((r) => r.seq)).size).toBe(KEYS * PER_KEY);
    for (let k = 0; k < KEYS; k++) {
      const mine = records.filter((r) => r.key === `key.${k}`);
      expect(mine.map((r) => r.seq), `key.${k} in order`).toEqual(Array.from({ length: PER_KEY }, (_, i) => i * KEYS + k));
      for (let i = 1; i < mine.length; i++) expect(mine[i]!.started).toBeGreaterThanOrEqual(mine[i - 1]!.ended);
    }
    let most = 0;
    for (const r of records) most = Math.max(most, records.filter((o) => o.started <= r.started && o.ended > r.started).length);
    expect(most, 'routing keys overlapped').toBeGreaterThanOrEqual(3);
    expect(most, 'never more than the concurrency').toBeLessThanOrEqual(8);
    expect(await depth(queue)).toBe(0);
  });

  it('acks together but never past a message still running: SIGKILL while one runs redelivers it, not the acked ones', async () => {
    const queue = await freshQueue('mq-acks');
    const total = 40;
    await send(queue, [{ seq: 0, delayMs: 3000 }, ...Array.from({ length: total - 1 }, (_, i) => ({ seq: i + 1 }))]);
    const first = await run(queue, { TEST_CONCURRENCY: '8' });
    await waitFor('all but the slow one handled', () => readRecords(first.recordFile).length >= total - 1, 30_000);
    await new Promise((r) => setTimeout(r, 300)); // the acks of the handled ones go out
    expect(readRecords(first.recordFile).some((r) => r.seq === 0), 'the slow one still running').toBe(false);
    await first.stop('SIGKILL');

    const second = await run(queue, { TEST_CONCURRENCY: '8' }, { recordFile: first.recordFile });
    await waitFor('the slow one redelivered and handled', () => readRecords(second.recordFile).some((r) => r.seq === 0 && r.pid === second.child.pid), 30_000);
    expect((await second.stop()).code).toBe(0);
    const again = readRecords(second.recordFile).filter((r) => r.pid === second.child.pid);
    // the slow one came back; the handled ones had been acked (one multiple ack below it could not have covered it)
    expect(again.map((r) => r.seq)).toEqual([0]);
    expect(await depth(queue)).toBe(0);
  });

  it('retries after the backoff delay through a retry queue, while the messages behind go on', async () => {
    const queue = await freshQueue('mq-retry');
    // three messages fail once; each waits random(0, 2 s) in <queue>.retry.1 while the others are handled
    const failing = new Set([2, 10, 18]);
    const total = 30;
    await send(queue, Array.from({ length: total }, (_, i) => ({ seq: i, ...(failing.has(i) ? { fail: 'once' as const } : {}) })));
    const runner = await run(queue, { TEST_BACKOFF_MS: '2000', TEST_MAX_BACKOFF_MS: '2000', TEST_RETRIES: '3' });
    await waitFor('all handled', () => new Set(succeeded(readRecords(runner.recordFile)).map((r) => r.seq)).size >= total, 30_000);
    expect((await runner.stop()).code).toBe(0);

    const records = readRecords(runner.recordFile);
    const retryLogs = runner.logs.filter((l) => /^attempt 1 failed, retrying in/.test(l.msg));
    expect(retryLogs).toHaveLength(3);
    const lastFirstAttempt = Math.max(...records.filter((r) => r.attempt === 1 && !failing.has(r.seq)).map((r) => r.ended));
    for (const seq of failing) {
      const [first, second] = records.filter((r) => r.seq === seq);
      expect(first).toMatchObject({ attempt: 1, ok: false });
      expect(second).toMatchObject({ attempt: 2, ok: true });
      const delayMs = retryLogs.find((l) => l.offset === first!.offset)!.delayMs as number;
      expect(delayMs).toBeLessThan(2000);
      // honoured: the retry came back no earlier than its delay (RabbitMQ expires at millisecond precision)
      expect(second!.started - first!.ended, `seq ${seq} retried after ${second!.started - first!.ended} ms, its delay was ${delayMs} ms`).toBeGreaterThanOrEqual(delayMs - 5);
    }
    // not blocking: the 27 messages that never failed were all handled within moments of starting, none of them
    // waited behind a retry (three delays drawn from 0-2 s: an in-place wait would add their sum)
    const firstStart = Math.min(...records.map((r) => r.started));
    expect(lastFirstAttempt - firstStart).toBeLessThan(1_500);
    expect(records.filter((r) => r.attempt === 1 && !failing.has(r.seq)).map((r) => r.seq)).toEqual(
      Array.from({ length: total }, (_, i) => i).filter((i) => !failing.has(i)),
    );
    expect(await depth(queue)).toBe(0);
    expect(await depth(`${queue}.retry.1`)).toBe(0);
  });

  it('dead-letters to <queue>.dlq after the last attempt, with the envelope Kafka dead letters have', async () => {
    const queue = await freshQueue('mq-dlq');
    const exchange = uniqueQueue('conveyor.test.mq-dlq-exchange');
    exchanges.push(exchange);
    const runner = await run(queue, { TEST_EXCHANGE: exchange, TEST_ROUTING_KEY: 'orders.*', TEST_RETRIES: '2', TEST_BACKOFF_MS: '50' });
    // the handler declared the exchange and bound its queue: publish through the exchange
    const publish = (routingKey: string, m: Instruction, headers: Record<string, string> = {}) =>
      mq.channel.publish(exchange, routingKey, Buffer.from(JSON.stringify(m)), { persistent: true, headers, correlationId: `corr-${m.seq}` });
    publish('orders.created', { seq: 1, fail: 'always' }, { 'x-trace': 'abc' });
    publish('payments.settled', { seq: 2 }); // not bound: never reaches the queue
    publish('orders.shipped', { seq: 3, fail: 'never-retry' });
    publish('orders.paid', { seq: 4 });
    await mq.channel.waitForConfirms();

    const letters = await drainQueue(mq.channel, `${queue}.dlq`, { count: 2, timeoutMs: 20_000 });
    await waitFor('seq 4 handled', () => readRecords(runner.recordFile).some((r) => r.seq === 4 && r.ok), 10_000);
    expect((await runner.stop()).code).toBe(0);
    expect(letters).toHaveLength(2);

    const byKey = new Map(letters.map((l: GetMessage) => [JSON.parse(l.content.toString()).original_message.key as string, l]));
    const always = byKey.get('orders.created')!;
    const envelope = JSON.parse(always.content.toString());
    expect(envelope).toMatchObject({
      original_topic: queue,
      original_message: { key: 'orders.created', exchange, value: JSON.stringify({ seq: 1, fail: 'always' }), value_encoding: 'utf8', partition: -1 },
      retry_count: 2,
      error_class: 'ReceiverError',
      error_type: 'Error',
      failure_reason: expect.stringContaining('instructed failure of seq 1'),
      correlation_id: 'corr-1',
      handler: 'recorder',
    });
    // the user's header survived two trips through the retry queue; Conveyor's own bookkeeping did not leak
    const headers = envelope.original_message.headers as Array<{ name: string; value: string; encoding: string }>;
    expect(headers.find((h) => h.name === 'x-trace')).toEqual({ name: 'x-trace', value: 'abc', encoding: 'utf8' });
    expect(headers.map((h) => h.name).filter((h) => h.startsWith('x-conveyor') || h.startsWith('x-death'))).toEqual([]);
    expect(always.properties.deliveryMode).toBe(2);
    expect(always.properties.headers).toMatchObject({ original_topic: queue, retry_count: '2', error_class: 'ReceiverError', correlation_id: 'corr-1' });
    expect(Number.isNaN(Date.parse(always.properties.headers!.failure_timestamp as string))).toBe(false);

    const never = JSON.parse(byKey.get('orders.shipped')!.content.toString());
    expect(never).toMatchObject({ retry_count: 0, error_type: 'NonRetryableError', error_class: 'ReceiverError' });

    const records = readRecords(runner.recordFile);
    expect(records.filter((r) => r.seq === 1).map((r) => r.attempt)).toEqual([1, 2, 3]);
    expect(records.filter((r) => r.seq === 3).map((r) => r.attempt)).toEqual([1]);
    expect(records.some((r) => r.seq === 2)).toBe(false);
    expect(await depth(queue)).toBe(0);
  });

  it('a handler that blocks its thread or kills its worker is a RuntimeFailure: dead-lettered, the worker replaced, the rest handled', async () => {
    const queue = await freshQueue('mq-timeouts');
    await send(queue, [{ seq: 0 }, { seq: 1, spin: true }, { seq: 2 }, { seq: 3, exit: true }, { seq: 4 }]);
    const runner = await run(queue, { TEST_RETRIES: '0', TEST_TIMEOUT_MS: '300', CONVEYOR_TIMEOUT_GRACE_MS: '200' });
    const letters = await drainQueue(mq.channel, `${queue}.dlq`, { count: 2, timeoutMs: 20_000 });
    await waitFor('the others handled', () => [0, 2, 4].every((seq) => readRecords(runner.recordFile).some((r) => r.seq === seq && r.ok)), 10_000);
    expect(runner.child.exitCode, 'the process survived').toBeNull();
    expect((await runner.stop()).code).toBe(0);
    const envelopes = letters.map((l) => JSON.parse(l.content.toString()) as { original_message: { value: string }; error_type: string; error_class: string });
    const bySeq = new Map(envelopes.map((e) => [(JSON.parse(e.original_message.value) as Instruction).seq, e]));
    expect(bySeq.get(1)).toMatchObject({ error_type: 'HandlerTimeout', error_class: 'RuntimeFailure' });
    expect(bySeq.get(3)).toMatchObject({ error_type: 'WorkerCrashed', error_class: 'RuntimeFailure' });
    expect(await depth(queue)).toBe(0);
  });

  it('SIGKILL mid-stream: the unacknowledged messages are redelivered to the next runner, none lost', async () => {
    const queue = await freshQueue('mq-kill');
    const total = 300;
    await send(queue, Array.from({ length: total }, (_, i) => ({ seq: i, delayMs: 5 })));
    const env = { TEST_PREFETCH: '10', TEST_CONCURRENCY: '2' };
    const first = await run(queue, env);
    await waitFor('a third handled', () => readRecords(first.recordFile).length >= total / 3, 30_000);
    expect((await first.stop('SIGKILL')).signal).toBe('SIGKILL');
    const before = new Set(readRecords(first.recordFile).map((r) => r.seq));
    expect(before.size).toBeLessThan(total);

    const second = await run(queue, env);
    await waitFor('the rest handled', () => new Set([...before, ...readRecords(second.recordFile).map((r) => r.seq)]).size >= total, 60_000);
    expect((await second.stop()).code).toBe(0);

    const after = readRecords(second.recordFile).map((r) => r.seq);
    expect(new Set([...before, ...after]).size).toBe(total);
    // only what was delivered but not yet acked at the kill comes again: at most the prefetch
    const again = after.filter((s) => before.has(s));
    expect(again.length).toBeLessThanOrEqual(10);
    expect(await depth(queue)).toBe(0);
  }, 120_000);

  it('RabbitMQ restarted mid-stream: the runner stays up, reconnects, and the persistent messages survive', async () => {
    const queue = await freshQueue('mq-restart');
    const total = 400;
    await send(queue, Array.from({ length: total }, (_, i) => ({ seq: i, delayMs: 10 })));
    const runner = await run(queue, { TEST_PREFETCH: '5' });
    await waitFor('some handled', () => readRecords(runner.recordFile).length >= 50, 30_000);

    rabbitApp('stop');
    let handledWhileDown: number;
    try {
      await new Promise((r) => setTimeout(r, 3_000));
      expect(runner.child.exitCode, 'still running while RabbitMQ is down').toBeNull();
      handledWhileDown = new Set(readRecords(runner.recordFile).map((r) => r.seq)).size;
      expect(handledWhileDown, 'the outage hit mid-stream').toBeLessThan(total);
    } finally {
      rabbitApp('start');
    }
    // the queue and its unacknowledged persistent messages came back with the broker
    await waitFor('every message handled after the restart', () => new Set(readRecords(runner.recordFile).map((r) => r.seq)).size >= total, 60_000);
    expect(runner.has('RabbitMQ connection re-established')).toBe(true);
    expect((await runner.stop()).code).toBe(0);
    mq = await openChannel(); // the test's own connection died with the broker
    expect(await depth(queue)).toBe(0);
  }, 150_000);

  it('ctx.publish in a queue handler sends to RabbitMQ before the message is acked; a failed attempt sends nothing', async () => {
    const queue = await freshQueue('mq-publish-src');
    const out = await freshQueue('mq-publish-out');
    await send(queue, Array.from({ length: 20 }, (_, i) => ({ seq: i, ...(i === 5 ? { failAfterPublish: true } : {}) })) as Instruction[]);
    const runner = await run(queue, { TEST_OUT_QUEUE: out }, { handlersDir: 'test/fixtures/publishing' });
    const events = await drainQueue(mq.channel, out, { count: 20, timeoutMs: 20_000 });
    await waitFor('source queue drained', async () => (await depth(queue)) === 0, 10_000);
    expect((await runner.stop()).code).toBe(0);
    await new Promise((r) => setTimeout(r, 300));
    expect(await drainQueue(mq.channel, out, { count: 1, timeoutMs: 200 })).toHaveLength(0);

    const bodies = events.map((e) => JSON.parse(e.content.toString()) as { seq: number; attempt: number });
    expect(bodies.map((b) => b.seq).sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(bodies.find((b) => b.seq === 5)!.attempt).toBe(2);
    expect(events.every((e) => e.properties.deliveryMode === 2)).toBe(true);
  });
});
