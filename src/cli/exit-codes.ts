/**
 * The exit codes of `conveyor <command>` and how an error becomes one. Every command prints a failure the same way:
 * `conveyor <command>: <code>: <message>` on stderr, so scripts can match the stable code and people read the rest.
 */
import { ConfigError, ConveyorError, EXIT_CONFIG } from '../failure/errors.ts';
import { HandlerDiscoveryError } from '../handlers/discover.ts';
import type { CliIO } from './context.ts';

export const EXIT_OK = 0;
/** Something failed (e.g. some dead letters could not be replayed); the output says what. */
export const EXIT_FAILED = 1;
/** `events.dlq.not_found`: no such dead letter, or it was already resolved. */
export const EXIT_NOT_FOUND = 2;
/** `events.group.active`: the consumer group has members; stop them first. */
export const EXIT_GROUP_ACTIVE = 3;
/** `events.retention.exceeded`: asked for messages the broker no longer keeps. */
export const EXIT_RETENTION = 4;
/** Bad command line (sysexits EX_USAGE). */
export const EXIT_USAGE = 64;
/** The command line is well-formed but names something impossible, e.g. an offset outside the log (EX_DATAERR). */
export const EXIT_DATA = 65;
/** A broker could not be reached in time (EX_UNAVAILABLE). */
export const EXIT_UNAVAILABLE = 69;
export { EXIT_CONFIG };

/** Bad arguments found after commander parsed them (an ISO time that is not one, an unknown filter field). */
export class UsageError extends ConveyorError {
  constructor(message: string) {
    super('conveyor.cli.usage', message);
  }
}

const EXIT_BY_CODE: Readonly<Record<string, number>> = {
  'events.dlq.not_found': EXIT_NOT_FOUND,
  'events.group.active': EXIT_GROUP_ACTIVE,
  'events.retention.exceeded': EXIT_RETENTION,
  'events.offset.out_of_range': EXIT_DATA,
  'conveyor.kafka.unknown_topic': EXIT_DATA,
  'conveyor.kafka.unknown_partition': EXIT_DATA,
  'events.broker.unavailable': EXIT_UNAVAILABLE,
  'conveyor.cli.usage': EXIT_USAGE,
  'conveyor.config.invalid': EXIT_CONFIG,
  'conveyor.handler.invalid': EXIT_CONFIG,
  'conveyor.handler.shared_consumer': EXIT_CONFIG,
};

/** The exit code for an error a command could not handle itself. */
export function exitCodeFor(err: unknown): number {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? (EXIT_BY_CODE[code] ?? EXIT_FAILED) : EXIT_FAILED;
}

/** Prints the error (code first, then what to do) and returns its exit code. */
export function reportFailure(io: CliIO, command: string, err: unknown): number {
  if (err instanceof ConfigError || err instanceof HandlerDiscoveryError) {
    io.err(`conveyor ${command}: ${err.code}: ${err.message}`);
    return EXIT_CONFIG;
  }
  if (err instanceof ConveyorError) {
    io.err(`conveyor ${command}: ${err.code}: ${err.message}`);
    return exitCodeFor(err);
  }
  io.err(`conveyor ${command}: failed: ${(err as Error)?.stack ?? String(err)}`);
  return EXIT_FAILED;
}

/**
 * Runs a command's work and records its exit code in process.exitCode (main exits with it once commander is done);
 * an error the work did not handle is reported and becomes its exit code.
 */
export async function settle(io: CliIO, command: string, work: () => Promise<number>): Promise<void> {
  try {
    process.exitCode = await work();
  } catch (err) {
    process.exitCode = reportFailure(io, command, err);
  }
}
