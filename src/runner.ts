#!/usr/bin/env node
/**
 * The `conveyor` executable (package.json's bin; `node dist/runner.js`). Without a command it is `conveyor run`:
 * `node dist/runner.js --config <file>` runs the handlers until SIGTERM or SIGINT. The commands: src/cli/main.ts
 * and docs/cli.md.
 */
import { readFileSync } from 'node:fs';
import { main } from './cli/main.ts';

function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version?: string }).version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

main(process.argv.slice(2), undefined, packageVersion()).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error('conveyor: failed', err);
    process.exit(1);
  },
);
