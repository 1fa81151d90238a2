/**
 * Talking to a runner's ops server (docs/observability.md) over real HTTP: its port from the runner's
 * 'ops server listening' log line, GET requests, and single series read from the /metrics text.
 */
import { request } from 'node:http';
import type { RunnerProcess } from './runner.ts';

/** http://127.0.0.1:<port> of the runner's ops server (the runners of the tests bind port 0: any free port). */
export function opsBaseUrl(runner: RunnerProcess): string {
  const line = runner.logs.find((l) => l.msg === 'ops server listening');
  if (!line || typeof line.port !== 'number') throw new Error(`the runner logged no 'ops server listening' line with a port (stderr: ${runner.stderr.join('').slice(-500)})`);
  return `http://127.0.0.1:${line.port}`;
}

export interface OpsResponse {
  readonly status: number;
  readonly contentType: string;
  readonly text: string;
  /** The body parsed as JSON (undefined if it is not JSON). */
  readonly json: any;
}

/**
 * One request on a connection of its own (no keep-alive agent), as Kubernetes probes do: a reused keep-alive
 * connection can race the server closing it when idle, which would fail a request for a reason that is not the
 * server's.
 */
export function opsGet(base: string, path: string, options: { method?: string } = {}): Promise<OpsResponse> {
  return new Promise((resolve, reject) => {
    const req = request(`${base}${path}`, { method: options.method ?? 'GET', agent: false, timeout: 5_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, contentType: res.headers['content-type'] ?? '', text, json });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path}: no answer within 5 s`)));
    req.on('error', reject);
    req.end();
  });
}

/** The value of one series in Prometheus text, e.g. `conveyor_messages_total{handler="a",topic="t",result="ok"}`; undefined if absent. */
export function metricValue(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}
