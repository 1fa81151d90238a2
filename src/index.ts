// Conveyor's handler API: what handler files import from 'conveyor'. Kept light on purpose: worker threads
// load it with every handler, so it must not pull in the Kafka client (import 'conveyor/runtime' for that).
export { defineHandler, isHandler } from './handlers/define-handler.ts';
export type {
  Deserializer,
  Handler,
  HandlerContext,
  HandlerDeclaration,
  HandlerLogger,
  HandlerMessage,
  Broker,
  OutgoingEvent,
  PublishOptions,
  RetryPolicy,
} from './handlers/define-handler.ts';
export {
  BrokerFailure,
  ConfigError,
  ConveyorError,
  DeserializationFailure,
  HandlerDeclarationError,
  HandlerTimeout,
  NonRetryableError,
  ReceiverError,
  RuntimeFailure,
  WorkerCrashed,
} from './failure/errors.ts';
export type { DeadLetterEnvelope } from './failure/dead-letter.ts';
export { retryWithBackoff, type RetryWithBackoffOptions } from './publish/retry-with-backoff.ts';
