/**
 * The circuit breaker that guards publishing (seed 001): closed → open after `threshold` consecutive failures,
 * open → half_open after `resetMs`, half_open → closed on a success (or open again on a failure). While open,
 * a publish fails at once with events.broker.unavailable and the state.
 *
 * Built on cockatiel's ConsecutiveBreaker: a maintained, dependency-free resilience library whose breaker counts
 * consecutive failures exactly as the seed describes (opossum, the other common choice, opens on an error
 * percentage over a rolling window instead).
 */
import { BrokenCircuitError, CircuitState, ConsecutiveBreaker, circuitBreaker, handleAll, type CircuitBreakerPolicy } from 'cockatiel';
import type { ConveyorConfig } from '../config/schema.ts';
import { BrokerFailure } from '../failure/errors.ts';
import type { Logger } from '../ops/logger.ts';

export type CircuitStateName = 'closed' | 'half_open' | 'open';

/** Prometheus value of a state, as seed 001 numbers them. */
export const CIRCUIT_STATE_VALUE: Readonly<Record<CircuitStateName, number>> = { closed: 0, half_open: 1, open: 2 };

export interface CircuitBreakerOptions {
  /** Consecutive failures that open the circuit. */
  readonly threshold: number;
  /** How long the circuit stays open before one call may try (half_open). */
  readonly resetMs: number;
  /** What the breaker guards, for the error message (e.g. "Kafka at 127.0.0.1:9092"). */
  readonly target: string;
}

export class PublishCircuitBreaker {
  private readonly policy: CircuitBreakerPolicy;
  private readonly target: string;

  constructor(options: CircuitBreakerOptions) {
    this.target = options.target;
    this.policy = circuitBreaker(handleAll, {
      halfOpenAfter: options.resetMs,
      breaker: new ConsecutiveBreaker(options.threshold),
    });
  }

  get state(): CircuitStateName {
    switch (this.policy.state) {
      case CircuitState.Closed:
        return 'closed';
      case CircuitState.HalfOpen:
        return 'half_open';
      default:
        return 'open';
    }
  }

  /** Called on every state change. */
  onStateChange(listener: (state: CircuitStateName) => void): void {
    this.policy.onStateChange(() => listener(this.state));
  }

  /** Runs `action` through the breaker; while open, fails at once with events.broker.unavailable. */
  async execute<T>(action: () => Promise<T>): Promise<T> {
    try {
      return await this.policy.execute(action);
    } catch (err) {
      if (err instanceof BrokenCircuitError) {
        throw new BrokerFailure(
          `${this.target} is unavailable: the circuit breaker is ${this.state} after repeated failures; publishing fails at once until it half-opens`,
          { cause: err, circuitState: this.state },
        );
      }
      throw err;
    }
  }
}

/** The breaker a publisher gets from the configuration (`publish.circuitBreaker*`), logging every state change. */
export function publishBreaker(config: ConveyorConfig, target: string, logger?: Logger): PublishCircuitBreaker {
  const breaker = new PublishCircuitBreaker({
    threshold: config.publish.circuitBreakerThreshold,
    resetMs: config.publish.circuitBreakerResetSeconds * 1000,
    target,
  });
  if (logger) breaker.onStateChange((state) => logger.warn({ circuitState: state, target }, `publish circuit breaker ${state}`));
  return breaker;
}
