// Example drop-in handler that fails sometimes, to show retries and the dead-letter topic:
// - a payment marked `flaky` fails on its first attempt (a timeout at the bank, say) and succeeds on retry;
// - a negative amount can never succeed: NonRetryableError sends it straight to conveyor.demo.payments.dlq;
// - a payment to a `blocked` account fails every attempt and is dead-lettered after the retries.
// Each accepted payment publishes a receipt to RabbitMQ (exchange conveyor.demo, see receipts.ts); the runner sends
// it before the payment's offset can be committed, and never for an attempt that failed.
import { defineHandler, NonRetryableError } from 'conveyor';

interface PaymentRequested {
  readonly paymentId: string;
  readonly account: string;
  readonly amount: number;
  readonly flaky?: boolean;
}

export default defineHandler<PaymentRequested>({
  name: 'payments',
  topic: 'conveyor.demo.payments',
  retry: { attempts: 3, backoffMs: 20, maxBackoffMs: 200 },
  timeoutMs: 5_000,
  async handle(message, ctx) {
    const payment = message.value;
    if (payment.amount < 0) throw new NonRetryableError(`payment ${payment.paymentId} has a negative amount`);
    if (payment.account === 'blocked') throw new Error(`account of payment ${payment.paymentId} is blocked`);
    if (payment.flaky && ctx.attempt === 1) throw new Error(`bank timed out for payment ${payment.paymentId}`);
    ctx.publish(
      'conveyor.demo',
      { key: 'receipt.issued', value: { paymentId: payment.paymentId, account: payment.account, amount: payment.amount } },
      { broker: 'rabbitmq' },
    );
  },
});
