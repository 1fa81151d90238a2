import { describe, expect, it } from 'vitest';
import { CIRCUIT_STATE_VALUE, PublishCircuitBreaker } from '../../src/publish/circuit-breaker.ts';
import { BrokerFailure } from '../../src/failure/errors.ts';
import { retryWithBackoff } from '../../src/publish/retry-with-backoff.ts';

const fail = () => Promise.reject(new Error('broker down'));
const succeed = () => Promise.resolve('ok');

describe('publish circuit breaker (seed 001)', () => {
  it('opens after the threshold of consecutive failures, then fails at once with events.broker.unavailable', async () => {
    const breaker = new PublishCircuitBreaker({ threshold: 3, resetMs: 60_000, target: 'Kafka at k:9092' });
    const states: string[] = [];
    breaker.onStateChange((s) => states.push(s));
    for (let i = 0; i < 2; i++) await expect(breaker.execute(fail)).rejects.toThrow('broker down');
    expect(breaker.state).toBe('closed');
    await expect(breaker.execute(fail)).rejects.toThrow('broker down');
    expect(breaker.state).toBe('open');
    let called = false;
    const refused = breaker.execute(async () => { called = true; return 'x'; });
    await expect(refused).rejects.toBeInstanceOf(BrokerFailure);
    await expect(refused).rejects.toMatchObject({ code: 'events.broker.unavailable', circuitState: 'open', retriable: true });
    expect(called).toBe(false);
    expect(states).toEqual(['open']);
  });

  it('a success in between resets the count of consecutive failures', async () => {
    const breaker = new PublishCircuitBreaker({ threshold: 2, resetMs: 60_000, target: 't' });
    await expect(breaker.execute(fail)).rejects.toThrow();
    await breaker.execute(succeed);
    await expect(breaker.execute(fail)).rejects.toThrow();
    expect(breaker.state).toBe('closed');
  });

  it('half-opens after the reset timeout and closes again on a success', async () => {
    const breaker = new PublishCircuitBreaker({ threshold: 1, resetMs: 100, target: 't' });
    await expect(breaker.execute(fail)).rejects.toThrow();
    expect(breaker.state).toBe('open');
    await new Promise((r) => setTimeout(r, 150));
    let during = '';
    await expect(breaker.execute(async () => { during = breaker.state; return 'ok'; })).resolves.toBe('ok');
    expect(during).toBe('half_open');
    expect(breaker.state).toBe('closed');
  });

  it('opens again when the half-open trial fails', async () => {
    const breaker = new PublishCircuitBreaker({ threshold: 1, resetMs: 50, target: 't' });
    await expect(breaker.execute(fail)).rejects.toThrow();
    await new Promise((r) => setTimeout(r, 80));
    await expect(breaker.execute(fail)).rejects.toThrow('broker down');
    expect(breaker.state).toBe('open');
  });

  it('exports states as metric values 0 closed, 1 half_open, 2 open', () => {
    expect(CIRCUIT_STATE_VALUE).toEqual({ closed: 0, half_open: 1, open: 2 });
  });
});

describe('retryWithBackoff (seed 000 strategy A)', () => {
  it('retries retriable failures until one succeeds', async () => {
    let calls = 0;
    const result = await retryWithBackoff(async () => {
      calls += 1;
      if (calls < 3) throw new BrokerFailure('down');
      return 'sent';
    }, { baseMs: 1 });
    expect(result).toBe('sent');
    expect(calls).toBe(3);
  });

  it('gives up after the attempts and rethrows the last error', async () => {
    let calls = 0;
    await expect(retryWithBackoff(async () => { calls += 1; throw new BrokerFailure(`down ${calls}`); }, { attempts: 4, baseMs: 1 }))
      .rejects.toThrow('down 4');
    expect(calls).toBe(4);
  });

  it('does not retry what is not retriable', async () => {
    let calls = 0;
    await expect(retryWithBackoff(async () => { calls += 1; throw new TypeError('bug'); }, { baseMs: 1 })).rejects.toThrow('bug');
    expect(calls).toBe(1);
  });
});
