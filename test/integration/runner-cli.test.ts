/**
 * The runner as an operator meets it: `node dist/runner.js [run] --config <file>`. Bad configuration and bad
 * handler files stop it before anything connects (exit 78, every problem on its own line); SIGTERM stops it
 * gracefully with exactly the handled messages committed (exit 0); a second signal exits at once (130).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { useKafkaFixture } from '../support/fixture.ts';
import { getFreePort } from '../support/free-port.ts';
import { committedOffsets, produce, uniqueName, waitFor } from '../support/kafka.ts';
import { newRecordFile, readRecords, RunnerProcess } from '../support/runner.ts';

const RUNNER = resolve('dist/runner.js');
const RECORDER_DIR = resolve('test/fixtures/handlers');
const BAD_HANDLERS_DIR = resolve('test/fixtures/bad-handlers');

/** A YAML config file of these lines, in a fresh temporary directory. */
function configFile(lines: readonly string[]): string {
  const file = join(mkdtempSync(join(tmpdir(), 'conveyor-cli-')), 'config.yaml');
  writeFileSync(file, [...lines, ''].join('\n'));
  return file;
}

function brokerLines(handlersDir = RECORDER_DIR): string[] {
  return [
    'kafka:',
    `  bootstrapServers: "${inject('kafkaBrokers')}"`,
    '  autoOffsetReset: earliest',
    'handlers:',
    `  directory: "${handlersDir}"`,
    'commit:',
    '  intervalMs: 100',
    'log:',
    '  level: debug',
  ];
}

