/**
 * The foundation's promise about RabbitMQ, checked on a real server: a durable queue keeps persistent
 * messages confirmed by the broker; a message leaves the queue only when acknowledged.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import amqp, { type ChannelModel, type ConfirmChannel, type ConsumeMessage } from 'amqplib';
import { uniqueName, waitFor } from '../support/kafka.ts';

describe('RabbitMQ server (real)', () => {
  let connection: ChannelModel;
  let channel: ConfirmChannel;
  const queue = uniqueName('conveyor.test.foundation');

  beforeAll(async () => {
    connection = await amqp.connect(inject('amqpUrl'));
    channel = await connection.createConfirmChannel();
    await channel.assertQueue(queue, { durable: true });
  });

  afterAll(async () => {
    await channel?.deleteQueue(queue).catch(() => {});
    await connection?.close();
  });

  it('declares the queue durable and confirms persistent messages', async () => {
    // Redeclaring it as non-durable is refused by the broker only if it really is durable.
    const probe = await connection.createChannel();
    probe.on('error', () => {});
    await expect(probe.assertQueue(queue, { durable: false })).rejects.toThrow(/PRECONDITION_FAILED.*durable/);

    const confirmed: string[] = [];
    for (const body of ['a', 'b', 'c']) {
      await new Promise<void>((resolve, reject) =>
        channel.sendToQueue(queue, Buffer.from(body), { persistent: true, messageId: body }, (err) => {
          if (err) return reject(err);
          confirmed.push(body);
          resolve();
        }),
      );
    }
    await channel.waitForConfirms();
    expect(confirmed).toEqual(['a', 'b', 'c']);
    expect((await channel.checkQueue(queue)).messageCount).toBe(3);

    // Delivery mode 2 is "persistent" as the broker hands the message back.
    const got = await channel.get(queue, { noAck: false });
    expect(got && got.properties.deliveryMode).toBe(2);
    if (got) channel.nack(got, false, true);
  });

  it('redelivers a nacked message and never an acked one', async () => {
    // Start from an empty queue with two messages.
    await channel.purgeQueue(queue);
    channel.sendToQueue(queue, Buffer.from('keep'), { persistent: true });
    channel.sendToQueue(queue, Buffer.from('done'), { persistent: true });
    await channel.waitForConfirms();

    const consumerChannel = await connection.createChannel();
    await consumerChannel.prefetch(1);
    const deliveries: Array<{ body: string; redelivered: boolean }> = [];
    let nackedOnce = false;
    const { consumerTag } = await consumerChannel.consume(
      queue,
      (msg: ConsumeMessage | null) => {
        if (!msg) return;
        const body = msg.content.toString();
        deliveries.push({ body, redelivered: msg.fields.redelivered });
        if (body === 'keep' && !nackedOnce) {
          nackedOnce = true;
          consumerChannel.nack(msg, false, true); // back to the queue
        } else {
          consumerChannel.ack(msg);
        }
      },
      { noAck: false },
    );
    await waitFor('both messages acknowledged', () => deliveries.length >= 3, 15_000);
    await consumerChannel.cancel(consumerTag);
    // Give the broker time to deliver anything it (wrongly) still held, then look.
    await new Promise((r) => setTimeout(r, 500));
    await consumerChannel.close();

    expect(deliveries.filter((d) => d.body === 'keep')).toEqual([
      { body: 'keep', redelivered: false },
      { body: 'keep', redelivered: true },
    ]);
    expect(deliveries.filter((d) => d.body === 'done')).toEqual([{ body: 'done', redelivered: false }]);
    expect((await channel.checkQueue(queue)).messageCount).toBe(0);
  });
});
