/**
 * Turns what a worker reported into Conveyor's error classes (invariant 5): handler code → ReceiverError,
 * everything else → a RuntimeFailure subclass. The class decides retries and goes into logs, metrics and
 * the dead-letter envelope.
 */
import type { MessageFailure } from '../pool/worker-pool.ts';
import {
  BrokerFailure,
  DeserializationFailure,
  HandlerTimeout,
  ReceiverError,
  WorkerCrashed,
  type ConveyorError,
  type ErrorContext,
} from './errors.ts';

type Failure = MessageFailure;

/** The handler's own error as the worker saw it (name, message, stack), kept as the cause. */
class ReportedError extends Error {
  constructor(failure: Failure) {
    super(failure.message);
    this.name = failure.name;
    if ('stack' in failure && failure.stack) this.stack = failure.stack;
  }
}

export function classifyFailure(failure: Failure, context: ErrorContext): ConveyorError {
  const cause = new ReportedError(failure);
  switch (failure.kind) {
    case 'receiver':
      return new ReceiverError(`handler threw ${failure.name}: ${failure.message}`, { context, cause });
    case 'non-retryable':
      return new ReceiverError(`handler threw NonRetryableError: ${failure.message}`, { context, cause, retriable: false });
    case 'deserialization':
      return new DeserializationFailure(`message could not be deserialized: ${failure.message}`, { context, cause });
    case 'timeout':
      return new HandlerTimeout(failure.message, { context, cause });
    case 'terminated-after-timeout':
      return new HandlerTimeout(failure.message, { context, cause });
    case 'crash':
      return new WorkerCrashed(failure.message, { context, cause });
    case 'publish':
      return new BrokerFailure(failure.message, { context, cause });
  }
}

/** error_type of the dead-letter envelope: the concrete failure (the handler's own error name for receivers). */
export function errorType(error: ConveyorError): string {
  if (error instanceof ReceiverError && error.cause instanceof Error) return error.cause.name;
  return error.name;
}
