import { describe, expect, it } from 'vitest';
import type { CliContext, CliIO } from '../../src/cli/context.ts';
import { exitCodeFor } from '../../src/cli/exit-codes.ts';
import { main, withDefaultCommand } from '../../src/cli/main.ts';
import { ProgressLines } from '../../src/cli/progress.ts';
import { formatTable } from '../../src/cli/text-table.ts';
import { BrokerFailure, ConveyorError } from '../../src/failure/errors.ts';

describe('progress on a non-terminal stderr', () => {
  it('prints at most one line a second, and the final count when it printed anything', () => {
    let now = 0;
    const lines: string[] = [];
    const progress = new ProgressLines((l) => lines.push(l), 'replayed', 500, { now: () => now });
    for (let done = 1; done <= 500; done++) {
      now = done * 10; // 5 s in all
      progress.update(done);
    }
    progress.stop();
    expect(lines).toEqual(['replayed 100/500', 'replayed 200/500', 'replayed 300/500', 'replayed 400/500', 'replayed 500/500']);
  });

  it('prints nothing for an operation done within the first second', () => {
    let now = 0;
    const lines: string[] = [];
    const progress = new ProgressLines((l) => lines.push(l), 'scanned orders.dlq', 3, { now: () => now });
    now = 400;
    progress.increment(3);
    progress.stop();
    expect(lines).toEqual([]);
  });
});

describe('tables', () => {
  it('pads columns, right-aligns numbers, cuts long cells', () => {
    const lines = formatTable(
      [
        { name: 'orders', n: 7, why: 'a\nb' },
        { name: 'x', n: 1200, why: 'a very long reason indeed' },
      ],
      [
        { header: 'NAME', value: (r) => r.name },
        { header: 'N', value: (r) => String(r.n), right: true },
        { header: 'WHY', value: (r) => r.why, maxWidth: 10 },
      ],
    );
    expect(lines).toEqual(['NAME       N  WHY', 'orders     7  a b', 'x       1200  a very lo…']);
  });
});

describe('exit codes', () => {
  it('follow the error code', () => {
    expect(exitCodeFor(new ConveyorError('events.dlq.not_found', 'x'))).toBe(2);
    expect(exitCodeFor(new ConveyorError('events.group.active', 'x'))).toBe(3);
    expect(exitCodeFor(new ConveyorError('events.retention.exceeded', 'x'))).toBe(4);
    expect(exitCodeFor(new ConveyorError('events.offset.out_of_range', 'x'))).toBe(65);
    expect(exitCodeFor(new BrokerFailure('down'))).toBe(69);
    expect(exitCodeFor(new Error('anything else'))).toBe(1);
  });
});

describe('the command line', () => {
  function capture(): { ctx: CliContext; out: string[]; err: string[] } {
    const out: string[] = [];
    const err: string[] = [];
    const io: CliIO = { out: (l) => out.push(l), err: (l) => err.push(l), interactive: false };
    return { ctx: { io, loadConfig: () => { throw new Error('not used'); } }, out, err };
  }

  it('without a command (nothing, or options first) runs `run`', () => {
    expect(withDefaultCommand([])).toEqual(['run']);
    expect(withDefaultCommand(['--config', 'c.yaml'])).toEqual(['run', '--config', 'c.yaml']);
    expect(withDefaultCommand(['-c', 'c.yaml'])).toEqual(['run', '-c', 'c.yaml']);
    expect(withDefaultCommand(['--help'])).toEqual(['--help']);
    expect(withDefaultCommand(['dlq', 'list'])).toEqual(['dlq', 'list']);
  });

  it('--help names the default command first and lists every command', async () => {
    const { ctx, out } = capture();
    expect(await main(['--help'], ctx)).toBe(0);
    const text = out.join('\n');
    expect(text).toMatch(/^usage: conveyor run --config <file>\n/);
    for (const command of ['run', 'check', 'lag', 'dlq', 'offsets']) expect(text).toMatch(new RegExp(`\\n  ${command}\\b`));
  });

  it('an unknown command or option is 64, with the usage on stderr', async () => {
    const unknown = capture();
    expect(await main(['frobnicate'], unknown.ctx)).toBe(64);
    expect(unknown.err.join('\n')).toMatch(/^error: unknown command 'frobnicate'/);
    const option = capture();
    expect(await main(['--no-such-option'], option.ctx)).toBe(64);
    expect(option.err.join('\n')).toMatch(/usage: conveyor run --config <file>/);
  });

  it('--version prints the version', async () => {
    const { ctx, out } = capture();
    expect(await main(['--version'], ctx, '1.2.3')).toBe(0);
    expect(out).toEqual(['1.2.3']);
  });
});
