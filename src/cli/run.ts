/**
 * `conveyor run --config <file>` (also `node dist/runner.js --config <file>`): the long-running consumer.
 * Exit codes: 0 after a graceful stop, 78 for invalid configuration or handler files, 1 when start-up fails or a
 * Kafka client failed for good, 130 on a second SIGTERM/SIGINT during shutdown.
 */
import type { Command } from 'commander';
import { ConfigError, EXIT_CONFIG } from '../failure/errors.ts';
import { HandlerDiscoveryError } from '../handlers/discover.ts';
import { createLogger } from '../ops/logger.ts';
import { Runtime } from '../runtime.ts';
import type { CliContext } from './context.ts';
import { settle } from './exit-codes.ts';

export function registerRun(program: Command, ctx: CliContext): void {
  program
    .command('run')
    .summary('run the handler files until SIGTERM or SIGINT (the default command)')
    .description(
      'Runs the handler files of the configured directory against Kafka and RabbitMQ until SIGTERM or SIGINT. ' +
        'Configuration keys and their environment variables: docs/configuration.md.\n\n' +
        'Exit codes: 0 stopped gracefully, 1 start-up failed or a Kafka client failed for good, 64 bad command line, 78 invalid configuration or handler files, ' +
        '130 a second signal during shutdown.',
    )
    .usage('--config <file>')
    .option('-c, --config <file>', 'configuration file (YAML or JSON); environment variables override it')
    .action((options: { config?: string }) => settle(ctx.io, 'run', () => runConsumer(options.config, ctx)));
}

export async function runConsumer(file: string | undefined, ctx: CliContext): Promise<number> {
  let runtime: Runtime;
  try {
    const config = ctx.loadConfig(file);
    runtime = await Runtime.create(config, createLogger('conveyor', config.log.level));
  } catch (err) {
    if (err instanceof ConfigError || err instanceof HandlerDiscoveryError) {
      ctx.io.err(`conveyor: not started\n${err.message}`);
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
  // a Kafka client failed for good (e.g. a static member fenced by another with its group.instance.id): stop
  // gracefully and exit 1, so that the orchestrator starts the process afresh instead of it idling for ever
  const fatal = await Promise.race([stopped.then(() => undefined), runtime.failed]);
  if (fatal !== undefined && signals === 0) {
    log.fatal({ reason: fatal }, 'a Kafka client failed for good: stopping; start the process again (an orchestrator does)');
    await runtime.stop().catch((err: unknown) => log.error({ err }, 'shutdown failed'));
    return 1;
  }
  await stopped;
  return 0;
}
