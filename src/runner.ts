#!/usr/bin/env node
/**
 * `node dist/runner.js --config <file>` (also `conveyor run --config <file>`): the long-running consumer.
 * Exit codes: 0 after a graceful stop, 78 for invalid configuration or handler files, 1 when start-up fails,
 * 130 on a second SIGTERM/SIGINT during shutdown.
 */
import { parseArgs } from 'node:util';
import { loadConfig } from './config/load.ts';
import { ConfigError, EXIT_CONFIG } from './failure/errors.ts';
import { HandlerDiscoveryError } from './handlers/discover.ts';
import { createLogger } from './ops/logger.ts';
import { Runtime } from './runtime.ts';

const USAGE = `usage: conveyor run --config <file>
       node dist/runner.js --config <file>

Runs the handler files of the configured directory against Kafka and RabbitMQ until SIGTERM or SIGINT.
Configuration keys and their environment variables: docs/configuration.md`;

async function main(argv: string[]): Promise<number> {
  const args = argv[0] === 'run' ? argv.slice(1) : argv;
  let values: { config?: string | undefined; help?: boolean | undefined };
  try {
    ({ values } = parseArgs({ args, options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } } }));
  } catch (err) {
    console.error(`${(err as Error).message}\n\n${USAGE}`);
    return 64;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  let runtime: Runtime;
  try {
    const config = loadConfig(values.config ? { file: values.config } : {});
    runtime = await Runtime.create(config, createLogger('conveyor', config.log.level));
  } catch (err) {
    if (err instanceof ConfigError || err instanceof HandlerDiscoveryError) {
      console.error(`conveyor: not started\n${err.message}`);
      return EXIT_CONFIG;
    }
    throw err;
  }
  const log = runtime.logger;
  process.on('unhandledRejection', (reason) => log.error({ err: reason }, 'unhandled rejection (kept running)'));
  process.on('uncaughtException', (err) => log.error({ err }, 'uncaught exception (kept running)'));

  let signals = 0;
  const stopped = new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      signals += 1;
      if (signals > 1) {
        log.warn({ signal }, 'second signal: exiting now');
        process.exit(130);
      }
      log.info({ signal, deadlineMs: runtime.config.shutdown.deadlineMs }, 'shutting down');
      void runtime.stop().then(resolve, (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        resolve();
      });
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  // A signal during start-up (say, while the brokers cannot be reached) stops the runner without waiting for
  // start-up to finish or fail; a start-up that fails because of that stop is not a start-up failure.
  const startup = runtime.start().then(
    () => undefined,
    (err: unknown) => ({ err }),
  );
  const failed = await Promise.race([startup, stopped]);
  if (failed && signals === 0) {
    log.fatal({ err: failed.err }, 'start-up failed');
    await runtime.stop(1000).catch(() => {});
    return 1;
  }
  await stopped;
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error('conveyor: failed', err);
    process.exit(1);
  },
);
