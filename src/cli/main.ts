/**
 * `conveyor <command>`: the command-line program (commander). `run` is the default command, so
 * `node dist/runner.js --config <file>` still starts the consumer. Every command returns its exit code
 * (docs/cli.md); a bad command line is 64.
 */
import { Command, CommanderError, Help } from 'commander';
import { loadConfig } from '../config/load.ts';
import { registerCheck } from './check.ts';
import type { CliContext, CliIO } from './context.ts';
import { registerDlq } from './dlq.ts';
import { EXIT_OK, EXIT_USAGE, reportFailure } from './exit-codes.ts';
import { registerLag } from './lag.ts';
import { registerOffsets } from './offsets.ts';
import { registerRun } from './run.ts';

const ROOT_USAGE = `usage: conveyor run --config <file>
       node dist/runner.js --config <file>
       conveyor <command> [options]        (conveyor <command> --help: its options)`;

const HELP_FLAGS = new Set(['-h', '--help', '-V', '--version']);

/** The real process: stdout, stderr, and the configuration from a file plus the environment. */
export function processContext(): CliContext {
  const io: CliIO = {
    out: (line) => process.stdout.write(`${line}\n`),
    err: (line) => process.stderr.write(`${line}\n`),
    interactive: process.stderr.isTTY === true,
  };
  return { io, loadConfig: (file) => loadConfig(file === undefined ? {} : { file }) };
}

/** Without a command (nothing, or options first) the command is `run`: `conveyor --config f` = `conveyor run --config f`. */
export function withDefaultCommand(argv: readonly string[]): string[] {
  const first = argv[0];
  if (first === undefined || (first.startsWith('-') && !HELP_FLAGS.has(first))) return ['run', ...argv];
  return [...argv];
}

export function buildProgram(ctx: CliContext, version = '0.0.0'): Command {
  const program = new Command('conveyor');
  program
    .description(
      'Conveyor runs drop-in handler files against Kafka and RabbitMQ (run), and the operator tools around it: ' +
        'check a configuration, watch lag, inspect and replay dead letters, reset consumer group offsets.\n\n' +
        'Every command, its output and exit codes: docs/cli.md',
    )
    .version(version, '-V, --version', 'print the version')
    .helpOption('-h, --help', 'show help')
    .exitOverride()
    .showHelpAfterError()
    .configureOutput({
      writeOut: (text) => ctx.io.out(text.replace(/\n$/, '')),
      writeErr: (text) => ctx.io.err(text.replace(/\n$/, '')),
    })
    .configureHelp({
      formatHelp: (cmd, helper) => {
        const text = Help.prototype.formatHelp.call(helper, cmd, helper);
        // the root's first line names the default command: `conveyor --config <file>` is `conveyor run`
        if (cmd === program) return text.replace(/^Usage:[^\n]*/, ROOT_USAGE);
        return text.replace(/^Usage:/, 'usage:');
      },
    });
  registerRun(program, ctx);
  registerCheck(program, ctx);
  registerLag(program, ctx);
  registerDlq(program, ctx);
  registerOffsets(program, ctx);
  return program;
}

/** Parses the command line, runs the command, and resolves with the process's exit code. */
export async function main(argv: readonly string[], ctx: CliContext = processContext(), version?: string): Promise<number> {
  const program = buildProgram(ctx, version);
  process.exitCode = undefined;
  try {
    await program.parseAsync(withDefaultCommand(argv), { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      return err.code === 'commander.helpDisplayed' || err.code === 'commander.version' ? EXIT_OK : EXIT_USAGE;
    }
    return reportFailure(ctx.io, argv[0] ?? 'run', err);
  }
  const code = process.exitCode;
  return typeof code === 'number' ? code : Number(code ?? EXIT_OK);
}
