/**
 * Consumer lag on a real broker: a backlog with known timestamps behind a group's committed offsets. The lag monitor
 * reports it per partition (messages and age), raises the level, POSTs the change to a webhook, and never joins
 * or commits for the group; `conveyor lag` prints the same numbers.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Command } from 'commander';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { registerLag } from '../../src/cli/lag.ts';
import type { CliContext } from '../../src/cli/context.ts';
import { loadConfig } from '../../src/config/load.ts';
import type { Kafka } from '../../src/kafka/client.ts';
import { Instrumentation, type LagLevelChange, type LagSample } from '../../src/lanes/instrumentation.ts';
import { LagMonitor } from '../../src/ops/lag-monitor.ts';
import { createLogger } from '../../src/ops/logger.ts';
import { useKafkaFixture } from '../support/fixture.ts';
import { getFreePort } from '../support/free-port.ts';
import { committedOffsets, waitFor } from '../support/kafka.ts';

const MINUTE = 60_000;

/** Produces one message per entry, on its partition, with its timestamp. */
async function produceAt(kafka: Kafka, topic: string, messages: ReadonlyArray<{ partition: number; timestamp: number }>): Promise<void> {
  const producer = kafka.producer({ 'enable.idempotence': true, acks: -1 } as never);
  await producer.connect();
  try {
    await producer.send({ topic, messages: messages.map((m, i) => ({ value: `m${i}`, partition: m.partition, timestamp: String(m.timestamp) })) });
  } finally {
    await producer.disconnect();
  }
}

/** Commits offsets for a group that has no members, without joining it. */
async function commit(kafka: Kafka, group: string, topic: string, offsets: Record<number, number>): Promise<void> {
  const consumer = kafka.consumer({ kafkaJS: { groupId: group, autoCommit: false } });
  await consumer.connect();
  try {
    await consumer.commitOffsets(Object.entries(offsets).map(([partition, offset]) => ({ topic, partition: Number(partition), offset: String(offset) })));
  } finally {
    await consumer.disconnect();
  }
}

interface Hook {
  readonly server: Server;
  readonly url: string;
  readonly received: Array<{ method: string; path: string; contentType: string; body: Record<string, unknown> }>;
}

