/**
 * A handler that misbehaves after its message was handled, and one that throws what is not an Error (issue 10 §6),
 * in the real runner against a real broker:
 * - a throw inside a timer, a rejection nobody handles, process.exit in a timer — each after its task finished —
 *   kill the worker thread: the runner logs each with the handler and its file, counts it in
 *   conveyor_worker_late_failures_total, replaces the thread and keeps going; no message is lost or handled twice;
 * - a thrown plain object keeps its JSON in the failure reason (dead-letter envelope and log line), not
 *   "[object Object]".
 */
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { useKafkaFixture } from '../support/fixture.ts';
import { produce, readTopic, waitFor } from '../support/kafka.ts';
import { metricValue, opsBaseUrl, opsGet } from '../support/ops-http.ts';
import { readRecords } from '../support/runner.ts';

const HANDLERS_DIR = 'test/fixtures/misbehaving-handlers';
const FILE = resolve(HANDLERS_DIR, 'misbehaving.ts');

describe('runtime: a handler that misbehaves', () => {
  const fx = useKafkaFixture();

  it('a worker that dies after its task finished is logged with the handler file, counted, replaced; the runner keeps going', async () => {
    const { topic, group } = await fx.topic('late-failure', 1);
    const runner = await fx.startRunner({ topic, group, handlersDir: HANDLERS_DIR, env: { CONVEYOR_POOL_SIZE: '1' } });
    const base = opsBaseUrl(runner);
    const plan = [{}, { late: 'throw' }, {}, { late: 'reject' }, {}, { late: 'exit' }, {}, {}] as const;
    // one at a time, each once the thread is idle again: the failures happen after their task, not during the next
    for (const [seq, extra] of plan.entries()) {
      await produce(fx.kafka, topic, [{ value: { seq, ...extra } }]);
      await waitFor(`seq ${seq} handled`, () => readRecords(runner.recordFile).some((r) => r.seq === seq), 30_000);
      await new Promise((r) => setTimeout(r, 300));
    }
    const late = (): Array<Record<string, unknown>> => runner.logs.filter((l) => l.msg === 'worker thread died after its task finished');
    await waitFor('three late failures logged', () => late().length === 3, 15_000);
    expect(late().map((l) => [l.level, l.handler, l.file, l.kind])).toEqual([
      [50, 'misbehaving', FILE, 'uncaught_exception'],
      [50, 'misbehaving', FILE, 'unhandled_rejection'],
      [50, 'misbehaving', FILE, 'exit'],
    ]);
    expect((late()[0]!.err as { message: string }).message).toBe('late failure after seq 1');
    expect((late()[1]!.err as { message: string }).message).toBe('late rejection after seq 3');
    expect(late()[2]!.exitCode).toBe(7);

    const metrics = (await opsGet(base, '/metrics')).text;
    for (const kind of ['uncaught_exception', 'unhandled_rejection', 'exit']) {
      expect(metricValue(metrics, `conveyor_worker_late_failures_total{handler="misbehaving",kind="${kind}"}`), kind).toBe(1);
    }
    expect(metricValue(metrics, 'conveyor_worker_replacements_total{reason="crash"}')).toBe(3);
    expect(metricValue(metrics, 'conveyor_pool_threads')).toBe(1);
    // every message handled once, none failed: the deaths came after their messages were acknowledged
    expect(readRecords(runner.recordFile).map((r) => r.seq)).toEqual(plan.map((_, seq) => seq));
    expect(metricValue(metrics, `conveyor_messages_total{handler="misbehaving",topic="${topic}",result="ok"}`)).toBe(plan.length);
    expect(runner.child.exitCode).toBeNull();
    expect((await runner.stop()).code).toBe(0);
  });

  it('a thrown plain object keeps its JSON (bounded) in the failure reason, not [object Object]', async () => {
    const { topic, dlq, group } = await fx.topic('thrown-object', 1);
    const runner = await fx.startRunner({ topic, group, handlersDir: HANDLERS_DIR });
    const big = 'x'.repeat(5000);
    await produce(fx.kafka, topic, [
      { value: { seq: 0, throwValue: { code: 'E_CARD', detail: { reason: 'declined', amount: 12.5 } } } },
      { value: { seq: 1, throwValue: { code: 'E_BIG', blob: big } } },
      { value: { seq: 2, throwValue: 'a plain string' } },
    ]);
    // the dead-letter topic exists once the runner wrote to it: read it then
    await waitFor('three messages dead-lettered', () => runner.logs.filter((l) => l.msg === 'message dead-lettered').length === 3, 60_000);
    const letters = (await readTopic(dlq, 3, 30_000)).sort((a, b) => Number(a.offset) - Number(b.offset));
    const reasons = letters.map((l) => (JSON.parse(l.value) as { failure_reason: string }).failure_reason);
    expect(reasons[0]).toBe('handler threw Object: {"code":"E_CARD","detail":{"reason":"declined","amount":12.5}}');
    expect(reasons[1]).toMatch(/^handler threw Object: \{"code":"E_BIG","blob":"x+… \(5026 characters of JSON, first 2048 kept\)$/);
    expect(reasons[1]!.length).toBeLessThan(2200);
    expect(reasons[2]).toBe('handler threw string: a plain string');
    for (const reason of reasons) expect(reason).not.toContain('[object Object]');
    const logged = runner.logs.filter((l) => l.msg === 'message dead-lettered').map((l) => JSON.stringify(l));
    expect(logged.some((l) => l.includes('E_CARD'))).toBe(true);
    expect(logged.join('\n')).not.toContain('[object Object]');
    await runner.stop();
  });
});
