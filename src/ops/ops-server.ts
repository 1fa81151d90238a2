/**
 * The ops HTTP server (node:http): `/metrics` (Prometheus), `/health/live`, `/health/ready`, `/health/event-bus`.
 * GET and HEAD only; anything else is 404 (unknown path) or 405 (known path, other method). A failing endpoint
 * answers 500 and is logged; nothing a request does can throw into the process. docs/observability.md.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ConveyorError } from '../failure/errors.ts';
import type { EventBusHealth, Readiness } from './health.ts';
import type { Logger } from './logger.ts';

export interface OpsEndpoints {
  /** Prometheus exposition text and its content type. */
  metrics(): Promise<{ readonly contentType: string; readonly body: string }>;
  readiness(): Readiness;
  eventBus(): EventBusHealth;
}

export interface OpsServerOptions {
  readonly host: string;
  /** 0: any free port (the one bound is logged and returned by start()). */
  readonly port: number;
  readonly endpoints: OpsEndpoints;
  readonly logger: Logger;
}

export const OPS_PATHS = ['/metrics', '/health/live', '/health/ready', '/health/event-bus'] as const;

const JSON_TYPE = 'application/json; charset=utf-8';

function send(res: ServerResponse, head: boolean, status: number, contentType: string, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store', ...headers });
  res.end(head ? undefined : body);
}

function sendJson(res: ServerResponse, head: boolean, status: number, value: unknown, headers?: Record<string, string>): void {
  send(res, head, status, JSON_TYPE, `${JSON.stringify(value)}\n`, headers);
}

export class OpsServer {
  private readonly options: OpsServerOptions;
  private readonly log: Logger;
  private server: Server | undefined;
  private stopped = false;

  constructor(options: OpsServerOptions) {
    this.options = options;
    this.log = options.logger.child({ component: 'ops-server' });
  }

  /** Listens; resolves with the address bound. Fails with `conveyor.ops.listen` (e.g. the port is taken). */
  async start(): Promise<{ host: string; port: number }> {
    const { host, port } = this.options;
    const server = createServer((req, res) => {
      this.handle(req, res).catch(() => res.destroy());
    });
    server.on('clientError', (_err, socket) => socket.destroy());
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        reject(
          new ConveyorError(
            'conveyor.ops.listen',
            `the ops server cannot listen on ${host}:${port} (${err.code ?? err.message}): set CONVEYOR_OPS_PORT to a free port (0 picks one), ` +
              'CONVEYOR_OPS_HOST to an address of this host, or CONVEYOR_OPS_ENABLED=false to run without it',
            { cause: err },
          ),
        );
      };
      server.once('error', onError);
      server.listen(port, host, () => {
        server.off('error', onError);
        resolve();
      });
    });
    server.on('error', (err) => this.log.error({ err }, 'ops server error'));
    const bound = (server.address() as AddressInfo).port;
    this.server = server;
    if (this.stopped) {
      // stop() came while it was starting: do not leave it listening
      await this.stop();
      return { host, port: bound };
    }
    this.log.info({ host, port: bound, paths: OPS_PATHS }, 'ops server listening');
    return { host, port: bound };
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const head = req.method === 'HEAD';
    const path = (req.url ?? '/').split('?', 1)[0]!;
    try {
      if (!(OPS_PATHS as readonly string[]).includes(path)) {
        sendJson(res, head, 404, { error: `no such path: ${path}`, paths: OPS_PATHS });
        return;
      }
      if (req.method !== 'GET' && !head) {
        sendJson(res, false, 405, { error: `method ${req.method} not allowed` }, { allow: 'GET, HEAD' });
        return;
      }
      const { endpoints } = this.options;
      switch (path) {
        case '/metrics': {
          const { contentType, body } = await endpoints.metrics();
          send(res, head, 200, contentType, body);
          return;
        }
        case '/health/live':
          // the event loop answered: the process is alive (broker outages are readiness, not liveness)
          sendJson(res, head, 200, { status: 'alive' });
          return;
        case '/health/ready': {
          const { ready, reasons } = endpoints.readiness();
          sendJson(res, head, ready ? 200 : 503, ready ? { status: 'ready' } : { status: 'not_ready', reasons });
          return;
        }
        case '/health/event-bus': {
          const health = endpoints.eventBus();
          sendJson(res, head, health.healthy ? 200 : 503, health);
          return;
        }
      }
    } catch (err) {
      this.log.error({ err, path }, 'ops endpoint failed');
      if (res.headersSent) res.destroy();
      else sendJson(res, head, 500, { error: `${path} failed: ${(err as Error)?.message ?? String(err)}` });
    }
  }

  /** Stops listening and closes open connections (keep-alive ones too). Idempotent. */
  async stop(): Promise<void> {
    this.stopped = true;
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
    this.log.info('ops server stopped');
  }
}
