// An example drop-in handler: greets every user who signs up. Plain JSON in, a log line out.
import { defineHandler } from 'conveyor';

interface SignedUp {
  readonly userId: string;
  readonly name: string;
  readonly seq: number;
}

export default defineHandler<SignedUp>({
  name: 'greetings',
  topic: 'conveyor.demo.greetings',
  retry: { attempts: 3, backoffMs: 100 },
  timeoutMs: 5_000,
  async handle(message) {
    const { name, userId } = message.value;
    if (!name || !userId) throw new Error(`event at offset ${message.offset} has no name or userId`);
    // Real handlers call out to something here; the demo only proves the round trip.
  },
});
