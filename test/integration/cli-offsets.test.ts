/**
 * `conveyor offsets reset` against a real broker: to a point in time (and a runner then handles exactly the messages
 * from there), earliest, latest, an offset, one partition; refused while the group has a member
 * (events.group.active, exit 3), for a time the log no longer holds (events.retention.exceeded, exit 4), for an
 * offset outside the log (events.offset.out_of_range, exit 65); Kafka unreachable: exit 69.
 */
import { describe, expect, it } from 'vitest';
import { useKafkaFixture } from '../support/fixture.ts';
import { brokerConfig, jsonOf, runCli } from '../support/cli.ts';
import { committedOffsets, waitFor } from '../support/kafka.ts';
import { readRecords } from '../support/runner.ts';

const MINUTE = 60_000;

describe('conveyor offsets reset', () => {
  const fx = useKafkaFixture();

  /** `count` messages per partition, message i written at base + i minutes (seq = partition * 100 + i). */
  async function produceAt(topic: string, partitions: number, count: number, base: number): Promise<void> {
    const producer = fx.kafka.producer({ 'enable.idempotence': true, acks: -1 } as never);
    await producer.connect();
    try {
      for (let p = 0; p < partitions; p++) {
        await producer.send({
          topic,
          messages: Array.from({ length: count }, (_, i) => ({ partition: p, value: JSON.stringify({ seq: p * 100 + i }), timestamp: String(base + i * MINUTE) })),
        });
      }
    } finally {
      await producer.disconnect();
    }
  }

  const committed = async (group: string, topic: string): Promise<number[]> => {
    const offsets = await committedOffsets(fx.admin, group, topic);
    return [...offsets.entries()].sort(([a], [b]) => a - b).map(([, o]) => Number(o));
  };

  const iso = (ms: number): string => new Date(ms).toISOString();

  it('to a point in time: each partition starts at its first message at or after it, and a runner handles exactly those', async () => {
    const { topic, group } = await fx.topic('cli-offsets-time', 2);
    const base = Date.now() - 60 * MINUTE;
    await produceAt(topic, 2, 10, base);
    const config = brokerConfig();

    const result = await runCli(['offsets', 'reset', '--config', config, '--group', group, '--topic', topic, '--to', iso(base + 4.5 * MINUTE)]);
    expect(result.code, result.stderr).toBe(0);
    const lines = result.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe(`reset group ${group} on ${topic} to ${iso(base + 4.5 * MINUTE)}:`);
    expect(lines[1]).toMatch(/^PARTITION\s+CURRENT\s+NEW\s+LOG START\s+LOG END\s+TO READ$/);
    // the plan: no offset committed yet (-), the new one, the log's bounds, what the group will read
    expect(lines[2]!.trim().split(/\s+/)).toEqual(['0', '-', '5', '0', '10', '5']);
    expect(lines[3]!.trim().split(/\s+/)).toEqual(['1', '-', '5', '0', '10', '5']);
    expect(lines.at(-1)).toBe(`applied: group ${group} starts 2 partition(s) of ${topic} at the new offsets`);
    expect(await committed(group, topic)).toEqual([5, 5]);

    const runner = await fx.startRunner({ topic, group });
    await waitFor('the group committed both partitions to their end', async () => (await committed(group, topic)).every((o) => o === 10));
    expect((await runner.stop()).code).toBe(0);
    const handled = readRecords(runner.recordFile).map((r) => r.seq).sort((a, b) => a - b);
    expect(handled).toEqual([5, 6, 7, 8, 9, 105, 106, 107, 108, 109]);
  });

  it('earliest, latest, an offset, one partition, a dry run; bad targets are refused without a change', async () => {
    const { topic, group } = await fx.topic('cli-offsets-targets', 2);
    await produceAt(topic, 2, 4, Date.now() - 10 * MINUTE);
    const config = brokerConfig();
    const reset = (...args: string[]) => runCli(['offsets', 'reset', '--config', config, '--group', group, '--topic', topic, ...args]);

    expect((await reset('--to', 'latest')).code).toBe(0);
    expect(await committed(group, topic)).toEqual([4, 4]);
    expect((await reset('--to', 'earliest')).code).toBe(0);
    expect(await committed(group, topic)).toEqual([0, 0]);

    const one = await reset('--to', '3', '--partition', '1');
    expect(one.code, one.stderr).toBe(0);
    expect(one.stdout.split('\n')[2]!.trim().split(/\s+/)).toEqual(['1', '0', '3', '0', '4', '1']);
    expect(await committed(group, topic)).toEqual([0, 3]);

    const dry = jsonOf<{ applied: boolean; partitions: Array<{ partition: number; current: string | null; new: string }> }>(await reset('--to', 'latest', '--dry-run', '--json'));
    expect(dry).toMatchObject({ applied: false, partitions: [{ partition: 0, current: '0', new: '4' }, { partition: 1, current: '3', new: '4' }] });
    expect(await committed(group, topic), 'a dry run changes nothing').toEqual([0, 3]);

    const beyond = await reset('--to', '9');
    expect(beyond.code).toBe(65);
    expect(beyond.stderr).toMatch(/^conveyor offsets reset: events\.offset\.out_of_range: offset 9 is outside the log of partition 0 \(offsets 0 to 4\), partition 1 \(offsets 0 to 4\)/);
    for (const bad of ['2026-01-01T00:00:00', '2026-02-30T00:00:00Z', 'yesterday']) {
      const refused = await reset('--to', bad);
      expect(refused.code, bad).toBe(64);
      expect(refused.stderr).toMatch(/conveyor\.cli\.usage: --to/);
    }
    const noTopic = await runCli(['offsets', 'reset', '--config', config, '--group', group, '--topic', `${topic}.missing`, '--to', 'earliest']);
    expect(noTopic.code).toBe(65);
    expect(noTopic.stderr).toMatch(/does not exist/);
    expect(await committed(group, topic), 'refusals change nothing').toEqual([0, 3]);
  });

  it('refuses while the group has a member (events.group.active, exit 3), and resets once it stopped', async () => {
    const { topic, group } = await fx.topic('cli-offsets-active', 1);
    await produceAt(topic, 1, 5, Date.now() - 10 * MINUTE);
    const runner = await fx.startRunner({ topic, group });
    await waitFor('the runner committed to the end', async () => (await committed(group, topic))[0] === 5);
    const config = brokerConfig();

    const refused = await runCli(['offsets', 'reset', '--config', config, '--group', group, '--topic', topic, '--to', 'earliest']);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toMatch(new RegExp(`^conveyor offsets reset: events\\.group\\.active: group ${group.replaceAll('.', '\\.')} has 1 member\\(s\\): \\S+@\\S+\\. .*stop them`));
    expect(refused.stdout).toBe('');
    const dry = await runCli(['offsets', 'reset', '--config', config, '--group', group, '--topic', topic, '--to', 'earliest', '--dry-run']);
    expect(dry.code).toBe(0);
    expect(dry.stderr).toMatch(/has 1 member\(s\) .*applying it would be refused/);
    expect(await committed(group, topic)).toEqual([5]);

    expect((await runner.stop()).code).toBe(0);
    const applied = await runCli(['offsets', 'reset', '--config', config, '--group', group, '--topic', topic, '--to', 'earliest']);
    expect(applied.code, applied.stderr).toBe(0);
    expect(await committed(group, topic)).toEqual([0]);
  });

  it('a time older than what a partition still holds is events.retention.exceeded (exit 4), unless --allow-truncated', async () => {
    const { topic, group } = await fx.topic('cli-offsets-retention', 2);
    const base = Date.now() - 60 * MINUTE;
    await produceAt(topic, 2, 10, base);
    // partition 0 loses its first four messages, as retention would delete them
    await fx.admin.deleteRecords(topic, 0, 4n);
    const config = brokerConfig();
    const reset = (...args: string[]) => runCli(['offsets', 'reset', '--config', config, '--group', group, '--topic', topic, ...args]);

    const exceeded = await reset('--to', iso(base + 1 * MINUTE));
    expect(exceeded.code, exceeded.stderr).toBe(4);
    expect(exceeded.stderr).toMatch(/^conveyor offsets reset: events\.retention\.exceeded: /);
    expect(exceeded.stderr).toContain(`partition 0 starts at offset 4, written ${iso(base + 4 * MINUTE)}`);
    expect(exceeded.stderr).not.toContain('partition 1 starts');
    expect(await committed(group, topic), 'nothing committed').toEqual([]);

    // a time the truncated partition still holds is fine
    const within = await reset('--to', iso(base + 6 * MINUTE));
    expect(within.code, within.stderr).toBe(0);
    expect(await committed(group, topic)).toEqual([6, 6]);

    const truncated = await reset('--to', iso(base + 1 * MINUTE), '--allow-truncated');
    expect(truncated.code, truncated.stderr).toBe(0);
    expect(truncated.stderr).toContain('warning: partition 0 starts at its oldest message (offset 4');
    expect(await committed(group, topic)).toEqual([4, 1]);
  });

  it('a Kafka that does not answer: exit 69 with events.broker.unavailable, within the configured timeout', async () => {
    const config = brokerConfig({ bootstrapServers: '127.0.0.1:1' });
    const result = await runCli(['offsets', 'reset', '--config', config, '--group', 'g', '--topic', 't', '--to', 'earliest'], { KAFKA_TIMEOUT_SECONDS: '2' });
    expect(result.code, result.stderr).toBe(69);
    expect(result.stderr).toMatch(/events\.broker\.unavailable: Kafka at 127\.0\.0\.1:1 did not answer/);
    expect(result.ms).toBeLessThan(10_000);
  });
});
