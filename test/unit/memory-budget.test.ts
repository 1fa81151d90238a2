/**
 * The memory budget's derivation (src/config/memory-budget.ts): what each part gets, that explicit settings stay
 * ceilings, that the parts add up to less than the budget, and that a budget too small for the pool is refused.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/failure/errors.ts';
import { loadConfig } from '../../src/config/load.ts';
import {
  BASE_MB, MESSAGE_COST, MESSAGE_SHARE, PREFETCH_COST, WORKER_BASE_MB, WORKER_SHARE, WORKER_YOUNG_MB, budgetProblem, deriveMemoryPlan, minimumBudgetMb,
} from '../../src/config/memory-budget.ts';

const MiB = 1024 * 1024;

function config(overrides: { budgetMb?: number; poolSize?: number; maxBatchSize?: number; maxMessages?: number; maxBytes?: number } = {}) {
  return {
    memory: { budgetMb: overrides.budgetMb ?? 512 },
    pool: { size: overrides.poolSize ?? 2, maxBatch: 64, tasksPerThread: 256, timeoutGraceMs: 1000 },
    kafka: { maxBatchSize: overrides.maxBatchSize ?? 1000 } as never,
    lanes: { maxMessages: overrides.maxMessages ?? 10_000, maxBytes: overrides.maxBytes ?? 16_777_216, resumeRatio: 0.5 },
  };
}

const ONE_KAFKA = { kafkaConsumers: 1, queueConsumers: 0 };

describe('memory budget: derivation', () => {
  it('the default budget, 2 threads, one Kafka consumer: worker heaps, prefetch, lanes and main-thread flags', () => {
    const plan = deriveMemoryPlan(config(), ONE_KAFKA);
    const rest = 512 - BASE_MB - 2 * WORKER_BASE_MB;
    expect(plan.threads).toBe(2);
    // each worker: its share of WORKER_SHARE × rest, young generation included
    const workerMb = Math.floor((WORKER_SHARE * rest) / 2);
    expect(plan.workerResourceLimits).toEqual({ maxYoungGenerationSizeMb: WORKER_YOUNG_MB, maxOldGenerationSizeMb: workerMb - WORKER_YOUNG_MB });
    const props = plan.kafkaConsumerProperties;
    const share = MESSAGE_SHARE * rest * MiB;
    expect(props['queued.max.messages.kbytes']).toBe(Math.max(1024, Math.floor((0.25 * Math.floor(share)) / PREFETCH_COST / 1024)));
    expect(props['fetch.max.bytes']).toBeLessThanOrEqual(props['queued.max.messages.kbytes']! * 1024);
    expect(props['max.partition.fetch.bytes']).toBeLessThanOrEqual(props['fetch.max.bytes']!);
    expect(props['js.consumer.max.batch.size']).toBe(1000);
    expect(plan.mainThreadFlags).toEqual(['--max-semi-space-size=8', `--max-old-space-size=${64 + 2 * Math.ceil(MESSAGE_SHARE * (512 - BASE_MB))}`]);
    expect(plan.mainThreadFlags).toEqual(['--max-semi-space-size=8', '--max-old-space-size=148']);
    // one NODE_OPTIONS for any pool size
    expect(deriveMemoryPlan(config({ poolSize: 1 }), ONE_KAFKA).mainThreadFlags).toEqual(plan.mainThreadFlags);
    // 12 partitions share the consumer's lane memory
    const lanes = plan.laneLimits(12);
    expect(lanes.maxBytes).toBeLessThan(16_777_216);
    expect(lanes.maxMessages).toBe(Math.floor(lanes.maxBytes / MESSAGE_COST));
    expect(lanes.resumeRatio).toBe(0.5);
  });

  it('everything derived adds up to less than the budget (the rest is headroom)', () => {
    for (const [budgetMb, poolSize, kafkaConsumers, queueConsumers] of [[512, 2, 1, 0], [512, 2, 3, 2], [1024, 4, 1, 1], [4096, 8, 10, 0], [minimumBudgetMb(1), 1, 1, 0]] as const) {
      const plan = deriveMemoryPlan(config({ budgetMb, poolSize }), { kafkaConsumers, queueConsumers });
      const partitions = 12;
      const workers = poolSize * (WORKER_BASE_MB + plan.workerResourceLimits!.maxOldGenerationSizeMb! + plan.workerResourceLimits!.maxYoungGenerationSizeMb!);
      const kafkaPerConsumer =
        (PREFETCH_COST * plan.kafkaConsumerProperties['queued.max.messages.kbytes']! * 1024 + partitions * plan.laneLimits(partitions).maxBytes) / MiB;
      const queuePerConsumer = (plan.queuePrefetch(65_535) * 16 * 1024) / MiB;
      const total = BASE_MB + workers + kafkaConsumers * kafkaPerConsumer + queueConsumers * queuePerConsumer;
      expect(total, `budget ${budgetMb}, ${poolSize} threads, ${kafkaConsumers} Kafka + ${queueConsumers} queue consumers`).toBeLessThanOrEqual(budgetMb);
    }
  });

  it('more consumers share the same message budget: each gets less', () => {
    const one = deriveMemoryPlan(config(), ONE_KAFKA);
    const four = deriveMemoryPlan(config(), { kafkaConsumers: 3, queueConsumers: 1 });
    expect(four.laneLimits(12).maxBytes).toBeLessThan(one.laneLimits(12).maxBytes);
    expect(four.queuePrefetch(65_535)).toBeLessThan(one.queuePrefetch(65_535));
    // the workers' heaps do not depend on the consumers
    expect(four.workerResourceLimits).toEqual(one.workerResourceLimits);
  });

  it('a larger budget gives more to each part', () => {
    const small = deriveMemoryPlan(config({ budgetMb: 512 }), ONE_KAFKA);
    const large = deriveMemoryPlan(config({ budgetMb: 2048 }), ONE_KAFKA);
    expect(large.workerResourceLimits!.maxOldGenerationSizeMb!).toBeGreaterThan(small.workerResourceLimits!.maxOldGenerationSizeMb!);
    expect(large.kafkaConsumerProperties['queued.max.messages.kbytes']!).toBeGreaterThan(small.kafkaConsumerProperties['queued.max.messages.kbytes']!);
    expect(large.laneLimits(12).maxBytes).toBeGreaterThan(small.laneLimits(12).maxBytes);
  });

  it('lanes: the consumer\'s lane memory is divided among the partitions it owns, with a floor', () => {
    const plan = deriveMemoryPlan(config(), ONE_KAFKA);
    expect(plan.laneLimits(1).maxBytes).toBe(16_777_216); // capped by lanes.maxBytes
    expect(plan.laneLimits(24).maxBytes).toBeCloseTo(plan.laneLimits(12).maxBytes / 2, -1);
    expect(plan.laneLimits(100_000).maxBytes).toBe(256 * 1024);
    expect(plan.laneLimits(0).maxBytes).toBe(plan.laneLimits(1).maxBytes);
  });

  it('explicit settings are ceilings: the budget lowers them, never raises them', () => {
    const plan = deriveMemoryPlan(config({ maxMessages: 100, maxBytes: 65_536, maxBatchSize: 50 }), ONE_KAFKA);
    expect(plan.laneLimits(1)).toEqual({ maxMessages: 100, maxBytes: 65_536, resumeRatio: 0.5 });
    expect(plan.kafkaConsumerProperties['js.consumer.max.batch.size']).toBe(50);
    // a queue handler's declared prefetch stands when it is below the budget's cap ...
    expect(plan.queuePrefetch(10, 1)).toBe(10);
    // ... is lowered to the cap above it, never below the handler's concurrency
    const cap = plan.queuePrefetch(65_535);
    expect(cap).toBeLessThan(65_535);
    expect(deriveMemoryPlan(config({ budgetMb: minimumBudgetMb(2) }), { kafkaConsumers: 0, queueConsumers: 50 }).queuePrefetch(500, 200)).toBe(200);
  });

  it('budget 0 turns it off: the configured limits, the client defaults, no worker limits, no flags', () => {
    const plan = deriveMemoryPlan(config({ budgetMb: 0, maxMessages: 10_000, maxBytes: 16_777_216 }), ONE_KAFKA);
    expect(plan.workerResourceLimits).toBeUndefined();
    expect(plan.mainThreadFlags).toEqual([]);
    expect(plan.kafkaConsumerProperties).toEqual({ 'js.consumer.max.batch.size': 1000 });
    expect(plan.laneLimits(12)).toEqual({ maxMessages: 10_000, maxBytes: 16_777_216, resumeRatio: 0.5 });
    expect(plan.queuePrefetch(5000)).toBe(5000);
  });

  it('pool.size 0 counts the cores, as many as the budget affords', () => {
    expect(deriveMemoryPlan(config({ poolSize: 0, budgetMb: 1024 }), ONE_KAFKA, 4).threads).toBe(4);
    const many = deriveMemoryPlan(config({ poolSize: 0, budgetMb: 512 }), ONE_KAFKA, 64);
    expect(many.threads).toBeGreaterThan(1);
    expect(many.threads).toBeLessThan(64);
    expect(minimumBudgetMb(many.threads)).toBeLessThanOrEqual(512);
    expect(minimumBudgetMb(many.threads + 1)).toBeGreaterThan(512);
    // no budget: one per core
    expect(deriveMemoryPlan(config({ poolSize: 0, budgetMb: 0 }), ONE_KAFKA, 64).threads).toBe(64);
  });
});

describe('memory budget: range checks', () => {
  it('a budget below the minimum for the pool is refused, naming the minimum', () => {
    expect(budgetProblem(0, 64)).toBeUndefined();
    expect(budgetProblem(minimumBudgetMb(2), 2)).toBeUndefined();
    expect(budgetProblem(minimumBudgetMb(2) - 1, 2)).toMatch(new RegExp(`at least ${minimumBudgetMb(2)} for 2 worker threads`));
    expect(() => deriveMemoryPlan(config({ budgetMb: 128, poolSize: 2 }), ONE_KAFKA)).toThrow(RangeError);
    // the minimum grows with the pool
    expect(minimumBudgetMb(8)).toBeGreaterThan(minimumBudgetMb(2));
  });

  it('loadConfig: range of memory.budgetMb and its check against pool.size', () => {
    expect(loadConfig({ env: {} }).memory.budgetMb).toBe(512);
    expect(loadConfig({ env: { CONVEYOR_MEMORY_BUDGET_MB: '2048', CONVEYOR_POOL_SIZE: '4' } }).memory.budgetMb).toBe(2048);
    expect(loadConfig({ env: { CONVEYOR_MEMORY_BUDGET_MB: '0' } }).memory.budgetMb).toBe(0);
    const problems = (env: Record<string, string>): readonly string[] => {
      try {
        loadConfig({ env });
      } catch (error) {
        expect(error).toBeInstanceOf(ConfigError);
        return (error as ConfigError).problems;
      }
      return [];
    };
    expect(problems({ CONVEYOR_MEMORY_BUDGET_MB: '-1' })).toEqual(['memory.budgetMb (CONVEYOR_MEMORY_BUDGET_MB): must be an integer from 0 to 1048576; got -1']);
    expect(problems({ CONVEYOR_MEMORY_BUDGET_MB: '512MB' })[0]).toMatch(/^memory\.budgetMb \(CONVEYOR_MEMORY_BUDGET_MB\): must be an integer/);
    expect(problems({ CONVEYOR_MEMORY_BUDGET_MB: '256', CONVEYOR_POOL_SIZE: '8' })).toEqual([
      `memory.budgetMb (CONVEYOR_MEMORY_BUDGET_MB): ${budgetProblem(256, 8)!}`,
    ]);
  });
});
