// Conveyor's public API: what handler files and applications import from 'conveyor'.
export { defineHandler, isHandler } from './handlers/define-handler.ts';
export type {
  Deserializer,
  Handler,
  HandlerContext,
  HandlerDeclaration,
  HandlerMessage,
  RetryPolicy,
} from './handlers/define-handler.ts';
