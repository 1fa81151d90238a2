/**
 * Stress (not in CI): kills the Kafka broker with SIGKILL and starts it again, many times, under a steady keyed
 * stream, while one Conveyor runner (`node dist/runner.js`, the recorder fixture handler) consumes it.
 * Checks: the runner never dies; every message the producer got acknowledged is handled (0 lost); and measures,
 * per restart, the recovery: from the broker's port answering again to the first message handled after it.
 *
 *   npm run build && node test/stress/kafka-restarts.ts [--restarts 10] [--down-seconds 20] [--rate 200]
 *        [--partitions 6] [--keys 100] [--protocol classic|consumer] [--instance-id pod-0] [--kill broker|runner]
 *
 * --kill runner: SIGKILLs the runner instead and starts a new one at once (with --instance-id: the same static
 * member), measuring from the new runner's start to its first handled message; the broker stays up.
 *
 * By default it formats and runs a broker of its own (ports 29092-29094, data in a temp dir) so the local broker
 * (`npm run brokers`) and whatever uses it are left alone; --brokers host:port --kafka-home <dir> uses an existing
 * one started by scripts/brokers.sh. Prints a table and, as its last line, a JSON object.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Admin, Producer } from '@platformatic/kafka';

const { values: args } = parseArgs({
  options: {
    restarts: { type: 'string', default: '10' },
    'down-seconds': { type: 'string', default: '20' },
    'up-seconds': { type: 'string', default: '25' },
    rate: { type: 'string', default: '200' },
    partitions: { type: 'string', default: '6' },
    keys: { type: 'string', default: '100' },
    protocol: { type: 'string', default: '' },
    'instance-id': { type: 'string', default: '' },
    brokers: { type: 'string', default: '' },
    'kafka-home': { type: 'string', default: '' },
    port: { type: 'string', default: '29092' },
    kill: { type: 'string', default: 'broker' },
  },
});

const restarts = Number(args.restarts);
const downMs = Number(args['down-seconds']) * 1000;
const upMs = Number(args['up-seconds']) * 1000;
const rate = Number(args.rate);
const partitions = Number(args.partitions);
const keys = Number(args.keys);
const port = Number(args.port);
const ownBroker = !args.brokers;
const kafkaHome = args['kafka-home'] || mkdtempSync(join(tmpdir(), 'conveyor-stress-kafka-'));
const bootstrap = args.brokers || `127.0.0.1:${port}`;
const [host, brokerPort] = bootstrap.split(',')[0]!.split(':') as [string, string];
const brokerEnv = { ...process.env, CONVEYOR_KAFKA_HOME: kafkaHome, CONVEYOR_KAFKA_PORT: String(port), CONVEYOR_KAFKA_CONTROLLER_PORT: String(port + 1), CONVEYOR_KAFKA_SASL_PORT: String(port + 2) };

const log = (msg: string): void => void process.stderr.write(`[stress ${new Date().toISOString().slice(11, 23)}] ${msg}\n`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function brokers(command: 'start' | 'stop'): void {
  execFileSync('bash', ['scripts/brokers.sh', command, 'kafka'], { env: brokerEnv, stdio: ['ignore', 'ignore', 'inherit'], timeout: 300_000 });
}

function killBroker(): void {
  const pid = Number(readFileSync(join(kafkaHome, 'kafka.pid'), 'utf8'));
  process.kill(pid, 'SIGKILL');
  // wait until it is gone, so that the next start does not find it alive
  for (let i = 0; i < 100; i++) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    execFileSync('sleep', ['0.1']);
  }
}

function portAnswers(): Promise<boolean> {
  return new Promise((r) => {
    const s = connect({ host, port: Number(brokerPort) });
    s.once('connect', () => (s.destroy(), r(true)));
    s.once('error', () => r(false));
  });
}

interface Record_ {
  seq: number;
  partition: number;
  offset: string;
  started: number;
  ok: boolean;
}

function readRecords(file: string): Record_[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8').split('\n').slice(0, -1).filter(Boolean).map((l) => JSON.parse(l) as Record_);
}

async function main(): Promise<void> {
  if (ownBroker) {
    // the jars of the local broker, when resolved already: no second Maven run
    if (existsSync('.local/kafka/libs/.pom-sha') && !existsSync(join(kafkaHome, 'libs'))) symlinkSync(resolve('.local/kafka/libs'), join(kafkaHome, 'libs'));
    log(`formatting and starting a broker of its own on ${bootstrap} (data: ${kafkaHome})`);
    brokers('start');
  }
  const topic = `conveyor.stress.restarts.${Date.now()}`;
  const group = `${topic}.group`;
  const admin = new Admin({ clientId: 'stress-admin', bootstrapBrokers: [bootstrap] });
  await admin.createTopics({ topics: [topic], partitions, replicas: 1 });
  await admin.close();

  const dir = mkdtempSync(join(tmpdir(), 'conveyor-stress-'));
  const recordFile = join(dir, 'records.jsonl');
  const configFile = join(dir, 'config.yaml');
  writeFileSync(configFile, ['kafka:', `  bootstrapServers: "${bootstrap}"`, '  autoOffsetReset: earliest', 'handlers:', `  directory: "${resolve('test/fixtures/handlers')}"`, 'log:', '  level: info', ''].join('\n'));
  const runnerLog = join(dir, 'runner.log');
  const runnerEnv: Record<string, string> = {
    ...(process.env as Record<string, string>),
    RECORD_FILE: recordFile,
    TEST_TOPIC: topic,
    TEST_GROUP: group,
    CONVEYOR_OPS_PORT: '0',
    ...(args.protocol ? { KAFKA_GROUP_PROTOCOL: args.protocol } : {}),
    ...(args['instance-id'] ? { POD_NAME: args['instance-id'] } : {}),
  };
  const out = openSync(runnerLog, 'a');
  let runnerExit: string | undefined;
  const killedOnPurpose = new Set<ChildProcess>();
  const startRunner = (): ChildProcess => {
    const child = spawn(process.execPath, [resolve('dist/runner.js'), '--config', configFile], { env: runnerEnv, stdio: ['ignore', out, out] });
    child.once('exit', (code, signal) => {
      if (killedOnPurpose.has(child)) return;
      runnerExit = `code ${code} signal ${signal}`;
      log(`RUNNER EXITED: ${runnerExit}`);
    });
    log(`runner pid ${child.pid}, log ${runnerLog}`);
    return child;
  };
  let runner = startRunner();

  // The steady stream: `rate` messages a second, keyed; a send the broker did not acknowledge is sent again later,
  // so that in the end every seq was acknowledged exactly as the producer knows it.
  const producer = new Producer({ clientId: 'stress-producer', bootstrapBrokers: [bootstrap], retries: 0, timeout: 5_000 } as never);
  const acked = new Set<number>();
  const pending: number[] = [];
  let next = 0;
  let producing = true;
  const produceLoop = (async () => {
    while (producing || pending.length > 0) {
      const batch = pending.splice(0, pending.length);
      if (producing) for (let i = 0; i < rate / 10; i++) batch.push(next++);
      if (batch.length > 0) {
        try {
          await producer.send({ messages: batch.map((seq) => ({ topic, key: Buffer.from(`key-${seq % keys}`), value: Buffer.from(JSON.stringify({ seq })) })) });
          for (const seq of batch) acked.add(seq);
        } catch {
          pending.push(...batch);
        }
      }
      await sleep(100);
    }
  })();

  const rounds: Array<{ round: number; downMs: number; brokerBackAt: number; firstHandledMs: number | null; runnerAlive: boolean }> = [];
  await sleep(upMs);
  for (let round = 1; round <= restarts && !runnerExit && args.kill === 'runner'; round++) {
    log(`round ${round}: SIGKILL the runner, start a new one`);
    const old = runner;
    killedOnPurpose.add(old);
    old.kill('SIGKILL');
    await new Promise((r) => old.once('exit', r));
    const startAt = Date.now();
    runner = startRunner();
    const pid = runner.pid;
    let first: number | null = null;
    while (Date.now() < startAt + 120_000 && !runnerExit) {
      const mine = readRecords(recordFile).filter((r) => (r as unknown as { pid: number }).pid === pid);
      if (mine.length > 0) {
        first = Math.min(...mine.map((r) => r.started)) - startAt;
        break;
      }
      await sleep(200);
    }
    log(`round ${round}: first message handled ${first === null ? 'NEVER (120 s)' : `${(first / 1000).toFixed(1)} s`} after the new runner started`);
    rounds.push({ round, downMs: 0, brokerBackAt: startAt, firstHandledMs: first, runnerAlive: !runnerExit });
    const rest = startAt + upMs - Date.now();
    if (rest > 0) await sleep(rest);
  }
  for (let round = 1; round <= restarts && !runnerExit && args.kill === 'broker'; round++) {
    log(`round ${round}: SIGKILL the broker`);
    killBroker();
    await sleep(downMs);
    const startAt = Date.now();
    const starting = new Promise<void>((r, j) => {
      const p = spawn('bash', ['scripts/brokers.sh', 'start', 'kafka'], { env: brokerEnv, stdio: ['ignore', 'ignore', 'inherit'] });
      p.once('exit', (code) => (code === 0 ? r() : j(new Error(`brokers.sh start exited ${code}`))));
    });
    while (!(await portAnswers())) await sleep(100);
    const backAt = Date.now();
    log(`round ${round}: broker port answers again after ${backAt - startAt} ms of start-up`);
    await starting;
    let first: number | null = null;
    const until = backAt + Math.max(upMs, 60_000);
    while (Date.now() < until && !runnerExit) {
      const after = readRecords(recordFile).filter((r) => r.started >= backAt);
      if (after.length > 0) {
        first = Math.min(...after.map((r) => r.started)) - backAt;
        break;
      }
      await sleep(200);
    }
    log(`round ${round}: first message handled ${first === null ? 'NEVER (60 s)' : `${(first / 1000).toFixed(1)} s`} after the broker was back`);
    rounds.push({ round, downMs, brokerBackAt: backAt, firstHandledMs: first, runnerAlive: !runnerExit });
    const rest = backAt + upMs - Date.now();
    if (rest > 0) await sleep(rest);
  }
  producing = false;
  await produceLoop;
  await producer.close();
  log(`produced and acknowledged ${acked.size} messages; waiting for the runner to handle them`);
  const deadline = Date.now() + 180_000;
  let handled = new Set<number>();
  while (Date.now() < deadline && !runnerExit) {
    handled = new Set(readRecords(recordFile).filter((r) => r.ok).map((r) => r.seq));
    if ([...acked].every((s) => handled.has(s))) break;
    await sleep(1000);
  }
  const records = readRecords(recordFile);
  const lost = [...acked].filter((s) => !handled.has(s));
  const duplicates = records.length - new Set(records.map((r) => r.seq)).size;
  const alive = !runnerExit;
  if (alive) runner.kill('SIGTERM');
  await new Promise((r) => (runnerExit ? r(undefined) : runner.once('exit', r)));
  if (ownBroker) {
    brokers('stop');
    rmSync(kafkaHome, { recursive: true, force: true });
  }

  const recoveries = rounds.map((r) => r.firstHandledMs);
  const worst = recoveries.some((r) => r === null) ? null : Math.max(...(recoveries as number[]));
  process.stdout.write(`round  down s  first handled after ${args.kill === 'runner' ? 'the new runner started' : 'broker back'} (s)\n`);
  for (const r of rounds) process.stdout.write(`${String(r.round).padStart(5)}  ${String(r.downMs / 1000).padStart(6)}  ${r.firstHandledMs === null ? 'never' : (r.firstHandledMs / 1000).toFixed(1)}\n`);
  process.stdout.write(`runner alive throughout: ${alive ? 'yes' : `NO (${runnerExit})`}; produced ${acked.size}, lost ${lost.length}, repeated ${duplicates}; worst recovery ${worst === null ? 'never' : `${(worst / 1000).toFixed(1)} s`}\n`);
  const ok = alive && lost.length === 0 && worst !== null && worst <= 30_000;
  process.stdout.write(
    `${JSON.stringify({ stress: 'kafka-restarts', kill: args.kill, instanceId: args['instance-id'] || null, protocol: args.protocol || 'default', restarts: rounds.length, downSeconds: downMs / 1000, rate, partitions, produced: acked.size, lost: lost.length, repeated: duplicates, runnerAlive: alive, runnerExit: runnerExit ?? null, recoveriesMs: recoveries, worstRecoveryMs: worst, ok, runnerLog })}\n`,
  );
  process.exit(ok ? 0 : 1);
}

main().catch((err: unknown) => {
  log(`failed: ${(err as Error)?.stack ?? String(err)}`);
  process.exit(2);
});
