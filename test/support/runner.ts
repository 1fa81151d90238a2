/**
 * Runs Conveyor as a user does, `node dist/runner.js --config <file>`, in a child process, against the test
 * brokers, with the recorder fixture handler; reads its JSON log lines and what the handler recorded.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { inject } from 'vitest';
import { waitFor } from './kafka.ts';

export interface Recorded {
  readonly seq: number;
  readonly partition: number;
  readonly offset: string;
  /** Kafka key; RabbitMQ routing key. */
  readonly key: string | null;
  readonly attempt: number;
  readonly thread: number;
  readonly pid: number;
  readonly started: number;
  readonly ended: number;
  readonly ok: boolean;
}

export interface LogLine {
  readonly level: number;
  readonly msg: string;
  readonly [key: string]: unknown;
}

export interface RunnerOptions {
  /** Kafka topic and group of the recorder (TEST_TOPIC, TEST_GROUP) ... */
  readonly topic?: string;
  readonly group?: string;
  /** ... or its RabbitMQ queue (TEST_QUEUE). */
  readonly queue?: string;
  /** Environment of the runner: config overrides (docs/configuration.md) and the recorder's TEST_* settings. */
  readonly env?: Record<string, string>;
  readonly recordFile?: string;
  /** Directory of handler files (default test/fixtures/handlers: the recorder only). */
  readonly handlersDir?: string;
}

export class RunnerProcess {
  readonly child: ChildProcess;
  readonly recordFile: string;
  readonly logs: LogLine[] = [];
  readonly stderr: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(child: ChildProcess, recordFile: string) {
    this.child = child;
    this.recordFile = recordFile;
    let buffer = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      buffer += chunk;
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        try {
          this.logs.push(JSON.parse(line) as LogLine);
        } catch {
          this.logs.push({ level: 30, msg: line });
        }
      }
    });
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => this.stderr.push(chunk));
    this.exited = new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })));
  }

  has(msg: string | RegExp): boolean {
    return this.logs.some((l) => (typeof msg === 'string' ? l.msg === msg : msg.test(l.msg)));
  }

  /** Partitions the runner was last assigned, from its logs (assign and revoke events in order). */
  assigned(): Set<number> {
    const owned = new Set<number>();
    for (const l of this.logs) {
      const parts = (l.partitions ?? []) as Array<{ partition: number }>;
      if (l.msg === 'partitions assigned') for (const p of parts) owned.add(p.partition);
      if (l.msg === 'partitions revoked') for (const p of parts) owned.delete(p.partition);
    }
    return owned;
  }

  async waitForLog(msg: string | RegExp, timeoutMs = 30_000): Promise<void> {
    await waitFor(`log "${msg}" (stderr: ${this.stderr.join('').slice(-500)})`, () => this.has(msg), timeoutMs);
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    return this.exited;
  }
}

export function readRecords(file: string): Recorded[] {
  if (!existsSync(file)) return [];
  // Worker threads append while tests poll: a line without its newline yet is still being written.
  const lines = readFileSync(file, 'utf8').split('\n');
  return lines.slice(0, -1).filter(Boolean).map((l) => JSON.parse(l) as Recorded);
}

export function newRecordFile(): string {
  return join(mkdtempSync(join(tmpdir(), 'conveyor-test-')), 'records.jsonl');
}

/** A config file for the test brokers: the YAML the runner helpers start `node dist/runner.js` with. */
export function runnerConfigFile(handlersDir = 'test/fixtures/handlers', extraLines: readonly string[] = []): string {
  const dir = mkdtempSync(join(tmpdir(), 'conveyor-runner-'));
  const configFile = join(dir, 'config.yaml');
  writeFileSync(
    configFile,
    [
      'kafka:',
      `  bootstrapServers: "${inject('kafkaBrokers')}"`,
      '  autoOffsetReset: earliest',
      'rabbitmq:',
      `  url: "${inject('amqpUrl')}"`,
      'handlers:',
      `  directory: "${resolve(handlersDir)}"`,
      ...extraLines,
      'log:',
      '  level: debug',
      '',
    ].join('\n'),
  );
  return configFile;
}

/** Spawns `node dist/runner.js --config <file>` with this environment (over the test's), without waiting for it. */
export function spawnRunnerProcess(configFile: string, recordFile: string, env: Record<string, string>): RunnerProcess {
  const child = spawn(process.execPath, [resolve('dist/runner.js'), '--config', configFile], {
    env: {
      ...process.env,
      RECORD_FILE: recordFile,
      // runners of a test may run side by side: each ops server on a free port (logged at start)
      CONVEYOR_OPS_PORT: '0',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new RunnerProcess(child, recordFile);
}

/** Starts `node dist/runner.js` with the recorder fixture; resolves once it logged "running". */
export async function startRunner(options: RunnerOptions): Promise<RunnerProcess> {
  const configFile = runnerConfigFile(options.handlersDir, ['commit:', '  intervalMs: 100']);
  const recordFile = options.recordFile ?? newRecordFile();
  const runner = spawnRunnerProcess(configFile, recordFile, {
    ...(options.topic !== undefined ? { TEST_TOPIC: options.topic } : {}),
    ...(options.group !== undefined ? { TEST_GROUP: options.group } : {}),
    ...(options.queue !== undefined ? { TEST_QUEUE: options.queue } : {}),
    ...options.env,
  });
  await Promise.race([
    runner.waitForLog('running', 60_000),
    runner.exited.then(({ code }) => {
      throw new Error(`runner exited with ${code} before running: ${runner.stderr.join('')}`);
    }),
  ]);
  return runner;
}
