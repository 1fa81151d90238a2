/**
 * The driver's native connect (its Client.connect, under every producer and consumer) ends with a metadata request
 * of 30 s that runs on a libuv thread-pool thread and cannot be cancelled, and Node joins those threads when the
 * process exits. So a runner that knew after one second that its password is wrong, or was told to stop while
 * the brokers were unreachable, still lived until those 30 s were up. Here that request is asked in slices: 1 s
 * while no broker is usable yet (librdkafka answers "transport failure" then), doubling up to 8 s once a broker
 * answers slowly ("timed out"), 30 s in all as before; between slices the connect gives up as soon as its scope
 * says it is futile (the login was refused, the client is being disconnected). The thread is free within a slice.
 */
import kafkaJavascript from '@confluentinc/kafka-javascript';

/** The whole connect's metadata wait: the driver's own default. */
export const CONNECT_METADATA_TIMEOUT_MS = 30_000;
const FIRST_SLICE_MS = 1000;
const MAX_SLICE_MS = 8000;
/** librdkafka's ERR__TRANSPORT (no usable broker within the slice) and ERR__TIMED_OUT (a broker did not answer in it). */
const RETRIED_CODES: ReadonlySet<unknown> = new Set([-195, -185]);

/** Why a connect in progress should stop asking, or undefined while it should go on. */
export interface ConnectScope {
  readonly abandoned: () => boolean;
}

type Callback = (err: unknown, data?: unknown) => void;
interface NativeClient {
  connect(options: unknown, cb?: Callback): unknown;
  getMetadata(options: Record<string, unknown> | null, cb: Callback): void;
}

let current: ConnectScope | undefined;

/**
 * Runs `connect`, a KafkaJS-shaped client's connect(): it creates and connects its native client before its first
 * await, so the native connect started now belongs to `scope`.
 */
export function withConnectScope<T>(scope: ConnectScope, connect: () => T): T {
  const previous = current;
  current = scope;
  try {
    return connect();
  } finally {
    current = previous;
  }
}

const client = Object.getPrototypeOf(kafkaJavascript.KafkaConsumer.prototype) as NativeClient;
const nativeConnect = client.connect;
const nativeGetMetadata = client.getMetadata;

client.connect = function connectInSlices(this: NativeClient, options: unknown, cb?: Callback): unknown {
  // a caller that chose its own metadata request keeps it
  if (options !== null && options !== undefined) return nativeConnect.call(this, options, cb);
  const scope = current;
  const deadline = Date.now() + CONNECT_METADATA_TIMEOUT_MS;
  const self = this;
  // the connect's own metadata request (its next getMetadata call) goes in slices; the instance property is gone after
  const restore = (): void => {
    if (Object.hasOwn(self, 'getMetadata')) delete (self as Partial<NativeClient>).getMetadata;
  };
  self.getMetadata = (metadataOptions, done) => {
    restore();
    let slice = FIRST_SLICE_MS;
    const ask = (): void => {
      const remaining = deadline - Date.now();
      nativeGetMetadata.call(self, { ...metadataOptions, timeout: Math.max(1, Math.min(slice, remaining)) }, (err, metadata) => {
        const code = (err as { code?: unknown } | null)?.code;
        if (err && RETRIED_CODES.has(code) && deadline - Date.now() > 0 && !scope?.abandoned()) {
          if (code === -185) slice = Math.min(slice * 2, MAX_SLICE_MS);
          ask();
          return;
        }
        done(err, metadata);
      });
    };
    ask();
  };
  return nativeConnect.call(this, options, (err, data) => {
    restore();
    cb?.(err, data);
  });
};
