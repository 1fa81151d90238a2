/**
 * Conveyor's one error hierarchy. Every error has a stable `code`, a `retriable` flag (the caller's decision is
 * data, not string matching) and the context it happened in (topic, partition, offset, handler file).
 *
 *   ConveyorError
 *   ├─ ReceiverError            a handler's own code threw (the seeds' "receiver failure"); keeps the cause
 *   ├─ RuntimeFailure           the runtime failed around the handler
 *   │   ├─ DeserializationFailure   the payload could not be decoded (never retried)
 *   │   ├─ HandlerTimeout           the handler ran past its timeoutMs
 *   │   ├─ WorkerCrashed            the worker thread died (uncaught error, process.exit)
 *   │   └─ BrokerFailure            a broker refused or could not be reached
 *   ├─ ConfigError              configuration does not validate (exit code 78)
 *   └─ HandlerDeclarationError  a handler file does not import or declares nonsense (exit code 78)
 *
 * Handlers may throw NonRetryableError to send a message to the dead-letter topic without retries.
 */

export interface ErrorContext {
  readonly topic?: string;
  readonly partition?: number;
  readonly offset?: string;
  readonly handler?: string;
  readonly file?: string;
  readonly group?: string;
}

export class ConveyorError extends Error {
  readonly code: string;
  readonly retriable: boolean;
  readonly context: ErrorContext;

  constructor(code: string, message: string, options: { retriable?: boolean; context?: ErrorContext; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retriable = options.retriable ?? false;
    this.context = options.context ?? {};
  }

  /** The marker class name: 'ReceiverError' or 'RuntimeFailure' (or the class itself for other errors). */
  get errorClass(): string {
    return this.name;
  }
}

/** Thrown by handler code (wrapped by the runtime): the handler failed, not Conveyor. */
export class ReceiverError extends ConveyorError {
  constructor(message: string, options: { retriable?: boolean; context?: ErrorContext; cause?: unknown } = {}) {
    super('conveyor.handler.failed', message, { retriable: options.retriable ?? true, ...options });
  }
  override get errorClass(): string {
    return 'ReceiverError';
  }
}

/** Throw it from a handler to skip retries: the message goes straight to the dead-letter topic. */
export class NonRetryableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'NonRetryableError';
  }
}

export class RuntimeFailure extends ConveyorError {
  override get errorClass(): string {
    return 'RuntimeFailure';
  }
}

export class DeserializationFailure extends RuntimeFailure {
  constructor(message: string, options: { context?: ErrorContext; cause?: unknown } = {}) {
    super('conveyor.message.undecodable', message, { ...options, retriable: false });
  }
}

export class HandlerTimeout extends RuntimeFailure {
  constructor(message: string, options: { context?: ErrorContext; cause?: unknown } = {}) {
    super('conveyor.handler.timeout', message, { ...options, retriable: true });
  }
}

export class WorkerCrashed extends RuntimeFailure {
  constructor(message: string, options: { context?: ErrorContext; cause?: unknown } = {}) {
    super('conveyor.worker.crashed', message, { ...options, retriable: true });
  }
}

export class BrokerFailure extends RuntimeFailure {
  /** The publish circuit breaker's state when this was thrown by a publisher ('closed', 'half_open', 'open'). */
  readonly circuitState: string | undefined;
  constructor(message: string, options: { context?: ErrorContext; cause?: unknown; code?: string; circuitState?: string } = {}) {
    super(options.code ?? 'events.broker.unavailable', message, { ...options, retriable: true });
    this.circuitState = options.circuitState;
  }
}

/** Exit code for configuration errors (sysexits EX_CONFIG). */
export const EXIT_CONFIG = 78;

export class ConfigError extends ConveyorError {
  readonly problems: readonly string[];
  constructor(problems: readonly string[], message = `invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`) {
    super('conveyor.config.invalid', message);
    this.problems = problems;
  }
}

export class HandlerDeclarationError extends ConveyorError {
  readonly problems: readonly string[];
  constructor(file: string, problems: readonly string[], cause?: unknown, code = 'conveyor.handler.invalid') {
    super(code, `${file}:\n${problems.map((p) => `  - ${p}`).join('\n')}`, { context: { file }, cause });
    this.problems = problems;
  }
}
