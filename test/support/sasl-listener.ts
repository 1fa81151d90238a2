/**
 * The local test broker's SASL listener (scripts/brokers.sh): SASL_PLAINTEXT on port 9094 with PLAIN,
 * SCRAM-SHA-256 and SCRAM-SHA-512, one user. A throwaway secret of a loopback-only broker, not a credential.
 */
export const SASL_USER = 'conveyor';
export const SASL_PASSWORD = 'conveyor-local-sasl-3f9d1c7a';
export const SASL_MECHANISMS = ['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512'] as const;

const LOCAL_HOSTS = new Set(['127.0.0.1', 'localhost']);

/**
 * Where the tests find the SASL listener: KAFKA_SASL_BROKERS when set; else 127.0.0.1:9094 when the Kafka under
 * test is the local one of `npm run brokers` (127.0.0.1:9092); else nowhere (''), and the tests that need it say so.
 */
export function saslBrokersFor(env: Readonly<Record<string, string | undefined>>, kafkaBrokers: string): string {
  const given = env.KAFKA_SASL_BROKERS?.trim();
  if (given) return given;
  const local = kafkaBrokers.split(',').every((entry) => {
    const [host, port] = entry.trim().split(':');
    return LOCAL_HOSTS.has(host ?? '') && port === '9092';
  });
  return local ? '127.0.0.1:9094' : '';
}
