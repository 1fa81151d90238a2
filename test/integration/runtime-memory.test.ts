/**
 * Invariant 3 (bounded memory) on a real broker through the real runner: a handler that allocates without end
 * is stopped by its worker's heap limit (derived from memory.budgetMb), not by the machine. Its worker dies and
 * is replaced, the message is dead-lettered as a RuntimeFailure (WorkerCrashed), the messages around it are
 * handled, and the runner stays alive and below its budget the whole time (its RSS is sampled from /proc).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { DeadLetterEnvelope } from '../../src/failure/dead-letter.ts';
import { useKafkaFixture } from '../support/fixture.ts';
import { committedOffsets, produce, readTopic, waitFor } from '../support/kafka.ts';
import { readRecords } from '../support/runner.ts';

const BUDGET_MB = 384;

/** The process's resident set in MiB, or undefined once it is gone. */
function rssMb(pid: number): number | undefined {
  try {
    const kb = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kb === undefined ? undefined : Number(kb) / 1024;
  } catch {
    return undefined;
  }
}

describe('runtime: memory budget', () => {
  const fx = useKafkaFixture({ scope: 'test' });

  it('a handler that allocates without end is killed by its worker heap limit: dead-lettered as WorkerCrashed, the runner stays alive and below its budget', async () => {
    const { topic, dlq, group } = await fx.topic('memory-hog', 2);
    const NORMAL = 30;
    await produce(fx.kafka, topic, [
      { partition: 0, key: 'hog', value: { seq: 0, hog: true } },
      { partition: 0, value: { seq: 1 } },
      ...Array.from({ length: NORMAL }, (_, i) => ({ partition: 1, value: { seq: i, delayMs: 2 } })),
    ]);
    const runner = await fx.startRunner({
      topic,
      group,
      env: {
        CONVEYOR_MEMORY_BUDGET_MB: String(BUDGET_MB),
        CONVEYOR_POOL_SIZE: '1',
        // no retry: the first crash dead-letters; a long timeout: the heap limit, not the watchdog, must stop it
        TEST_RETRIES: '0',
        TEST_TIMEOUT_MS: '60000',
      },
    });
    const pid = runner.child.pid!;
    let peak = 0;
    // sampled while everything happens; above the budget the test fails at once (without a limit the hog
    // would take gigabytes before anything stopped it)
    const sampler = setInterval(() => {
      const mb = rssMb(pid);
      if (mb !== undefined) peak = Math.max(peak, mb);
      if (peak > BUDGET_MB) runner.child.kill('SIGKILL');
    }, 20);
    try {
      await waitFor(`committed 0:2 and 1:${NORMAL} (peak RSS so far ${Math.round(peak)} MB)`, async () => {
        if (peak > BUDGET_MB) throw new Error(`runner RSS reached ${Math.round(peak)} MB, above its ${BUDGET_MB} MB budget`);
        const c = await committedOffsets(fx.admin, group, topic);
        return c.get(0) === 2n && c.get(1) === BigInt(NORMAL);
      }, 60_000);
    } finally {
      clearInterval(sampler);
    }
    // well below: the hog's worker died at its heap limit (a fraction of the budget), long before the process neared it
    expect(peak, 'peak RSS of the runner, MB').toBeLessThan(0.8 * BUDGET_MB);
    process.stderr.write(`runner peak RSS ${Math.round(peak)} MB (budget ${BUDGET_MB} MB)\n`);

    const [letter] = await readTopic(dlq, 1);
    const envelope = JSON.parse(letter!.value) as DeadLetterEnvelope;
    expect(envelope).toMatchObject({
      original_topic: topic,
      original_message: { key: 'hog', offset: '0', partition: 0 },
      retry_count: 0,
      error_type: 'WorkerCrashed',
      error_class: 'RuntimeFailure',
      error_code: 'conveyor.worker.crashed',
    });
    expect(envelope.failure_reason).toMatch(/memory/i);

    // the message behind it and the other partition were handled, once each
    const records = readRecords(runner.recordFile);
    expect(records.filter((r) => r.partition === 0).map((r) => [r.seq, r.ok])).toEqual([[1, true]]);
    expect(records.filter((r) => r.partition === 1).map((r) => r.seq)).toEqual([...Array(NORMAL).keys()]);

    // the process is alive (its worker was replaced), and stops cleanly
    expect(runner.child.exitCode).toBeNull();
    const { code } = await runner.stop('SIGTERM');
    expect(code).toBe(0);
  });
});
