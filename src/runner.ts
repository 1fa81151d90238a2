#!/usr/bin/env node
/**
 * `node dist/runner.js --config <file>`: the long-running consumer process.
 * The foundation only ships the entry point; the runtime (handler discovery, lanes, pool, commit) lands next.
 */
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { config: { type: 'string' } }, allowPositionals: true });
if (!values.config) {
  console.error('usage: node dist/runner.js --config <file>');
  process.exit(64);
}
console.error(`conveyor: the runtime is not built yet (config ${values.config}); see the open runtime issue`);
process.exit(70);
