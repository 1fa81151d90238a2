/**
 * Pure mapping for the admin port (admin.ts): the configured brokers and librdkafka-named security properties
 * (client.ts securityProperties) as @platformatic/kafka client options, and a platformatic error as what it
 * means to the caller — the cluster did not answer, it refused our credentials or certificate, or it answered
 * with an error.
 */
import type { ConnectionOptions as TlsOptions } from 'node:tls';

/** The options of a @platformatic/kafka client that Conveyor sets (a subset of its BaseOptions). */
export interface PlatformaticClientOptions {
  readonly clientId: string;
  readonly bootstrapBrokers: string[];
  readonly connectTimeout: number;
  readonly requestTimeout: number;
  readonly timeout: number;
  readonly retries: number;
  readonly retryDelay: number;
  /** Never: a metadata request must not create a topic (a just-deleted one would come back). */
  readonly autocreateTopics: false;
  readonly tls?: TlsOptions;
  readonly tlsServerName?: boolean;
  readonly sasl?: { mechanism: 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512'; username: string; password: string };
}

/** Pause between two attempts of a request the client retries by itself (a broker error it may retry, a lost connection). */
export const RETRY_DELAY_MS = 250;

/**
 * Client options for these brokers and security properties, every request bounded by `timeoutMs`: one connect
 * or request attempt never takes longer, and the client's own retries (broker errors it may retry, such as a
 * coordinator still loading on a fresh cluster) fit in that time too. Callers still race each call against
 * `timeoutMs` (admin.ts): that is the bound they rely on. `readFile` reads the PEM files ssl.*.location name.
 */
export function platformaticOptions(
  brokers: readonly string[],
  clientId: string,
  security: Readonly<Record<string, string>>,
  timeoutMs: number,
  readFile: (path: string) => Buffer,
): PlatformaticClientOptions {
  const protocol = (security['security.protocol'] ?? 'plaintext').toLowerCase();
  const options: PlatformaticClientOptions = {
    clientId,
    bootstrapBrokers: brokers.map((b) => b.trim()).filter(Boolean),
    connectTimeout: Math.min(timeoutMs, 10_000),
    requestTimeout: timeoutMs,
    timeout: timeoutMs,
    retries: Math.max(1, Math.floor(timeoutMs / (RETRY_DELAY_MS * 2))),
    retryDelay: RETRY_DELAY_MS,
    autocreateTopics: false,
  };
  let result: PlatformaticClientOptions = options;
  if (protocol === 'ssl' || protocol === 'sasl_ssl') {
    const tls: TlsOptions = {};
    if (security['ssl.ca.location']) tls.ca = readFile(security['ssl.ca.location']);
    if (security['ssl.certificate.location']) tls.cert = readFile(security['ssl.certificate.location']);
    if (security['ssl.key.location']) tls.key = readFile(security['ssl.key.location']);
    if (security['ssl.key.password']) tls.passphrase = security['ssl.key.password'];
    result = { ...result, tls, tlsServerName: true };
  }
  if (protocol === 'sasl_plaintext' || protocol === 'sasl_ssl') {
    const mechanism = (security['sasl.mechanisms'] ?? 'PLAIN').toUpperCase();
    if (mechanism !== 'PLAIN' && mechanism !== 'SCRAM-SHA-256' && mechanism !== 'SCRAM-SHA-512') {
      throw new Error(`SASL mechanism ${mechanism} is not supported by the admin client (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)`);
    }
    result = { ...result, sasl: { mechanism, username: security['sasl.username'] ?? '', password: security['sasl.password'] ?? '' } };
  }
  return result;
}

/** What a failed admin request means. */
export type AdminFailureKind =
  /** No broker answered: refused or lost connections, timeouts. */
  | 'unreachable'
  /** The broker refused the SASL login. */
  | 'authentication'
  /** The TLS handshake failed (untrusted certificate, not a TLS listener). */
  | 'tls'
  /** A broker answered, with an error (unknown topic, not authorized, ...). */
  | 'answered';

interface ErrorLike {
  readonly code?: unknown;
  readonly apiId?: unknown;
  readonly message?: unknown;
  readonly cause?: unknown;
  readonly errors?: unknown;
}

/** Node's and OpenSSL's codes for a certificate the client does not trust or a failed handshake. */
const TLS_CODES = /^(ERR_TLS_|ERR_SSL_|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|CERT_|HOSTNAME_MISMATCH)/;

/** Every error in the chain: causes and the members of aggregate errors. */
export function errorChain(error: unknown): ErrorLike[] {
  const out: ErrorLike[] = [];
  const visit = (e: unknown, depth: number): void => {
    if (typeof e !== 'object' || e === null || depth > 8 || out.includes(e as ErrorLike)) return;
    const err = e as ErrorLike;
    out.push(err);
    if (Array.isArray(err.errors)) for (const inner of err.errors) visit(inner, depth + 1);
    visit(err.cause, depth + 1);
  };
  visit(error, 0);
  return out;
}

/**
 * Classifies a @platformatic/kafka error. A login or TLS failure anywhere in the chain wins (it is why nothing
 * answered); else any broker answer (a protocol error, PLT_KFK_PROTOCOL / PLT_KFK_RESPONSE) means the cluster is up
 * and refused the request; else (network errors, timeouts, nothing recognisable) it did not answer.
 */
export function classifyAdminError(error: unknown): AdminFailureKind {
  const chain = errorChain(error);
  if (chain.some((e) => e.code === 'PLT_KFK_AUTHENTICATION' || e.apiId === 'SASL_AUTHENTICATION_FAILED' || e.apiId === 'UNSUPPORTED_SASL_MECHANISM')) return 'authentication';
  if (chain.some((e) => typeof e.code === 'string' && TLS_CODES.test(e.code)) || chain.some((e) => typeof e.message === 'string' && /TLS handshake failed/i.test(e.message))) return 'tls';
  if (chain.some((e) => e.code === 'PLT_KFK_PROTOCOL' || (e.code === 'PLT_KFK_RESPONSE' && !hasNetworkMember(e)) || unknownTopic(e))) return 'answered';
  return 'unreachable';
}

function hasNetworkMember(e: ErrorLike): boolean {
  return Array.isArray(e.errors) && e.errors.some((inner: ErrorLike) => inner?.code === 'PLT_KFK_NETWORK' || inner?.code === 'PLT_KFK_TIMEOUT');
}

/** The client's metadata request reports a topic the broker does not know as a UserError of its own. */
function unknownTopic(e: ErrorLike): boolean {
  return e.code === 'PLT_KFK_USER' && typeof e.message === 'string' && /^Unknown topic /.test(e.message);
}

/** The broker's error names in the chain (`UNKNOWN_TOPIC_OR_PARTITION`, `UNKNOWN_MEMBER_ID`, ...). */
export function brokerErrorNames(error: unknown): Set<string> {
  const chain = errorChain(error);
  const names = new Set(chain.flatMap((e) => (typeof e.apiId === 'string' ? [e.apiId] : [])));
  if (chain.some(unknownTopic)) names.add('UNKNOWN_TOPIC_OR_PARTITION');
  return names;
}

/** The refusal itself, for a login or TLS failure: the broker's reason when it gave one, else the client's words. */
export function refusalDetail(error: unknown): string {
  const chain = errorChain(error) as Array<ErrorLike & { serverErrorMessage?: unknown }>;
  const sasl = chain.find((e) => e.apiId === 'SASL_AUTHENTICATION_FAILED' || e.apiId === 'UNSUPPORTED_SASL_MECHANISM');
  if (sasl) return typeof sasl.serverErrorMessage === 'string' && sasl.serverErrorMessage ? sasl.serverErrorMessage : String(sasl.message ?? '');
  const found = chain.find((e) => e.code === 'PLT_KFK_AUTHENTICATION' || (typeof e.code === 'string' && TLS_CODES.test(e.code)) || (typeof e.message === 'string' && /TLS handshake failed/i.test(e.message)));
  return found && typeof found.message === 'string' ? found.message : describeAdminError(error);
}

/** One line for a platformatic error: its message and the distinct messages of what it aggregates. */
export function describeAdminError(error: unknown): string {
  const chain = errorChain(error);
  const messages = [...new Set(chain.map((e) => (typeof e.message === 'string' ? e.message : '')).filter(Boolean))];
  if (messages.length === 0) return String(error);
  return messages.slice(0, 4).join(': ');
}
