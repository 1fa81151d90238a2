/**
 * Test helpers for the real RabbitMQ the integration project runs against (`inject('amqpUrl')`): plain amqplib
 * channels for setting up and reading back, queue clean-up, stopping and starting the local broker's app, and a
 * TCP proxy that can cut the network between a client and the broker.
 */
import { execFileSync } from 'node:child_process';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { inject } from 'vitest';
import amqp, { type ChannelModel, type ConfirmChannel, type GetMessage } from 'amqplib';
import { uniqueName } from './kafka.ts';

export function testAmqpUrl(): string {
  return inject('amqpUrl');
}

/** A queue (or exchange) name no other test run uses. */
export function uniqueQueue(prefix: string): string {
  return uniqueName(prefix);
}

export interface OpenedChannel {
  readonly connection: ChannelModel;
  readonly channel: ConfirmChannel;
  close(): Promise<void>;
}

/** A plain amqplib connection and confirm channel; channel errors are swallowed (a test may expect one). */
export async function openChannel(): Promise<OpenedChannel> {
  // noDelay: basic.get right after basic.ack would otherwise wait ~40 ms per message (Nagle + delayed ACK)
  const connection = await amqp.connect(testAmqpUrl(), { noDelay: true });
  connection.on('error', () => {});
  const channel = await connection.createConfirmChannel();
  channel.on('error', () => {});
  return {
    connection,
    channel,
    close: async () => {
      await channel.close().catch(() => {});
      await connection.close().catch(() => {});
    },
  };
}

/** basic.get (acknowledged) until `count` messages arrived or `timeoutMs` passed; returns what arrived. */
export async function drainQueue(channel: ConfirmChannel, queue: string, options: { count: number; timeoutMs: number }): Promise<GetMessage[]> {
  const got: GetMessage[] = [];
  const deadline = Date.now() + options.timeoutMs;
  while (got.length < options.count) {
    const message = await channel.get(queue, { noAck: false });
    if (message) {
      channel.ack(message);
      got.push(message);
      continue;
    }
    if (Date.now() >= deadline) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return got;
}

/** Deletes queues (or exchanges) on a connection of its own; one that does not exist is fine. */
export async function deleteQueues(names: readonly string[], kind: 'queue' | 'exchange' = 'queue'): Promise<void> {
  if (names.length === 0) return;
  const connection = await amqp.connect(testAmqpUrl());
  connection.on('error', () => {});
  try {
    for (const name of names) {
      // a channel per deletion: one that fails takes only its own channel down
      const channel = await connection.createChannel();
      channel.on('error', () => {});
      await (kind === 'queue' ? channel.deleteQueue(name) : channel.deleteExchange(name)).catch(() => {});
      await channel.close().catch(() => {});
    }
  } finally {
    await connection.close().catch(() => {});
  }
}

export function deleteExchanges(names: readonly string[]): Promise<void> {
  return deleteQueues(names, 'exchange');
}

function hasRabbitmqctl(): boolean {
  try {
    execFileSync('sh', ['-c', 'command -v rabbitmqctl'], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Stops or starts the RabbitMQ application of the local broker (`rabbitmqctl stop_app` / `start_app`, then
 * `await_startup`): the node stays up, clients lose their connections and cannot reconnect until it starts.
 * Only against the broker of `npm run brokers` (127.0.0.1:5672 or localhost:5672).
 */
export function rabbitApp(action: 'stop' | 'start'): void {
  const url = new URL(testAmqpUrl());
  const local = ['127.0.0.1', 'localhost'].includes(url.hostname) && (url.port === '' || url.port === '5672');
  if (!local || !hasRabbitmqctl()) {
    throw new Error(
      'this test stops and starts the local RabbitMQ (rabbitmqctl stop_app/start_app): run it against the broker of `npm run brokers` ' +
        '(AMQP_URL at 127.0.0.1:5672, rabbitmqctl on the PATH); npm test does',
    );
  }
  const run = (...args: string[]): void => {
    execFileSync('rabbitmqctl', args, { stdio: 'pipe', timeout: 120_000 });
  };
  if (action === 'stop') {
    run('stop_app');
  } else {
    run('start_app');
    run('await_startup');
  }
}

export interface TcpProxy {
  /** The proxy's amqp:// URL: the test broker's URL with the proxy's port. */
  readonly url: string;
  /** Drops every connection through the proxy and refuses new ones (as if the broker's host went away). */
  cut(): Promise<void>;
  /** Accepts and forwards connections again. */
  restore(): Promise<void>;
  close(): Promise<void>;
}

/** A TCP proxy on 127.0.0.1 in front of the test broker, to cut the network under a client and restore it. */
export async function startTcpProxy(): Promise<TcpProxy> {
  const target = new URL(testAmqpUrl());
  const targetPort = Number(target.port || 5672);
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  let port = 0;
  const listen = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const s = createServer((client) => {
        const upstream = createConnection({ host: target.hostname, port: targetPort });
        for (const socket of [client, upstream]) {
          sockets.add(socket);
          socket.on('error', () => {});
          socket.on('close', () => {
            sockets.delete(socket);
            client.destroy();
            upstream.destroy();
          });
        }
        client.pipe(upstream).pipe(client);
      });
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => {
        server = s;
        const address = s.address();
        if (typeof address === 'object' && address) port = address.port;
        resolve();
      });
    });
  const stop = (): Promise<void> =>
    new Promise((resolve) => {
      for (const socket of sockets) socket.destroy();
      sockets.clear();
      if (!server) return resolve();
      server.close(() => resolve());
      server = undefined;
    });
  await listen();
  const url = new URL(testAmqpUrl());
  url.hostname = '127.0.0.1';
  url.port = String(port);
  return { url: url.toString(), cut: stop, restore: listen, close: stop };
}
