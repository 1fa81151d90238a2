import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { classifyFailure } from '../../src/failure/classify.ts';
import { createLogger } from '../../src/ops/logger.ts';
import { LOG_ERROR_TEXT_LIMIT } from '../../src/failure/text-limits.ts';

function capture(): { lines: string[]; stream: Writable } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  return { lines, stream };
}

/** The keys of a JSON object text at its top level, in order, duplicates kept (JSON.parse would hide them). */
function topLevelKeys(line: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === '"') {
      let j = i + 1;
      while (line[j] !== '"') j += line[j] === '\\' ? 2 : 1;
      if (depth === 1 && line[j + 1] === ':') keys.push(line.slice(i + 1, j));
      i = j;
    } else if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') depth--;
  }
  return keys;
}

describe('logged error texts are capped', () => {
  it('a handler error with a 5 MB message makes a line of a few KiB, every text at most LOG_ERROR_TEXT_LIMIT', async () => {
    const { lines, stream } = capture();
    const log = createLogger('test', 'info', stream);
    const error = classifyFailure({ kind: 'receiver', name: 'Error', message: 'x'.repeat(5 * 1024 * 1024), stack: `Error: ${'x'.repeat(5 * 1024 * 1024)}\n    at handle` }, { topic: 't', offset: '1' });
    log.warn({ offset: '1', err: error }, 'attempt 1 failed, retrying in 20 ms');
    await new Promise((r) => setImmediate(r));
    expect(lines).toHaveLength(1);
    const line = lines[0]!;
    expect(line.length).toBeLessThan(4 * LOG_ERROR_TEXT_LIMIT);
    const parsed = JSON.parse(line) as { err: { message: string; stack: string; code: string; type: string } };
    expect(parsed.err.message.length).toBeLessThanOrEqual(LOG_ERROR_TEXT_LIMIT);
    expect(parsed.err.stack.length).toBeLessThanOrEqual(LOG_ERROR_TEXT_LIMIT);
    expect(parsed.err.message).toMatch(/^handler threw Error: x+… \[truncated: \d+ characters in all\]$/);
    expect(parsed.err).toMatchObject({ code: 'conveyor.handler.failed', type: 'ReceiverError' });
    const keys = topLevelKeys(line);
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('short errors are logged as they are', async () => {
    const { lines, stream } = capture();
    createLogger('test', 'info', stream).error({ err: new Error('short') }, 'failed');
    await new Promise((r) => setImmediate(r));
    expect(JSON.parse(lines[0]!)).toMatchObject({ err: { message: 'short', type: 'Error' } });
  });
});
