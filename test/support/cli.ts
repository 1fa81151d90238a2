/**
 * Runs `node dist/runner.js <command> ...` as an operator does, in a child process, against the test brokers.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { inject } from 'vitest';

export const RUNNER = resolve('dist/runner.js');
export const RECORDER_DIR = resolve('test/fixtures/handlers');
export const BAD_HANDLERS_DIR = resolve('test/fixtures/bad-handlers');

export interface CliResult {
  readonly code: number | null;
  /** The signal that ended the process (a crash: SIGSEGV, SIGABRT), or null. */
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  /** Wall-clock time of the whole command, process start included. */
  readonly ms: number;
}

/** A YAML config file of these lines, in a fresh temporary directory. */
export function writeConfig(lines: readonly string[]): string {
  const file = join(mkdtempSync(join(tmpdir(), 'conveyor-cli-')), 'config.yaml');
  writeFileSync(file, [...lines, ''].join('\n'));
  return file;
}

/** A config for the test brokers with the recorder fixture as the only handler. */
export function brokerConfig(options: { handlersDir?: string; bootstrapServers?: string } = {}): string {
  return writeConfig([
    'kafka:',
    `  bootstrapServers: "${options.bootstrapServers ?? inject('kafkaBrokers')}"`,
    'rabbitmq:',
    `  url: "${inject('amqpUrl')}"`,
    'handlers:',
    `  directory: "${options.handlersDir ?? RECORDER_DIR}"`,
  ]);
}

/** Runs the CLI with these arguments; resolves with its exit code and output (never rejects on a non-zero exit). */
export function runCli(args: readonly string[], env: Record<string, string> = {}, timeoutMs = 60_000): Promise<CliResult> {
  const started = Date.now();
  return new Promise((resolvePromise) => {
    execFile(
      process.execPath,
      [RUNNER, ...args],
      { env: { ...process.env, ...env }, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : null) : 0;
        const signal = (error as { signal?: NodeJS.Signals | null } | null)?.signal ?? null;
        resolvePromise({ code, signal, stdout, stderr, ms: Date.now() - started });
      },
    );
  });
}

/** `--json` output of a command that exited 0, parsed; fails with the command's stderr otherwise. */
export function jsonOf<T>(result: CliResult): T {
  if (result.code !== 0) throw new Error(`exit ${result.code}: ${result.stderr}`);
  return JSON.parse(result.stdout) as T;
}
