/**
 * Reads a topic's `max.message.bytes` (what the broker accepts per record batch), for sizing dead letters.
 * The Confluent client has no describeConfigs; this one request goes through the pure-JS client (@platformatic/kafka,
 * see ../shared/DESIGN.md "The second Kafka client"), one short-lived connection per read, bounded by `timeoutMs`.
 * Any failure (topic missing, no permission, broker unreachable) is `undefined`: the caller falls back to a default.
 */
import { readFileSync } from 'node:fs';
import { Admin, ConfigResourceTypes } from '@platformatic/kafka';
import type { ConveyorConfig } from '../config/schema.ts';

type AdminOptions = ConstructorParameters<typeof Admin>[0];

/** The configured TLS/SASL settings as the pure-JS client takes them. */
function security(config: ConveyorConfig): Partial<AdminOptions> {
  const k = config.kafka;
  const options: Record<string, unknown> = {};
  if (k.securityProtocol === 'sasl_plaintext' || k.securityProtocol === 'sasl_ssl') {
    options.sasl = { mechanism: k.saslMechanism, username: k.saslUsername, password: k.saslPassword };
  }
  if (k.securityProtocol === 'ssl' || k.securityProtocol === 'sasl_ssl') {
    options.tls = {
      ...(k.sslCaLocation ? { ca: readFileSync(k.sslCaLocation) } : {}),
      ...(k.sslCertificateLocation ? { cert: readFileSync(k.sslCertificateLocation) } : {}),
      ...(k.sslKeyLocation ? { key: readFileSync(k.sslKeyLocation) } : {}),
      ...(k.sslKeyPassword ? { passphrase: k.sslKeyPassword } : {}),
    };
  }
  return options as Partial<AdminOptions>;
}

/** `topic`'s max.message.bytes, or undefined when it cannot be read within `timeoutMs`. */
export async function readMaxMessageBytes(config: ConveyorConfig, topic: string, timeoutMs: number): Promise<number | undefined> {
  let admin: Admin | undefined;
  try {
    admin = new Admin({
      clientId: `${config.app.name}-dead-letter-limits`,
      bootstrapBrokers: config.kafka.bootstrapServers.split(',').map((s) => s.trim()),
      timeout: timeoutMs,
      connectTimeout: timeoutMs,
      requestTimeout: timeoutMs,
      retries: 0,
      ...security(config),
    } as AdminOptions);
    const [description] = await admin.describeConfigs({
      resources: [{ resourceType: ConfigResourceTypes.TOPIC, resourceName: topic, configurationKeys: ['max.message.bytes'] }],
    });
    const value = description?.configs.find((c) => c.name === 'max.message.bytes')?.value;
    const bytes = value === null || value === undefined ? NaN : Number(value);
    return Number.isSafeInteger(bytes) && bytes > 0 ? bytes : undefined;
  } catch {
    return undefined;
  } finally {
    await admin?.close().catch(() => {});
  }
}