async function startWebhook(): Promise<Hook> {
  const received: Hook['received'] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
    req.on('end', () => {
      received.push({ method: req.method ?? '', path: req.url ?? '', contentType: req.headers['content-type'] ?? '', body: JSON.parse(body) as Record<string, unknown> });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address();
  if (typeof address !== 'object' || address === null) throw new Error('no address');
  return { server, received, url: `http://127.0.0.1:${address.port}/hooks/secret-token-123` };
}

/** A monitor on the test broker with these settings; its events and JSON log lines collected. */
function monitorFor(groups: Array<{ group: string; topics: string[] }>, env: Record<string, string>) {
  const config = loadConfig({ env: { KAFKA_BOOTSTRAP_SERVERS: inject('kafkaBrokers'), CONVEYOR_LAG_INTERVAL_SECONDS: '1', ...env } });
  const events = new Instrumentation();
  const samples: Array<LagSample & { receivedAt: number }> = [];
  const changes: LagLevelChange[] = [];
  events.on('lag.sampled', (s) => samples.push({ ...s, receivedAt: Date.now() }));
  events.on('lag.level_changed', (c) => changes.push(c));
  const logText: string[] = [];
  const logger = createLogger('conveyor-test', 'info', { write: (line: string) => void logText.push(line) });
  const monitor = new LagMonitor({ config, groups, events, logger });
  const logs = (): Array<Record<string, unknown>> => logText.map((l) => JSON.parse(l) as Record<string, unknown>);
  return { monitor, samples, changes, logText, logs };
}

/** The last sample of each partition of `group`. */
function lastSamples(samples: ReadonlyArray<LagSample & { receivedAt: number }>, group: string): Map<number, LagSample & { receivedAt: number }> {
  return new Map(samples.filter((s) => s.group === group).map((s) => [s.partition, s]));
}

describe('consumer lag', () => {
  const fx = useKafkaFixture();
  let stopMonitor: (() => Promise<void>) | undefined;
  let hook: Hook | undefined;

  beforeEach(() => {
    process.exitCode = undefined;
  });
  afterEach(async () => {
    await stopMonitor?.();
    stopMonitor = undefined;
    hook?.server.close();
    hook = undefined;
    process.exitCode = undefined;
  });

  it('reports the backlog per partition and its age, raises warning for 10-minute-old messages, POSTs each change, commits nothing', async () => {
    const { topic, group } = await fx.topic('lag-monitor', 3);
    const old = Date.now() - 10 * MINUTE;
    const fresh = Date.now() - 30_000;
    await produceAt(fx.kafka, topic, [
      ...Array.from({ length: 10 }, (_, i) => ({ partition: 0, timestamp: old + i * 1000 })),
      ...Array.from({ length: 4 }, () => ({ partition: 1, timestamp: fresh })),
    ]);
    await commit(fx.kafka, group, topic, { 0: 4, 1: 1 });
    hook = await startWebhook();

    const m = monitorFor([{ group, topics: [topic] }], { CONVEYOR_LAG_WEBHOOK_URL: hook.url });
    stopMonitor = () => m.monitor.stop();
    m.monitor.start();
    await waitFor('a lag level change', () => m.changes.length >= 1 && hook!.received.length >= 1, 30_000);

    const byPartition = lastSamples(m.samples, group);
    expect([...byPartition.keys()].sort()).toEqual([0, 1, 2]);
    // partition 0: offsets 4..9 uncommitted, the oldest of them (offset 4) produced at old + 4 s
    const p0 = byPartition.get(0)!;
    expect(p0.lag).toBe(6);
    expect(p0.lagSeconds).toBeCloseTo((p0.receivedAt - (old + 4000)) / 1000, 0);
    const p1 = byPartition.get(1)!;
    expect(p1.lag).toBe(3);
    expect(p1.lagSeconds).toBeCloseTo((p1.receivedAt - fresh) / 1000, 0);
    expect(byPartition.get(2)).toMatchObject({ lag: 0, lagSeconds: 0 });

    const [change] = m.changes;
    expect(change).toMatchObject({ group, level: 'warning', previous: 'ok', lag: 9, suppressed: false });
    expect(change!.lagSeconds).toBeGreaterThan(595);
    expect(change!.lagSeconds).toBeLessThan(620);

    const [post] = hook.received;
    expect(post).toMatchObject({ method: 'POST', path: '/hooks/secret-token-123', contentType: 'application/json' });
    expect(post!.body).toMatchObject({ event: 'lag.level_changed', app: 'conveyor', group, level: 'warning', previous: 'ok', lag: 9, suppressed: false, topics: [topic] });
    expect(Date.parse(post!.body.at as string)).toBeGreaterThan(Date.now() - MINUTE);

    const logged = m.logs().find((l) => l.msg === 'consumer lag level changed');
    expect(logged).toMatchObject({ level: 40, group, lagLevel: 'warning', previous: 'ok', lag: 9, suppressed: false });
    expect(m.logText.join('\n')).not.toContain('secret-token-123');

    // the group catches up: back to ok, reported and POSTed once more
    await commit(fx.kafka, group, topic, { 0: 10, 1: 4 });
    await waitFor('the level back to ok', () => m.changes.length >= 2 && hook!.received.length >= 2, 30_000);
    expect(m.changes[1]).toMatchObject({ group, level: 'ok', previous: 'warning', lag: 0, lagSeconds: 0 });
    expect(hook.received[1]!.body).toMatchObject({ level: 'ok', previous: 'warning' });
    expect(m.logs().filter((l) => l.msg === 'consumer lag level changed').map((l) => l.level)).toEqual([40, 30]);

    await m.monitor.stop();
    // measured from outside: still exactly what the test committed, and nobody joined the group
    expect(await committedOffsets(fx.admin, group, topic)).toEqual(new Map([[0, 10n], [1, 4n]]));
    expect((await fx.admin.describeGroup(group)).members).toEqual([]);
  });

  it('rates each group on its own: alertThreshold messages make warning, 20-minute-old ones critical; a failing webhook is logged redacted', async () => {
    const { topic, group } = await fx.topic('lag-threshold', 1);
    const stale = `${group}.stale`;
    const veryOld = Date.now() - 20 * MINUTE;
    await produceAt(fx.kafka, topic, [
      ...Array.from({ length: 10 }, () => ({ partition: 0, timestamp: veryOld })),
      ...Array.from({ length: 60 }, () => ({ partition: 0, timestamp: Date.now() })),
    ]);
    await commit(fx.kafka, group, topic, { 0: 10 }); // 60 fresh messages behind
    await commit(fx.kafka, stale, topic, { 0: 0 }); // 70 behind, the oldest 20 minutes old
    const deadHook = `http://127.0.0.1:${await getFreePort()}/hooks/secret-token-456`;

    const m = monitorFor(
      [
        { group, topics: [topic] },
        { group: stale, topics: [topic] },
      ],
      { KAFKA_CONSUMER_LAG_ALERT_THRESHOLD: '50', CONVEYOR_LAG_WEBHOOK_URL: deadHook },
    );
    stopMonitor = () => m.monitor.stop();
    m.monitor.start();
    await waitFor('both groups rated', () => m.changes.length >= 2, 30_000);
    await waitFor('the webhook failures logged', () => m.logs().filter((l) => l.msg === 'lag webhook failed').length >= 2, 15_000);

    expect(lastSamples(m.samples, group).get(0)).toMatchObject({ lag: 60 });
    expect(lastSamples(m.samples, group).get(0)!.lagSeconds).toBeLessThan(60);
    expect(lastSamples(m.samples, stale).get(0)).toMatchObject({ lag: 70 });
    const byGroup = new Map(m.changes.map((c) => [c.group, c]));
    expect(byGroup.get(group)).toMatchObject({ level: 'warning', previous: 'ok', lag: 60 });
    expect(byGroup.get(stale)).toMatchObject({ level: 'critical', previous: 'ok', lag: 70 });
    expect(byGroup.get(stale)!.lagSeconds).toBeGreaterThan(20 * 60 - 5);
    expect(m.logs().find((l) => l.msg === 'consumer lag level changed' && l.group === stale)?.level).toBe(50);

    const failure = m.logs().find((l) => l.msg === 'lag webhook failed');
    expect(failure?.webhookUrl).toBe(`${new URL(deadHook).origin}/***`);
    expect(m.logText.join('\n')).not.toContain('secret-token-456');
    // the monitor went on measuring after the failed POSTs
    const rounds = m.samples.length;
    await waitFor('another measurement', () => m.samples.length > rounds, 10_000);
  });

  it('skips measurements while Kafka does not answer, logging that once, and stops cleanly', async () => {
    const nowhere = `127.0.0.1:${await getFreePort()}`;
    const m = monitorFor([{ group: 'some.group', topics: ['some.topic'] }], { KAFKA_BOOTSTRAP_SERVERS: nowhere, KAFKA_TIMEOUT_SECONDS: '1' });
    stopMonitor = () => m.monitor.stop();
    m.monitor.start();
    // rounds of 1 s each (the request timeout), one right after the other
    await new Promise((r) => setTimeout(r, 3500));
    await m.monitor.stop();
    const failures = m.logs().filter((l) => l.msg === 'consumer lag not measured (skipped; next try in lag.intervalSeconds)');
    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatchObject({ level: 40, code: 'events.broker.unavailable', failedMeasurements: 1 });
    expect(m.samples).toEqual([]);
    expect(m.changes).toEqual([]);
  });

  describe('conveyor lag', () => {
    function cli(env: Record<string, string>): { ctx: CliContext; out: string[]; err: string[] } {
      const out: string[] = [];
      const err: string[] = [];
      const ctx: CliContext = {
        io: { out: (l) => out.push(l), err: (l) => err.push(l), interactive: false },
        loadConfig: () => loadConfig({ env }),
      };
      return { ctx, out, err };
    }
    async function run(ctx: CliContext, ...args: string[]): Promise<number> {
      const program = new Command().exitOverride();
      registerLag(program, ctx);
      await program.parseAsync(['node', 'conveyor', 'lag', ...args]);
      return Number(process.exitCode ?? 0);
    }

    it('prints committed, end, lag and its age per partition, a total line with the group level, and the same as JSON', async () => {
      const { topic, group } = await fx.topic('lag-cli', 2);
      const old = Date.now() - 10 * MINUTE;
      await produceAt(fx.kafka, topic, [
        ...Array.from({ length: 10 }, (_, i) => ({ partition: 0, timestamp: old + i * 1000 })),
        ...Array.from({ length: 3 }, () => ({ partition: 1, timestamp: Date.now() })),
      ]);
      await commit(fx.kafka, group, topic, { 0: 4 });
      const env = { KAFKA_BOOTSTRAP_SERVERS: inject('kafkaBrokers'), KAFKA_AUTO_OFFSET_RESET: 'earliest' };

      const table = cli(env);
      expect(await run(table.ctx, '--group', group)).toBe(0);
      const rows = table.out.map((line) => line.split(/ {2,}/));
      expect(rows[0]).toEqual(['GROUP', 'TOPIC', 'PARTITION', 'COMMITTED', 'END', 'LAG', 'LAG (TIME)', 'LEVEL']);
      expect(rows[1]).toEqual([group, topic, '0', '4', '10', '6', expect.stringMatching(/^(9m 5\ds|10m \ds)$/), 'warning']);
      expect(rows[2]).toEqual([group, topic, '1', '-', '3', '3', expect.stringMatching(/^\d(\.\d)?s$/), 'ok']);
      expect(rows[3]).toEqual([group, '(total)', '9', expect.stringMatching(/^(9m 5\ds|10m \ds)$/), 'warning']);
      expect(table.out.at(-1)).toBe("committed -: nothing committed yet; counted from the partition's start (kafka.autoOffsetReset = earliest)");

      // the groups of the handler files by default, here as JSON
      const dir = mkdtempSync(join(tmpdir(), 'conveyor-lag-handlers-'));
      try {
        const defineHandler = resolve('src/handlers/define-handler.ts');
        writeFileSync(
          join(dir, 'watched.ts'),
          `import { defineHandler } from ${JSON.stringify(defineHandler)};\n` +
            `export default defineHandler({ topic: ${JSON.stringify(topic)}, group: ${JSON.stringify(group)}, async handle() {} });\n`,
        );
        const json = cli({ ...env, CONVEYOR_HANDLERS_DIR: dir });
        expect(await run(json.ctx, '--json')).toBe(0);
        const doc = JSON.parse(json.out.join('\n')) as { groups: Array<Record<string, unknown> & { partitions: Array<Record<string, unknown>> }> };
        expect(doc.groups).toHaveLength(1);
        expect(doc.groups[0]).toMatchObject({ group, level: 'warning', lag: 9, missingTopics: [] });
        expect(doc.groups[0]!.partitions).toMatchObject([
          { topic, partition: 0, committed: '4', end: '10', lag: 6, level: 'warning' },
          { topic, partition: 1, committed: null, end: '3', lag: 3, level: 'ok' },
        ]);
        expect(doc.groups[0]!.partitions[0]!.lagSeconds).toBeGreaterThan(590);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
      // measuring committed nothing
      expect(await committedOffsets(fx.admin, group, topic)).toEqual(new Map([[0, 4n]]));
    });

    it('fails with events.broker.unavailable and exit 69 when Kafka does not answer within kafka.timeoutSeconds', async () => {
      const nowhere = `127.0.0.1:${await getFreePort()}`;
      const { ctx, out, err } = cli({ KAFKA_BOOTSTRAP_SERVERS: nowhere, KAFKA_TIMEOUT_SECONDS: '2' });
      const started = Date.now();
      expect(await run(ctx, '--group', 'some.group')).toBe(69);
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(out).toEqual([]);
      expect(err).toHaveLength(1);
      expect(err[0]).toMatch(new RegExp(`^conveyor lag: events\\.broker\\.unavailable: .*Kafka at ${nowhere.replace(/\./g, '\\.')} did not answer within 2 s`));
    });
  });
});
