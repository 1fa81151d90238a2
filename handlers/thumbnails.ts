// Example drop-in handler that is CPU-heavy: each image "resize" burns about a millisecond of CPU.
// It runs on the worker pool, so it does not block the consumer and uses every core.
import { createHash } from 'node:crypto';
import { defineHandler } from 'conveyor';

interface ImageUploaded {
  readonly imageId: string;
  readonly width: number;
  readonly height: number;
}

export default defineHandler<ImageUploaded>({
  name: 'thumbnails',
  topic: 'conveyor.demo.images',
  timeoutMs: 10_000,
  async handle(message) {
    let digest = Buffer.from(message.value.imageId);
    for (let i = 0; i < 2_000; i++) digest = createHash('sha256').update(digest).digest();
    if (digest.length !== 32) throw new Error('unreachable');
  },
});
