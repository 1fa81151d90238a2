#!/usr/bin/env node
/**
 * The `conveyor` executable (package.json's bin; `node dist/runner.js`). Without a command it is `conveyor run`:
 * `node dist/runner.js --config <file>` runs the handlers until SIGTERM or SIGINT. The commands: src/cli/main.ts
 * and docs/cli.md.
 *
 * First of all it checks the Node.js that runs it against package.json's `engines`: the Kafka client's native
 * module is built for the project's Node (24), and an older Node must get one line saying what it needs, never a
 * native-module stack. ESM hoists static imports above any code, so this file imports only node:fs statically and
 * everything else (the CLI, and through it the native client) dynamically, after the check.
 */
import { readFileSync } from 'node:fs';

interface PackageJson {
  readonly version?: string;
  readonly engines?: { readonly node?: string };
}

function packageJson(): PackageJson {
  try {
    return JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as PackageJson;
  } catch {
    return {};
  }
}

/** `>=22.18` → [22, 18, 0]; the minimum this code was written for when package.json does not say. */
function minimumNode(engines: string | undefined): [number, number, number] {
  const match = /^\s*>=\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?\s*$/.exec(engines ?? '');
  return match ? [Number(match[1]), Number(match[2] ?? 0), Number(match[3] ?? 0)] : [22, 18, 0];
}

function isAtLeast(version: string, minimum: readonly number[]): boolean {
  const parts = version.split('.').map(Number);
  for (let i = 0; i < minimum.length; i++) {
    const have = parts[i] ?? 0;
    if (have !== minimum[i]) return have > minimum[i]!;
  }
  return true;
}

const HOW = 'in this project, `npm run conveyor -- <command>` runs it on the Node 24 that `npm run setup` installs into .toolchain/';

const pkg = packageJson();
const minimum = minimumNode(pkg.engines?.node);
if (!isAtLeast(process.versions.node, minimum)) {
  process.stderr.write(`conveyor: Node.js ${process.version} is too old: Conveyor needs Node.js >= ${minimum.join('.')} (Node 24 LTS); ${HOW}\n`);
  process.exit(1);
}

import('./cli/main.ts')
  .then(({ main }) => main(process.argv.slice(2), undefined, pkg.version ?? '0.0.0'))
  .then(
    (code) => process.exit(code),
    (err: unknown) => {
      if ((err as { code?: unknown } | null)?.code === 'ERR_DLOPEN_FAILED') {
        // the native client was built for another Node (another NODE_MODULE_VERSION): one line, not its stack
        process.stderr.write(
          `conveyor: the Kafka client's native module was built for another Node.js than this ${process.version}; ${HOW}, or \`npm run setup\` rebuilds it for this Node\n`,
        );
      } else {
        console.error('conveyor: failed', err);
      }
      process.exit(1);
    },
  );
