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
  'messages.handled': [
    MessageEvent & {
      readonly count: number;
      readonly lastOffset: string;
      /** Wall time of the batch's round trip, from hand-over to the pool to its result (and the events it published). */
      readonly durationMs: number;
      /** Time handle() took for each of the `count` messages, in ms, measured in the worker (absent when not known). */
      readonly durationsMs?: Float64Array | undefined;
    },
  ];
  'message.retry': [MessageEvent & { readonly attempt: number; readonly delayMs: number; readonly errorClass: string; readonly errorType: string; readonly reason: string }];
  'message.dead_lettered': [MessageEvent & { readonly deadLetterTopic: string; readonly retryCount: number; readonly errorClass: string; readonly errorType: string }];
  'dead_letter.publish_failed': [MessageEvent & { readonly deadLetterTopic: string; readonly attempt: number; readonly reason: string }];
  /**
   * Messages of one fetched batch not handed to the handler. `completed_before_restart`: the commit metadata of
   * the offset this member resumed from records them as completed by the partition's previous owner.
   */
  'messages.skipped': [
    { readonly handler: string; readonly group: string; readonly topic: string; readonly partition: number; readonly count: number; readonly reason: 'completed_before_restart' },
  ];
  /**
   * A partition's completed-ahead offsets did not fit in the commit metadata's bound (commit.metadataMaxBytes):
   * its watermark was committed without them (the messages after it are handled again by its next owner).
   */
  'offsets.metadata_overflow': [{ readonly group: string; readonly topic: string; readonly partition: number; readonly completedAhead: number }];
  'offsets.committed': [{ readonly group: string; readonly offsets: ReadonlyArray<{ topic: string; partition: number; offset: string }> }];
  /** A commit failed or was not answered within commit.timeoutMs; the next commit carries the newest watermark. */
  'offsets.commit_failed': [{ readonly group: string; readonly offsets: ReadonlyArray<{ topic: string; partition: number; offset: string }>; readonly reason: string; readonly timedOut: boolean }];
  'partitions.assigned': [{ readonly group: string; readonly partitions: ReadonlyArray<{ topic: string; partition: number }> }];
  'partitions.revoked': [{ readonly group: string; readonly partitions: ReadonlyArray<{ topic: string; partition: number }> }];
  'partition.paused': [{ readonly group: string; readonly topic: string; readonly partition: number; readonly queued: number; readonly bytes: number }];
  'partition.resumed': [{ readonly group: string; readonly topic: string; readonly partition: number; readonly queued: number; readonly bytes: number }];
  /** One measurement of a partition's consumer lag (the lag monitor, every lag.intervalSeconds). */
  'lag.sampled': [LagSample];
  /** A consumer group's lag level changed (the highest level of its partitions, after bulk-import suppression). */
  'lag.level_changed': [LagLevelChange];
}

export type LagLevel = 'ok' | 'info' | 'warning' | 'critical';

export interface LagSample {
  readonly group: string;
  readonly topic: string;
  readonly partition: number;
  /** Messages between the committed offset and the end of the partition. */
  readonly lag: number;
  /** Age of the oldest message not yet committed (0 when there is no lag). */
  readonly lagSeconds: number;
}

export interface LagLevelChange {
  readonly group: string;
  readonly level: LagLevel;
  readonly previous: LagLevel;
  /** The group's total lag in messages and its largest lag in time when the level changed. */
  readonly lag: number;
  readonly lagSeconds: number;
  /** A decreasing spike (bulk import): the level shown is capped below warning until `suppressedUntil`. */
  readonly suppressed: boolean;
  readonly suppressedUntil?: string;
}

export class Instrumentation extends EventEmitter<RuntimeEvents> {}
