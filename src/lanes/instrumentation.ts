/**
 * The events the runtime emits, for logs, metrics, the demo's summary and tests. Names are stable API.
 */
import { EventEmitter } from 'node:events';

export interface MessageEvent {
  readonly handler: string;
  readonly group: string;
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
}

export interface RuntimeEvents {
  /** A batch of consecutive messages of one partition handled successfully (in order). */
  'messages.handled': [MessageEvent & { readonly count: number; readonly lastOffset: string; readonly durationMs: number }];
  'message.retry': [MessageEvent & { readonly attempt: number; readonly delayMs: number; readonly errorClass: string; readonly errorType: string; readonly reason: string }];
  'message.dead_lettered': [MessageEvent & { readonly deadLetterTopic: string; readonly retryCount: number; readonly errorClass: string; readonly errorType: string }];
  'dead_letter.publish_failed': [MessageEvent & { readonly deadLetterTopic: string; readonly attempt: number; readonly reason: string }];
  'offsets.committed': [{ readonly group: string; readonly offsets: ReadonlyArray<{ topic: string; partition: number; offset: string }> }];
  'partitions.assigned': [{ readonly group: string; readonly partitions: ReadonlyArray<{ topic: string; partition: number }> }];
  'partitions.revoked': [{ readonly group: string; readonly partitions: ReadonlyArray<{ topic: string; partition: number }> }];
  'partition.paused': [{ readonly group: string; readonly topic: string; readonly partition: number; readonly queued: number; readonly bytes: number }];
  'partition.resumed': [{ readonly group: string; readonly topic: string; readonly partition: number; readonly queued: number; readonly bytes: number }];
}

export class Instrumentation extends EventEmitter<RuntimeEvents> {}
