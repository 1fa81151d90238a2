/**
 * A freshly formatted cluster (no __consumer_offsets yet) and consumer groups it has never seen: the native
 * client's admin.fetchOffsets segfaulted there (confluent-kafka-javascript #374) — the runner exited 139 a second
 * after start, `conveyor lag` and `conveyor offsets reset` likewise. Here, on a throwaway broker of this file's
 * own: the CLI reads a never-seen group as "nothing committed" and exits 0, the runner starts, stays alive, handles
 * and commits, and nothing dies of a signal. The crash needs the cluster without __consumer_offsets (on a cluster
 * that has it, a never-seen group did not crash the old CLI), and the first group request creates that topic: so
 * each test gets the broker formatted afresh.
 */
import { Admin } from '@platformatic/kafka';
import { beforeAll, describe, expect, it } from 'vitest';
import { RECORDER_DIR, runCli, writeConfig, type CliResult } from '../support/cli.ts';
import { committedOffsets, produce, uniqueName, waitFor } from '../support/kafka.ts';
import { readRecords, startRunner } from '../support/runner.ts';
import { useThrowawayKafka } from '../support/throwaway-kafka.ts';

const MESSAGES = 20;

/** The internal topics the cluster has (pure-JS admin, so the check itself cannot crash). */
async function internalTopics(brokers: string): Promise<string[]> {
  const admin = new Admin({ clientId: 'conveyor-test-fresh', bootstrapBrokers: [brokers], retries: 3 });
  try {
    return (await admin.listTopics({ includeInternals: true })).filter((t) => t.startsWith('__'));
  } finally {
    await admin.close();
  }
}

/** The output of a CLI run, for failure messages. */
function shown(r: CliResult): string {
  return `exit ${r.code} signal ${r.signal}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
}

describe('a freshly formatted cluster', () => {
  const fx = useThrowawayKafka('conveyor-test-fresh');
  let config: string;
  const topic = uniqueName('conveyor.test.fresh');

  beforeAll(async () => {
    expect(await fx.admin.createTopic(topic, 2)).toBe(true);
    config = writeConfig(['kafka:', `  bootstrapServers: "${fx.broker.brokers}"`, '  autoOffsetReset: earliest', 'handlers:', `  directory: "${RECORDER_DIR}"`]);
  });

  it('conveyor lag and conveyor offsets reset --dry-run read a never-seen group as nothing committed, before the cluster has __consumer_offsets', async () => {
    expect(await internalTopics(fx.broker.brokers), 'the cluster is fresh').toEqual([]);
    const group = uniqueName('conveyor.test.fresh-never-seen');
    const env = { TEST_TOPIC: topic, TEST_GROUP: group };

    const lag = await runCli(['lag', '--config', config], env);
    expect(lag.signal, shown(lag)).toBeNull();
    expect(lag.code, shown(lag)).toBe(0);
    const rows = lag.stdout.trim().split('\n').map((line) => line.split(/ {2,}/));
    expect(rows[0]).toEqual(['GROUP', 'TOPIC', 'PARTITION', 'COMMITTED', 'END', 'LAG', 'LAG (TIME)', 'LEVEL']);
    expect(rows.slice(1, 3)).toEqual([
      [group, topic, '0', '-', '0', '0', '0s', 'ok'],
      [group, topic, '1', '-', '0', '0', '0s', 'ok'],
    ]);

    const named = await runCli(['lag', '--config', config, '--group', uniqueName('conveyor.test.fresh-other')]);
    expect(named.signal, shown(named)).toBeNull();
    expect(named.code, shown(named)).toBe(0);
    expect(named.stderr).toMatch(/has no committed offsets on any topic/);

    const reset = await runCli(['offsets', 'reset', '--config', config, '--group', group, '--topic', topic, '--to', 'earliest', '--dry-run']);
    expect(reset.signal, shown(reset)).toBeNull();
    expect(reset.code, shown(reset)).toBe(0);
    expect(reset.stdout).toContain(`reset group ${group} on ${topic} to earliest (dry run):`);
    expect(reset.stdout).toContain('dry run: nothing changed');
    expect(await committedOffsets(fx.admin, group, topic), 'a dry run commits nothing').toEqual(new Map());
  }, 120_000);

  it('the runner starts, stays alive, handles and commits; conveyor lag then shows its group caught up', async () => {
    await fx.admin.close();
    await fx.broker.reformat();
    expect(await fx.admin.createTopic(topic, 2)).toBe(true);
    expect(await internalTopics(fx.broker.brokers), 'the cluster is fresh').toEqual([]);
    const group = uniqueName('conveyor.test.fresh-group');
    await produce(fx.kafka, topic, Array.from({ length: MESSAGES }, (_, seq) => ({ key: `k${seq % 4}`, value: { seq } })));
    const runner = fx.track(await startRunner({ topic, group, env: { KAFKA_BOOTSTRAP_SERVERS: fx.broker.brokers } }));
    // a runner that died (the native client's SIGSEGV) fails at once, saying how it ended
    const alive = (): void => {
      if (runner.child.exitCode !== null || runner.child.signalCode !== null) {
        throw new Error(`the runner died: exit ${runner.child.exitCode}, signal ${runner.child.signalCode}; last log: ${runner.logs.at(-1)?.msg}`);
      }
    };
    await waitFor(`${MESSAGES} messages handled`, () => (alive(), readRecords(runner.recordFile).filter((r) => r.ok).length >= MESSAGES), 60_000);
    expect(new Set(readRecords(runner.recordFile).map((r) => r.seq)).size).toBe(MESSAGES);
    await waitFor('every message committed', async () => [...(await committedOffsets(fx.admin, group, topic)).values()].reduce((n, o) => n + Number(o), 0) === MESSAGES, 30_000);

    // the native crash came 1-2 s after start (lag monitor, probe): well past that and more measurements, still alive
    await new Promise((r) => setTimeout(r, 8_000));
    expect(runner.child.exitCode, runner.stderr.join('')).toBeNull();
    expect(runner.child.signalCode, runner.stderr.join('')).toBeNull();

    const lag = await runCli(['lag', '--config', config, '--group', group]);
    expect(lag.signal, shown(lag)).toBeNull();
    expect(lag.code, shown(lag)).toBe(0);
    const total = lag.stdout.split('\n').map((line) => line.split(/ {2,}/)).find((row) => row[1] === '(total)');
    expect(total?.slice(0, 3), lag.stdout).toEqual([group, '(total)', '0']);

    expect(await runner.stop('SIGTERM')).toEqual({ code: 0, signal: null });
  }, 300_000);
});
