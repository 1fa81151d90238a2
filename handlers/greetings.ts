// Example drop-in handler: greets every user who signs up. Plain JSON in, a log line out.
import { defineHandler } from 'conveyor';

interface SignedUp {
  readonly userId: string;
  readonly name: string;
}

export default defineHandler<SignedUp>({
  name: 'greetings',
  topic: 'conveyor.demo.greetings',
  timeoutMs: 5_000,
  async handle(message, ctx) {
    const { name, userId } = message.value;
    if (!name || !userId) throw new Error(`event at offset ${message.offset} has no name or userId`);
    ctx.log.debug({ userId }, `welcome, ${name}`);
  },
});