describe('runner CLI', () => {
  const fx = useKafkaFixture();

  /** Spawns the runner with these arguments; the recorder reads TEST_TOPIC and TEST_GROUP from `env`. */
  function spawnRunner(args: readonly string[], env: Record<string, string> = {}): RunnerProcess {
    const child = spawn(process.execPath, [RUNNER, ...args], {
      env: { ...process.env, RECORD_FILE: newRecordFile(), ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const runner = fx.track(new RunnerProcess(child, env.RECORD_FILE ?? ''));
    closedStreams.set(runner, new Promise((r) => child.once('close', r)));
    return runner;
  }

  /** Exit code once the process exited and its stdout and stderr were read to the end. */
  async function finished(runner: RunnerProcess): Promise<number | null> {
    const { code } = await runner.exited;
    await closedStreams.get(runner);
    return code;
  }
  const closedStreams = new WeakMap<RunnerProcess, Promise<unknown>>();

  it('invalid configuration: exit 78, one line per bad key naming its environment variable and expectation, nothing connected', async () => {
    const { topic, group } = await fx.topic('cli-config', 1);
    const file = configFile([
      'kafka:',
      `  bootstrapServers: "${inject('kafkaBrokers')}"`,
      '  acks: "2"',
      'retry:',
      '  maxAttempts: 99',
      'handlers:',
      `  directory: "${RECORDER_DIR}"`,
    ]);
    const runner = spawnRunner(['--config', file], { TEST_TOPIC: topic, TEST_GROUP: group, KAFKA_AUTO_OFFSET_RESET: 'sometimes' });
    expect(await finished(runner)).toBe(78);
    const lines = runner.stderr.join('').split('\n');
    const lineFor = (key: string): string | undefined => lines.find((l) => l.includes(key));
    expect(lineFor('retry.maxAttempts')).toMatch(/retry\.maxAttempts \(KAFKA_MAX_RETRY_ATTEMPTS\): must be an integer from 0 to 10; got 99$/);
    expect(lineFor('kafka.acks')).toMatch(/kafka\.acks \(KAFKA_ACKS\): must be one of all, 1, 0; got "2"$/);
    expect(lineFor('kafka.autoOffsetReset')).toMatch(/kafka\.autoOffsetReset \(KAFKA_AUTO_OFFSET_RESET\): must be one of earliest, latest; got "sometimes"$/);
    // Three problems, three lines: none lost behind the first, none merged.
    expect(lines.filter((l) => /^\s+- /.test(l))).toHaveLength(3);
    // Nothing started: no log lines at all, and the consumer group never existed.
    expect(runner.has('running')).toBe(false);
    expect(runner.has('starting')).toBe(false);
    expect([...(await fx.admin.listGroups()).keys()]).not.toContain(group);
  });

  it('bad handler files: exit 78, naming each file and each of its problems', async () => {
    const file = configFile(brokerLines(BAD_HANDLERS_DIR));
    const runner = spawnRunner(['--config', file]);
    expect(await finished(runner)).toBe(78);
    const stderr = runner.stderr.join('');
    const block = (name: string): string => {
      const start = stderr.indexOf(join(BAD_HANDLERS_DIR, name));
      expect(start, `${name} named in stderr:\n${stderr}`).toBeGreaterThanOrEqual(0);
      const next = stderr.indexOf(`\n${BAD_HANDLERS_DIR}`, start + 1);
      return stderr.slice(start, next < 0 ? undefined : next);
    };
    const thrower = block('throws-on-import.ts');
    expect(thrower).toMatch(/cannot be imported: fixture: this handler file breaks at import time/);
    const nonsense = block('nonsense.ts');
    expect(nonsense).toMatch(/\n\s+- topic must be a Kafka topic name .*; got "orders with spaces"/);
    expect(nonsense).toMatch(/\n\s+- timeoutMs must be an integer from 1 to 3600000; got -1/);
    expect(runner.has('running')).toBe(false);
    expect(runner.has('starting')).toBe(false);
  });

  it('SIGTERM mid-stream: exit 0 after "shutting down" then "stopped", committed offsets = handled messages per partition', async () => {
    const partitions = 3;
    const perPartition = 100;
    const { topic, group } = await fx.topic('cli-graceful', partitions);
    const messages = Array.from({ length: partitions * perPartition }, (_, seq) => ({ partition: seq % partitions, value: { seq, delayMs: 50 } }));
    await produce(fx.kafka, topic, messages);
    const runner = await fx.startRunner({ topic, group, env: { CONVEYOR_POOL_SIZE: '3', CONVEYOR_POOL_MAX_BATCH: '8' } });
    await waitFor('some messages handled', () => readRecords(runner.recordFile).length >= 30, 30_000);
    const { code } = await runner.stop('SIGTERM');
    expect(code).toBe(0);

    const msgs = runner.logs.map((l) => l.msg);
    const shuttingDown = msgs.indexOf('shutting down');
    expect(shuttingDown).toBeGreaterThanOrEqual(0);
    expect(msgs.indexOf('stopped')).toBeGreaterThan(shuttingDown);
    const signalAt = runner.logs[shuttingDown]!.time as number;

    const records = readRecords(runner.recordFile);
    expect(records.every((r) => r.ok)).toBe(true);
    expect(records.length, 'stopped mid-stream').toBeLessThan(partitions * perPartition);
    // Work in flight at the signal was finished, not dropped.
    expect(records.some((r) => r.started < signalAt && r.ended >= signalAt), 'a message in flight at SIGTERM completed').toBe(true);
    const committed = await committedOffsets(fx.admin, group, topic);
    for (let p = 0; p < partitions; p++) {
      const handled = records.filter((r) => r.partition === p).map((r) => Number(r.offset));
      // handled exactly offsets 0..n-1 once each, and committed exactly n: nothing handled-but-uncommitted,
      // nothing committed-but-unhandled
      expect(handled, `partition ${p} handled`).toEqual([...handled.keys()]);
      expect(committed.get(p), `partition ${p} committed`).toBe(BigInt(handled.length));
    }
  });

  it('a second signal during shutdown exits at once with 130', async () => {
    const { topic, group } = await fx.topic('cli-second-signal', 1);
    await produce(fx.kafka, topic, [{ partition: 0, value: { seq: 0, delayMs: 20_000 } }]);
    const runner = await fx.startRunner({
      topic,
      group,
      env: { TEST_TIMEOUT_MS: '60000', CONVEYOR_SHUTDOWN_DEADLINE_MS: '30000' },
    });
    await waitFor('partition assigned', () => runner.assigned().size === 1);
    await new Promise((r) => setTimeout(r, 1500)); // the handler is now sleeping its 20 s
    runner.child.kill('SIGTERM');
    await runner.waitForLog('shutting down', 5000);
    // The first signal waits for the stuck handler (up to the 30 s deadline) ...
    await new Promise((r) => setTimeout(r, 1000));
    expect(runner.child.exitCode, 'still draining after the first signal').toBeNull();
    // ... the second one does not.
    const sentAt = Date.now();
    runner.child.kill('SIGTERM');
    const { code } = await runner.exited;
    expect(code).toBe(130);
    expect(Date.now() - sentAt).toBeLessThan(2000);
    expect(runner.has('second signal: exiting now')).toBe(true);
    expect(runner.has('stopped')).toBe(false);
    // The unfinished message was neither recorded nor committed: the next owner handles it.
    expect(readRecords(runner.recordFile)).toEqual([]);
    expect((await committedOffsets(fx.admin, group, topic)).get(0) ?? -1n).toBeLessThanOrEqual(0n);
  });

  it('SIGTERM while start-up waits for an unreachable Kafka: a clean stop with exit 0, not a start-up failure', async () => {
    const port = await getFreePort(); // nothing listens there
    const file = configFile(brokerLines().map((l) => (l.startsWith('  bootstrapServers:') ? `  bootstrapServers: "127.0.0.1:${port}"` : l)));
    const runner = spawnRunner(['--config', file], {
      TEST_TOPIC: uniqueName('conveyor.test.cli-unreachable'),
      TEST_GROUP: uniqueName('conveyor.test.cli-unreachable-group'),
      CONVEYOR_OPS_PORT: '0',
    });
    await runner.waitForLog('starting', 10_000);
    await new Promise((r) => setTimeout(r, 1000)); // connecting, and failing to
    expect(runner.child.exitCode).toBeNull();
    runner.child.kill('SIGTERM');
    // Nothing was fetched, so there is nothing to drain or commit: the stop itself is immediate ...
    await runner.waitForLog('stopped', 3000);
    const stoppedAt = Date.now();
    // ... and so is the exit: the driver's connect waits for the brokers in slices of 1 s on a libuv thread (which
    // Node joins at exit), not in one of 30 s (kafka/bounded-connect.ts)
    const code = await finished(runner);
    expect(code).toBe(0);
    expect(Date.now() - stoppedAt).toBeLessThan(2_000);
    const msgs = runner.logs.map((l) => l.msg);
    expect(msgs.indexOf('stopped')).toBeGreaterThan(msgs.indexOf('shutting down'));
    expect(msgs).not.toContain('start-up failed');
    expect(msgs).not.toContain('running');
    expect(runner.logs.filter((l) => /uncaught|unhandled/.test(l.msg))).toEqual([]);
  }, 60_000);

  it('a Kafka that cannot be reached at start: exit 1 with a start-up failure naming the addresses tried, the setting and what to check', async () => {
    const port = await getFreePort(); // nothing listens there
    const address = `127.0.0.1:${port}`;
    const file = configFile(brokerLines().map((l) => (l.startsWith('  bootstrapServers:') ? `  bootstrapServers: "${address}"` : l)));
    const started = Date.now();
    const runner = spawnRunner(['--config', file], {
      TEST_TOPIC: uniqueName('conveyor.test.cli-closed'),
      TEST_GROUP: uniqueName('conveyor.test.cli-closed-group'),
      CONVEYOR_OPS_PORT: '0',
    });
    await runner.waitForLog('start-up failed', 45_000);
    const reportedAt = Date.now();
    const code = await finished(runner);
    expect(code).toBe(1);
    expect(Date.now() - reportedAt, 'exit right after the report').toBeLessThan(2_000);
    expect(reportedAt - started, "after the driver's 30 s of trying").toBeGreaterThan(25_000);
    const failure = runner.logs.find((l) => l.msg === 'start-up failed') as unknown as { err: { code: string; message: string } };
    expect(failure.err.code).toBe('events.broker.unavailable');
    expect(failure.err.message).toMatch(new RegExp(`^cannot connect to Kafka: no broker at ${address.replaceAll('.', '\\.')} answered within 30 s \\(broker transport failure; last attempt: Connect to ipv4#${address.replaceAll('.', '\\.')} failed: Connection refused\\)\\. `));
    expect(failure.err.message).toContain('Check kafka.bootstrapServers (KAFKA_BOOTSTRAP_SERVERS)');
    expect(failure.err.message).toContain('and that the brokers are up');
    expect(failure.err.message).toContain('kafka.securityProtocol (KAFKA_SECURITY_PROTOCOL, now plaintext) must match that listener.');
  }, 60_000);

  it('--help prints usage and exits 0; `run --config <file>` (the package bin\'s form) starts and stops', async () => {
    const help = spawnRunner(['--help']);
    expect(await finished(help)).toBe(0);
    expect(help.logs.map((l) => l.msg).join('\n')).toMatch(/^usage: conveyor run --config <file>/);

    const unknown = spawnRunner(['--no-such-option']);
    expect(await finished(unknown)).toBe(64);
    expect(unknown.stderr.join('')).toMatch(/usage: conveyor run --config <file>/);

    // `conveyor` is package.json's bin for dist/runner.js: what `npx conveyor run --config <file>` runs.
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { bin: Record<string, string> };
    expect(pkg.bin.conveyor).toBe('dist/runner.js');
    expect(readFileSync(RUNNER, 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);

    const { topic, group } = await fx.topic('cli-run', 1);
    const recordFile = newRecordFile();
    const runner = spawnRunner(['run', '--config', configFile(brokerLines())], { TEST_TOPIC: topic, TEST_GROUP: group, RECORD_FILE: recordFile });
    await runner.waitForLog('running', 30_000);
    await produce(fx.kafka, topic, [{ value: { seq: 7 } }]);
    await waitFor('the message handled', () => readRecords(recordFile).length === 1);
    expect(readRecords(recordFile)[0]!.seq).toBe(7);
    expect((await runner.stop('SIGTERM')).code).toBe(0);
  });
});
