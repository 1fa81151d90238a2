// Example drop-in handler for a RabbitMQ queue: the payments handler publishes a receipt to the exchange
// conveyor.demo for every payment it accepts (ctx.publish with broker 'rabbitmq'); this handler's queue is bound
// to that exchange and handles up to four receipts at once (no order needed: each receipt stands alone).
import { defineHandler } from 'conveyor';

interface ReceiptIssued {
  readonly paymentId: string;
  readonly account: string;
  readonly amount: number;
}

export default defineHandler<ReceiptIssued>({
  name: 'receipts',
  queue: 'conveyor.demo.receipts',
  exchange: 'conveyor.demo',
  routingKey: 'receipt.*',
  concurrency: 4,
  prefetch: 32,
  retry: { attempts: 3, backoffMs: 50, maxBackoffMs: 500 },
  timeoutMs: 5_000,
  async handle(message) {
    const receipt = message.value;
    if (!receipt.paymentId || receipt.amount <= 0) throw new Error(`receipt ${JSON.stringify(receipt)} is incomplete`);
  },
});
