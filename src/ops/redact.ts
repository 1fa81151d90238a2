/**
 * Secrets never reach a log line or an error message. URLs lose their password before they are shown; free text
 * (an error message from a driver, say) loses any `user:password@` and `password=…` in it; and the logger
 * (logger.ts) censors the fields that hold secrets (LOG_SECRET_PATHS) whatever the calling code passed.
 */

const CENSORED = '***';

/**
 * `user:password@` without a scheme before it (`u:p@h:5672`, `guest:secret@`, `amqp:/u:p@h`): a user after a
 * boundary, a colon, and a password up to the last `@` before whitespace or a slash (a password may hold `@`
 * and `:`), whether a host follows or not. Bounded lengths keep a long text without `@` linear to scan.
 */
const USERINFO = /(^|[\s"'(<=,[/])([^\s:/@"'<>()[\]]{1,256}):([^\s/"'<>]{0,1024})@/g;
/**
 * `scheme://…` up to whitespace, a quote or the next `scheme://`: one URL of a text that may hold several. The
 * scheme may hold `_` (Kafka listeners: `SASL_SSL://`).
 */
const SCHEMED = /([a-z][a-z0-9+._-]*:\/\/)((?:(?![a-z][a-z0-9+._-]*:\/\/)[^\s"'<>`])*)/gi;
/**
 * `password=…`, `sasl.password=…`, `?token=…`, `"password":"…"`: the value up to a separator. Prose such as
 * "wrong password: check it" is left alone (no `=`, no quotes).
 */
const SECRET_PAIR = /((?:pass(?:word|wd)?|pwd|secret|token|api[-_]?key)(?:\s*=\s*|["']\s*:\s*["']?))([^\s"',;&)}\]]+)/gi;
/** Cheap pre-check: text without any of these cannot hold what the patterns above look for. */
const MAY_HOLD_SECRET = /@|pass|pwd|secret|token|api.?key/i;

/**
 * The part of a URL after `scheme://` with the password of its userinfo censored. The userinfo ends at the last
 * `@` before the first `/`, `?` or `#` that follows an `@`, so a password may hold `@`, `:` and even `/`
 * (`u:pa/ss@host`, which no parser accepts but a user may type). Not userinfo: a user part holding `/`, `?` or
 * `#` (`host/path:x@y`), or a host and port before a path (`host:8443/users/bob@example.com`). A lone user is
 * kept in AMQP URLs and censored in any other (`https://***@github.com`: such a user is usually a token).
 */
function censorAuthority(scheme: string, rest: string): string {
  const firstAt = rest.indexOf('@');
  if (firstAt < 0) return rest;
  const after = rest.slice(firstAt).search(/[/?#]/);
  const at = rest.lastIndexOf('@', after < 0 ? rest.length : firstAt + after);
  const userinfo = rest.slice(0, at);
  const colon = userinfo.indexOf(':');
  if (colon < 0) {
    // a user alone: an AMQP user name is kept; elsewhere (`https://ghp_…@github.com`) a lone user is a token
    if (keepsLoneUser(scheme) || /[/?#]/.test(userinfo)) return rest;
    return `${CENSORED}${rest.slice(at)}`;
  }
  if (/[/?#]/.test(userinfo.slice(0, colon))) return rest; // not userinfo: `host/path:x@y`
  if (/^\d*[/?#]/.test(userinfo.slice(colon + 1))) return rest; // host:port/path…@
  return `${userinfo.slice(0, colon)}:${CENSORED}${rest.slice(at)}`;
}

/** Schemes whose URLs name a user on its own, without a secret: AMQP (`amqp://app@mq`). */
const keepsLoneUser = (scheme: string): boolean => /^amqps?:/i.test(scheme);

/** Every `user:password@` in `text`, with a scheme before it or not, with `password` censored. */
function censorUserinfo(text: string): string {
  if (!text.includes('@')) return text;
  const schemed = text.replace(SCHEMED, (_match, scheme: string, rest: string) => scheme + censorAuthority(scheme, rest));
  return schemed.replace(USERINFO, `$1$2:${CENSORED}@`);
}

/**
 * `amqp://user:secret@host/vhost` → `amqp://user:***@host/vhost`. Any text, URL or not, well-formed or not, loses
 * the password of every `user:password@` in it: no host (`amqp://u:p@`), no scheme (`u:p@host`), `@` or `:` in the
 * password, several URLs in one string. A user alone (`amqp://user@host`) is kept.
 */
export function redactUrl(text: string): string {
  let shown = text;
  // one well-formed URL (a password with a space parses, percent-encoded); a text holding several goes by pattern only
  if (text.indexOf('://') === text.lastIndexOf('://')) {
    try {
      const url = new URL(text);
      if (url.password) {
        url.password = CENSORED;
        shown = url.toString();
      }
    } catch {
      // not a URL: the credentials patterns below still apply
    }
  }
  // `guest:secret@host:5672` parses as a URL of scheme "guest:"; a URL may hold another in its path
  return censorUserinfo(shown);
}

/** Free text with every `user:password@` and `password=…` censored; text without either comes back as it is. */
export function redactSecrets(text: string): string {
  if (!MAY_HOLD_SECRET.test(text)) return text;
  return censorUserinfo(text).replace(SECRET_PAIR, `$1${CENSORED}`);
}

/**
 * A secret URL that may carry a token in its path, query or fragment (webhooks): scheme, host and port only (a
 * URL without any keeps its user, and loses its password, or a lone user outside AMQP: redactUrl). Text that does
 * not parse as a URL with a host is not shown at all.
 */
export function redactTokenUrl(text: string): string {
  try {
    const url = new URL(text);
    if (url.host === '') return CENSORED;
    if ((url.pathname === '/' || url.pathname === '') && url.search === '' && url.hash === '') return redactUrl(text);
    return `${url.protocol}//${url.host}/${CENSORED}`;
  } catch {
    return CENSORED;
  }
}

/** Text that starts with a URL scheme (`amqp://`, `https://`, ...). */
export function isUrlText(text: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(text);
}

/**
 * A URL that is itself a secret setting: an AMQP URL keeps its host and vhost and loses only its password; any
 * other (webhooks carry their token in the path or query) keeps only scheme, host and port. The whole value is
 * one secret: an AMQP URL that does not parse with a host (`amqp://u:p@`, `amqp://u:pa ss@h`, two URLs in one)
 * loses everything between its `://` and its last `@` but the user.
 */
export function redactSecretUrl(text: string): string {
  if (!/^amqps?:/i.test(text)) return redactTokenUrl(text);
  if (parsesWithHost(text) && text.indexOf('://') === text.lastIndexOf('://')) return redactUrl(text);
  const at = text.lastIndexOf('@');
  if (at < 0) return redactUrl(text);
  const start = text.includes('://') ? text.indexOf('://') + 3 : text.indexOf(':') + 1;
  const colon = text.indexOf(':', start);
  if (colon < 0 || colon > at) return redactUrl(text); // a user alone
  return `${text.slice(0, colon)}:${CENSORED}${text.slice(at)}`;
}

function parsesWithHost(text: string): boolean {
  try {
    return new URL(text).hostname !== '';
  } catch {
    return false;
  }
}

/** Field names whose values are secrets, wherever they appear in a log line's object. */
const SECRET_KEYS = ['password', 'passwd', 'saslPassword', 'sslKeyPassword', 'secret', 'token', 'authorization', 'Authorization', 'cookie', 'sasl.password', 'ssl.key.password'];
/** Fields that hold an address which may carry credentials; `rabbitmq` is Conveyor's field for the RabbitMQ it uses. */
const URL_KEYS = ['url', 'uri', 'amqpUrl', 'webhookUrl', 'rabbitmq'];
const SECRET_KEY_SET: ReadonlySet<string> = new Set(SECRET_KEYS);
const URL_KEY_SET: ReadonlySet<string> = new Set(URL_KEYS);

/** `sasl.password` → `["sasl.password"]`: pino's syntax for a key with a dot in it. */
const pathKey = (key: string): string => (key.includes('.') ? `["${key}"]` : key);

/**
 * Log fields that hold secrets, in pino's redact syntax: top-level fields (child bindings included), the
 * configuration's own paths, and the usual nested ones. No wildcards: pino's wildcard redaction costs about
 * 10 µs a line; redactLogFields covers any field one level down for less than a tenth of that.
 */
export const LOG_SECRET_PATHS: readonly string[] = [
  ...[...SECRET_KEYS, ...URL_KEYS].map(pathKey),
  'sasl.password', 'headers.authorization', 'headers.Authorization', 'headers.cookie',
  ...['saslPassword', 'sslKeyPassword', 'sasl.password', 'ssl.key.password'].map((key) => `kafka.${pathKey(key)}`),
  'rabbitmq.url', 'lag.webhookUrl',
  // a whole configuration object logged by mistake
  ...['kafka.saslPassword', 'kafka.sslKeyPassword', 'rabbitmq.url', 'lag.webhookUrl'].map((path) => `config.${path}`),
];

/**
 * A log line's own fields (pino's `formatters.log`), made safe beyond the named paths: top-level text loses any
 * `user:password@` or `password=…` (redactSecrets), and in objects one level down (`{ options: { password } }`)
 * secret fields are censored and text is redacted likewise. Returns the same object when nothing changed; lines
 * of plain fields (topic, partition, offset: the hot path at debug level) cost one loop over their keys.
 */
export function redactLogFields(object: Record<string, unknown>): Record<string, unknown> {
  let out: Record<string, unknown> | undefined;
  for (const key in object) {
    const value = object[key];
    let shown: unknown = value;
    if (typeof value === 'string') shown = redactSecrets(value);
    else if (isPlainObject(value)) shown = redactNestedFields(value);
    if (shown !== value) (out ??= { ...object })[key] = shown;
  }
  return out ?? object;
}

function redactNestedFields(object: Record<string, unknown>): Record<string, unknown> {
  let out: Record<string, unknown> | undefined;
  for (const key in object) {
    const value = object[key];
    let shown: unknown = value;
    if (SECRET_KEY_SET.has(key) || URL_KEY_SET.has(key)) shown = censorLogField(value, [key]);
    else if (typeof value === 'string') shown = redactSecrets(value);
    if (shown !== value) (out ??= { ...object })[key] = shown;
  }
  return out ?? object;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/**
 * pino's censor: URL fields keep what helps debugging (scheme, user, host) and, when they hold something else
 * (`rabbitmq` may be a configuration section), what they hold; every other secret field becomes `***`.
 */
export function censorLogField(value: unknown, path: readonly string[]): unknown {
  if (value === undefined || value === null || value === '') return value;
  const key = path.at(-1) ?? '';
  if (!URL_KEY_SET.has(key)) return CENSORED;
  const text = value instanceof URL ? value.href : value;
  if (typeof text !== 'string') return value;
  return key === 'webhookUrl' ? redactTokenUrl(text) : redactUrl(text);
}

/**
 * An error (or error-like object) as pino's serializer gave it, with every string in it passed through
 * redactSecrets: driver messages and stacks may quote a URL with its credentials. Nested objects (`cause`,
 * `context`) are walked a few levels deep; errors are logged rarely, so the walk is affordable.
 */
export function redactErrorFields<T>(value: T, depth = 4): T {
  if (typeof value === 'string') return redactSecrets(value) as T;
  if (typeof value !== 'object' || value === null || depth === 0) return value;
  if (Array.isArray(value)) return value.map((item: unknown) => redactErrorFields(item, depth - 1)) as T;
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(value)) out[key] = redactErrorFields(field, depth - 1);
  return out as T;
}
