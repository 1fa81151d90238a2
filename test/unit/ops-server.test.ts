import { afterEach, describe, expect, it } from 'vitest';
import type { EventBusHealth, Readiness } from '../../src/ops/health.ts';
import { createLogger } from '../../src/ops/logger.ts';
import { OpsServer, type OpsEndpoints } from '../../src/ops/ops-server.ts';
import { opsGet } from '../support/ops-http.ts';

const logger = createLogger('ops-server-test', 'silent');

const healthy = { healthy: true } as EventBusHealth;

describe('ops server (HTTP routing, no brokers)', () => {
  const servers: OpsServer[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.stop()));
  });

  async function serve(endpoints: Partial<OpsEndpoints> = {}): Promise<string> {
    const server = new OpsServer({
      host: '127.0.0.1',
      port: 0,
      logger,
      endpoints: {
        metrics: async () => ({ contentType: 'text/plain; version=0.0.4; charset=utf-8', body: 'up 1\n' }),
        readiness: (): Readiness => ({ ready: true, reasons: [] }),
        eventBus: () => healthy,
        ...endpoints,
      },
    });
    servers.push(server);
    const { port } = await server.start();
    return `http://127.0.0.1:${port}`;
  }

  it('answers 503 with the reasons when not ready, 200 when ready', async () => {
    let state: Readiness = { ready: false, reasons: ['starting: not every consumer is connected yet'] };
    const base = await serve({ readiness: () => state });
    const before = await opsGet(base, '/health/ready');
    expect(before.status).toBe(503);
    expect(before.json).toEqual({ status: 'not_ready', reasons: ['starting: not every consumer is connected yet'] });
    state = { ready: true, reasons: [] };
    const after = await opsGet(base, '/health/ready');
    expect(after.status).toBe(200);
    expect(after.json).toEqual({ status: 'ready' });
    expect(after.contentType).toBe('application/json; charset=utf-8');
  });

  it('answers the event-bus health with 200 when healthy and 503 when not', async () => {
    let health = healthy;
    const base = await serve({ eventBus: () => health });
    expect((await opsGet(base, '/health/event-bus')).status).toBe(200);
    health = { healthy: false } as EventBusHealth;
    const sick = await opsGet(base, '/health/event-bus');
    expect(sick.status).toBe(503);
    expect(sick.json).toEqual({ healthy: false });
  });

  it('serves /metrics with the registry content type, HEAD without a body, 404 and 405 for the rest', async () => {
    const base = await serve();
    const metrics = await opsGet(base, '/metrics');
    expect(metrics).toMatchObject({ status: 200, text: 'up 1\n', contentType: 'text/plain; version=0.0.4; charset=utf-8' });
    const head = await opsGet(base, '/metrics', { method: 'HEAD' });
    expect(head).toMatchObject({ status: 200, text: '' });
    const missing = await opsGet(base, '/health');
    expect(missing.status).toBe(404);
    expect(missing.json.paths).toEqual(['/metrics', '/health/live', '/health/ready', '/health/event-bus']);
    expect((await opsGet(base, '/health/live', { method: 'DELETE' })).status).toBe(405);
  });

  it('answers 500 when an endpoint fails, and keeps serving', async () => {
    const base = await serve({
      readiness: () => {
        throw new Error('snapshot failed');
      },
      metrics: () => Promise.reject(new Error('collect failed')),
    });
    const ready = await opsGet(base, '/health/ready');
    expect(ready.status).toBe(500);
    expect(ready.json.error).toMatch(/snapshot failed/);
    expect((await opsGet(base, '/metrics')).status).toBe(500);
    expect((await opsGet(base, '/health/live')).status).toBe(200);
  });

  it('fails to start with conveyor.ops.listen and advice when the port is taken', async () => {
    const base = await serve();
    const port = Number(new URL(base).port);
    const second = new OpsServer({ host: '127.0.0.1', port, logger, endpoints: { metrics: async () => ({ contentType: '', body: '' }), readiness: () => ({ ready: true, reasons: [] }), eventBus: () => healthy } });
    const failed = second.start();
    await expect(failed).rejects.toMatchObject({ code: 'conveyor.ops.listen' });
    await expect(failed).rejects.toThrow(/EADDRINUSE.*CONVEYOR_OPS_PORT/);
  });

  it('closes kept-alive connections on stop', async () => {
    const base = await serve();
    // fetch keeps its connection open for the next request
    expect((await fetch(`${base}/health/live`)).status).toBe(200);
    const started = Date.now();
    await servers.pop()!.stop();
    expect(Date.now() - started).toBeLessThan(1000);
    await expect(opsGet(base, '/health/live')).rejects.toThrow();
  });
});
