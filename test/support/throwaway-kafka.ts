/**
 * A second Kafka broker of the test's own: freshly formatted (no __consumer_offsets, no groups, no topics), on free
 * ports, with its data in a fresh temporary directory. scripts/brokers.sh starts it (CONVEYOR_KAFKA_HOME and the
 * port variables), so it is the same broker as the shared one, only empty. Start-up takes 15-20 s: one per file,
 * reformat() between tests that each need a fresh cluster (~10-15 s: the jars stay).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { KafkaAdmin } from '../../src/kafka/admin.ts';
import { createKafka, type Kafka } from '../../src/kafka/client.ts';
import { getFreePort } from './free-port.ts';
import type { RunnerProcess } from './runner.ts';

export interface ThrowawayKafka {
  /** host:port of its PLAINTEXT listener. */
  readonly brokers: string;
  /** Its CONVEYOR_KAFKA_HOME (jars, data, logs). */
  readonly home: string;
  /** Stops the broker, wipes its data and starts it formatted afresh (same ports): a fresh cluster again. */
  reformat(): Promise<void>;
  /** Stops the broker gracefully (data kept); `resume()` starts it again on the same ports. */
  pause(): Promise<void>;
  /** SIGKILLs the broker (an outage without warning) and resolves once it is gone. */
  kill(): Promise<void>;
  /** Starts the paused or killed broker again; resolves once it answers. */
  resume(): Promise<void>;
  /** Stops the broker and removes its directory. */
  stop(): Promise<void>;
}

function brokersSh(command: 'start' | 'stop', env: NodeJS.ProcessEnv, timeoutMs: number): Promise<void> {
  return new Promise((done, fail) => {
    execFile('bash', [resolve('scripts/brokers.sh'), command, 'kafka'], { env, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) fail(new Error(`brokers.sh ${command} kafka failed (${error.message}): ${stdout}${stderr}`.slice(0, 4000)));
      else done();
    });
  });
}

/** Three distinct free ports: the PLAINTEXT, controller and SASL listeners. */
async function freePorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await getFreePort());
  return [...ports];
}

/** Formats and starts a broker; resolves once it answers metadata requests. */
export async function startThrowawayKafka(): Promise<ThrowawayKafka> {
  const home = mkdtempSync(join(tmpdir(), 'conveyor-fresh-kafka-'));
  const [port, controller, sasl] = await freePorts(3);
  const env = {
    ...process.env,
    CONVEYOR_KAFKA_HOME: home,
    CONVEYOR_KAFKA_PORT: String(port),
    CONVEYOR_KAFKA_CONTROLLER_PORT: String(controller),
    CONVEYOR_KAFKA_SASL_PORT: String(sasl),
  };
  const stop = async (): Promise<void> => {
    try {
      await brokersSh('stop', env, 60_000);
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  };
  try {
    await brokersSh('start', env, 180_000);
  } catch (err) {
    await stop().catch(() => {});
    throw err;
  }
  const reformat = async (): Promise<void> => {
    await brokersSh('stop', env, 60_000);
    // brokers.sh formats the storage when it finds no data; the jars stay
    rmSync(join(home, 'data'), { recursive: true, force: true });
    await brokersSh('start', env, 180_000);
  };
  const kill = async (): Promise<void> => {
    const pid = Number(readFileSync(join(home, 'kafka.pid'), 'utf8'));
    process.kill(pid, 'SIGKILL');
    const alive = (): boolean => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    for (let i = 0; i < 200 && alive(); i++) await new Promise((r) => setTimeout(r, 50));
  };
  return {
    brokers: `127.0.0.1:${port}`,
    home,
    reformat,
    stop,
    pause: () => brokersSh('stop', env, 60_000),
    kill,
    resume: () => brokersSh('start', env, 180_000),
  };
}

/** A throwaway broker for a whole test file, with a client and an admin on it; set from `beforeAll` on. */
export interface ThrowawayKafkaFixture {
  readonly broker: ThrowawayKafka;
  /** The test's client on it (producers). */
  readonly kafka: Kafka;
  readonly admin: KafkaAdmin;
  /** Has `runner` SIGKILLed after the file (a no-op if it already exited); returns it. */
  track<R extends RunnerProcess>(runner: R): R;
}

/** Registers the hooks that start the file's throwaway broker (and its clients) and stop it all afterwards. */
export function useThrowawayKafka(clientId: string): ThrowawayKafkaFixture {
  let broker: ThrowawayKafka | undefined;
  let kafka: Kafka | undefined;
  let admin: KafkaAdmin | undefined;
  const runners: RunnerProcess[] = [];
  beforeAll(async () => {
    broker = await startThrowawayKafka();
    kafka = createKafka({ brokers: [broker.brokers], clientId });
    admin = new KafkaAdmin({ brokers: [broker.brokers], clientId, timeoutMs: 30_000 });
  }, 240_000);
  afterAll(async () => {
    await Promise.all(runners.map((r) => r.stop('SIGKILL')));
    await admin?.close().catch(() => {});
    await broker?.stop();
  }, 120_000);
  const set = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error('the throwaway Kafka fixture is used before its beforeAll ran');
    return value;
  };
  return {
    get broker() {
      return set(broker);
    },
    get kafka() {
      return set(kafka);
    },
    get admin() {
      return set(admin);
    },
    track(runner) {
      runners.push(runner);
      return runner;
    },
  };
}
