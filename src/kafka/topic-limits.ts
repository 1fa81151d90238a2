/**
 * Reads a topic's `max.message.bytes` (what the broker accepts per record batch), for sizing dead letters, through
 * the admin port (admin.ts: the Confluent client has no describeConfigs), one short-lived client per read, bounded
 * by `timeoutMs`. Any failure (topic missing, no permission, broker unreachable) is `undefined`: the caller falls
 * back to a default.
 */
import type { ConveyorConfig } from '../config/schema.ts';
import { KafkaAdmin, kafkaAdminOptions } from './admin.ts';

/** `topic`'s max.message.bytes, or undefined when it cannot be read within `timeoutMs`. */
export async function readMaxMessageBytes(config: ConveyorConfig, topic: string, timeoutMs: number): Promise<number | undefined> {
  const admin = new KafkaAdmin(kafkaAdminOptions(config, `${config.app.name}-dead-letter-limits`, timeoutMs));
  try {
    return await admin.maxMessageBytes(topic);
  } catch {
    return undefined;
  } finally {
    await admin.close().catch(() => {});
  }
}
