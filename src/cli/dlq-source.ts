/**
 * One dead-letter topic (Kafka) or queue (RabbitMQ) as the `conveyor dlq` commands use it. A source is a session:
 * RabbitMQ letters read by `scan` or `find` stay taken (unacknowledged, invisible to others) until `close`
 * hands back those not replayed or resolved.
 */
import type { Broker, StoredLetter } from './dlq-letters.ts';

export interface ReplayOutcome {
  readonly letter: StoredLetter;
  /** Undefined when the letter was republished and marked resolved. */
  readonly error?: Error;
}

export interface DeadLetterSource {
  readonly broker: Broker;
  /** The dead-letter topic or queue. */
  readonly name: string;
  /** Every letter, oldest first; Kafka letters carry their resolution. `onProgress(done, total)` while reading. */
  scan(onProgress?: (done: number, total: number) => void): Promise<StoredLetter[]>;
  /** The letter with this id, resolved or not; undefined when there is none. */
  find(id: string): Promise<StoredLetter | undefined>;
  /**
   * Republishes each letter's original message where it came from, in order, and settles each letter (Kafka: a
   * resolution record; RabbitMQ: acknowledged off the queue) only after the broker confirmed its republish.
   */
  replay(letters: readonly StoredLetter[], onOutcome: (outcome: ReplayOutcome) => void): Promise<void>;
  /** Settles a letter without replaying it. */
  resolve(letter: StoredLetter): Promise<void>;
  close(): Promise<void>;
}
