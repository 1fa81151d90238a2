/**
 * The README's commands on a machine whose own Node is older than Conveyor needs (issue 10 §6): set-up installs
 * Node 24 into .toolchain/ and builds the Kafka client's native module for it, so the machine's Node 20 must not
 * load it. `node dist/runner.js` on such a Node says in one line which Node is needed (no ERR_DLOPEN_FAILED stack),
 * and the README's launcher, `npm run conveyor -- <command>`, runs the CLI on the project's Node whatever Node
 * comes first on PATH.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const RUNNER = resolve('dist/runner.js');
const PRETEND_NODE_20 = resolve('test/fixtures/old-node/pretend-node-20.mjs');

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function run(file: string, args: readonly string[], env: Record<string, string | undefined> = process.env): Promise<Run> {
  return new Promise((done) => {
    execFile(file, args, { env, timeout: 60_000 }, (error, stdout, stderr) => {
      done({ code: error ? (typeof error.code === 'number' ? error.code : null) : 0, stdout, stderr });
    });
  });
}

/** PATH without the project's toolchain: what the machine gives a user who did not put .toolchain/ on it. */
const machinePath = (process.env.PATH ?? '').split(delimiter).filter((dir) => dir !== '' && !dir.includes('.toolchain')).join(delimiter);

/** The machine's own `node` (first on that PATH) and its version, if any. */
async function machineNode(): Promise<{ path: string; version: string } | undefined> {
  for (const dir of machinePath.split(delimiter)) {
    const path = join(dir, 'node');
    if (!existsSync(path)) continue;
    const { stdout } = await run(path, ['-p', 'process.versions.node']);
    return { path, version: stdout.trim() };
  }
  return undefined;
}

const olderThan2218 = (version: string): boolean => {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  return major < 22 || (major === 22 && minor < 18);
};

/** One line on stderr naming the Node needed, nothing on stdout, exit 1: never a native-module stack. */
function expectOneLineRefusal(result: Run, version: string): void {
  expect(result.code).toBe(1);
  expect(result.stdout).toBe('');
  expect(result.stderr.trimEnd().split('\n')).toEqual([
    `conveyor: Node.js v${version} is too old: Conveyor needs Node.js >= 22.18.0 (Node 24 LTS); in this project, \`npm run conveyor -- <command>\` ` +
      'runs it on the Node 24 that `npm run setup` installs into .toolchain/',
  ]);
  expect(result.stderr).not.toMatch(/ERR_DLOPEN_FAILED|NODE_MODULE_VERSION|\n\s+at /);
}

describe('the conveyor executable on a Node older than it needs', () => {
  it('`node dist/runner.js` on Node 20: one line naming the Node needed, exit 1, no native-module stack', async () => {
    // the machine's own old Node where there is one (this project's machines ship Node 20) ...
    const machine = await machineNode();
    if (machine !== undefined && olderThan2218(machine.version)) {
      for (const args of [['--help'], ['--config', 'config/production.yaml'], ['check', '--config', 'config/production.yaml']]) {
        expectOneLineRefusal(await run(machine.path, [RUNNER, ...args]), machine.version);
      }
    }
    // ... and, on any machine, this Node made to report itself as 20.20.2
    expectOneLineRefusal(await run(process.execPath, ['--import', PRETEND_NODE_20, RUNNER, '--help']), '20.20.2');
  });

  it("`npm run conveyor -- <command>` runs on the project's Node with the machine's Node first on PATH", async () => {
    // npm of the machine's Node when it has one; else this Node's
    const machine = await machineNode();
    const path = machine !== undefined && existsSync(join(machine.path, '..', 'npm')) ? machinePath : `${resolve(process.execPath, '..')}${delimiter}${machinePath}`;
    const npm = (args: readonly string[]): Promise<Run> =>
      run('npm', ['run', '--silent', 'conveyor', '--', ...args], { ...process.env, PATH: path, npm_config_update_notifier: 'false' });

    const help = await npm(['--help']);
    expect(help.code, help.stderr).toBe(0);
    expect(help.stdout).toMatch(/^usage: conveyor run --config <file>\n/);

    const check = await npm(['check', '--config', 'config/production.yaml']);
    expect(check.code, check.stderr).toBe(0);
    expect(check.stdout.trimEnd().split('\n').at(-1)).toMatch(/^ok: the configuration and \d+ handler file\(s\) are valid$/);
  });
});
