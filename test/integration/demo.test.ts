/** `npm run demo`'s program, run as a user would after the build: it must finish the round trip and exit 0. */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { describe, expect, inject, it } from 'vitest';

const run = promisify(execFile);

describe('the demo', () => {
  it('produces, handles with handlers/greetings.ts, commits and reports the round trip', async () => {
    expect(existsSync('dist/demo/round-trip.js'), 'build first: npm test builds before it tests').toBe(true);
    const { stdout } = await run(process.execPath, ['dist/demo/round-trip.js'], {
      env: { ...process.env, KAFKA_BROKERS: inject('kafkaBrokers') },
      timeout: 80_000,
    });
    expect(stdout).toMatch(/handler\s+greetings from .*handlers\/greetings\.ts/);
    expect(stdout).toMatch(/handled\s+30 events of this run/);
    expect(stdout).toMatch(/per-partition order kept/);
    expect(stdout).toMatch(/round trip ok/);
  });
});
