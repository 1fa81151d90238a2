/**
 * Helpers of the security tests: the SASL listener's address, a throwaway CA and server certificate (openssl),
 * a TLS server that can forward to a broker (an amqps:// endpoint in front of the plain RabbitMQ), a RabbitMQ
 * user with a password of its own, and runner processes whose every output line can be searched for secrets.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { promisify } from 'node:util';
import { inject } from 'vitest';
import { newRecordFile, runnerConfigFile, spawnRunnerProcess, type RunnerProcess } from './runner.ts';

export { SASL_MECHANISMS, SASL_PASSWORD, SASL_USER } from './sasl-listener.ts';

/** host:port of the SASL listener, or a failure that says how to get one. */
export function saslBrokers(): string {
  const address = inject('kafkaSaslBrokers');
  if (!address) {
    throw new Error(
      'no Kafka SASL listener for the security tests: run them against the local brokers of `npm run brokers` ' +
        '(SASL_PLAINTEXT on 127.0.0.1:9094), or set KAFKA_SASL_BROKERS to a listener with the user of test/support/sasl-listener.ts',
    );
  }
  return address;
}

/** A value no configuration, log line or library would print by chance. */
export function uniqueSecret(prefix: string): string {
  return `${prefix}-${Math.random().toString(36).slice(2, 10)}${Date.now().toString(36)}`;
}

export interface ThrowawayPki {
  readonly dir: string;
  /** The CA's certificate (PEM): what a client is told to trust. */
  readonly caFile: string;
  /** A certificate for localhost and 127.0.0.1 signed by that CA, and its key. */
  readonly cert: Buffer;
  readonly key: Buffer;
}

/** A CA and a server certificate made with openssl for this test run only (EC keys: quick to make). */
export function throwawayPki(): ThrowawayPki {
  const dir = mkdtempSync(join(tmpdir(), 'conveyor-pki-'));
  const at = (name: string): string => join(dir, name);
  const openssl = (...args: string[]): void => {
    execFileSync('openssl', args, { stdio: 'pipe', cwd: dir });
  };
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl('req', '-x509', ...ec, '-keyout', at('ca.key'), '-out', at('ca.pem'), '-days', '2', '-subj', '/CN=conveyor-test-ca');
  openssl('req', ...ec, '-keyout', at('server.key'), '-out', at('server.csr'), '-subj', '/CN=localhost');
  writeFileSync(at('san.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  openssl('x509', '-req', '-in', at('server.csr'), '-CA', at('ca.pem'), '-CAkey', at('ca.key'), '-CAcreateserial', '-out', at('server.pem'), '-days', '2', '-extfile', at('san.ext'));
  return { dir, caFile: at('ca.pem'), cert: readFileSync(at('server.pem')), key: readFileSync(at('server.key')) };
}

export interface TlsEndpoint {
  readonly port: number;
  /** Handshakes that completed: the client trusted the certificate. */
  readonly handshakes: () => number;
  /** Handshakes the client broke off (or that failed otherwise). */
  readonly refusals: () => number;
  close(): Promise<void>;
}

/**
 * A TLS server on 127.0.0.1 with the throwaway certificate. With `forwardTo`, each connection is relayed in plain
 * TCP to that port (a TLS front for a plaintext broker); without it, connections are held open and say nothing.
 */
export async function startTlsEndpoint(pki: ThrowawayPki, forwardTo?: number): Promise<TlsEndpoint> {
  let handshakes = 0;
  let refusals = 0;
  const sockets = new Set<Socket>();
  const server = createTlsServer({ cert: pki.cert, key: pki.key }, (client: TLSSocket) => {
    handshakes += 1;
    sockets.add(client);
    client.on('error', () => {});
    client.on('close', () => sockets.delete(client));
    if (forwardTo === undefined) return;
    const upstream = netConnect(forwardTo, '127.0.0.1');
    sockets.add(upstream);
    upstream.on('error', () => client.destroy());
    upstream.on('close', () => sockets.delete(upstream));
    client.on('close', () => upstream.destroy());
    client.pipe(upstream).pipe(client);
  });
  server.on('tlsClientError', () => {
    refusals += 1;
  });
  // every connection, mid-handshake ones included: close() ends them all (a client that keeps reconnecting would
  // otherwise hold server.close() open with a connection that arrived after the sockets above were destroyed)
  const connections = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    connections.add(socket);
    socket.on('close', () => connections.delete(socket));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address();
  if (typeof address !== 'object' || address === null) throw new Error('the TLS test server has no port');
  return {
    port: address.port,
    handshakes: () => handshakes,
    refusals: () => refusals,
    close: async () => {
      const closed = new Promise((r) => server.close(r));
      for (const s of [...sockets, ...connections]) s.destroy();
      await closed;
    },
  };
}

const exec = promisify(execFile);

export interface RabbitUser {
  readonly name: string;
  readonly password: string;
  /** The test broker's URL with this user's credentials. */
  readonly url: string;
  remove(): Promise<void>;
}

/** A RabbitMQ user with full rights on the default vhost, made with rabbitmqctl on the local broker. */
export async function addRabbitUser(): Promise<RabbitUser> {
  const url = new URL(inject('amqpUrl'));
  if (!['127.0.0.1', 'localhost'].includes(url.hostname)) {
    throw new Error('this test adds a RabbitMQ user with rabbitmqctl: run it against the local broker of `npm run brokers` (AMQP_URL at 127.0.0.1:5672); npm test does');
  }
  const name = uniqueSecret('conveyor-sec-user');
  const password = uniqueSecret('rabbit-secret');
  const ctl = (...args: string[]): Promise<unknown> => exec('rabbitmqctl', args, { timeout: 60_000 });
  try {
    await ctl('add_user', name, password);
    await ctl('set_permissions', '-p', '/', name, '.*', '.*', '.*');
  } catch (err) {
    throw new Error(`could not add a RabbitMQ user with rabbitmqctl (is it on the PATH, and is this the local broker?): ${(err as Error).message}`);
  }
  url.username = name;
  url.password = password;
  return { name, password, url: url.toString(), remove: async () => void (await ctl('delete_user', name).catch(() => {})) };
}

/** Every line a runner wrote, stdout (JSON logs) and stderr, as text. */
export function outputLines(runner: RunnerProcess): string[] {
  return [...runner.logs.map((l) => JSON.stringify(l)), ...runner.stderr.join('').split('\n').filter(Boolean)];
}

/** The lines of `lines` that contain any of `secrets`. */
export function linesWithSecrets(lines: readonly string[], secrets: readonly string[]): string[] {
  return lines.filter((line) => secrets.some((s) => line.includes(s)));
}

/**
 * Spawns `node dist/runner.js` with the recorder fixture and this environment over a config file of the test
 * brokers, without waiting for it to run (startRunner in runner.ts waits, and fails if it exits first).
 */
export function spawnRunner(env: Record<string, string>): RunnerProcess {
  return spawnRunnerProcess(runnerConfigFile(), newRecordFile(), env);
}
