/**
 * `conveyor lag`: consumer lag per group and partition, as a table. (Placeholder: the lag monitor's author
 * replaces this with the real command.)
 */
import type { Command } from 'commander';
import type { CliContext } from './context.ts';

export function registerLag(program: Command, ctx: CliContext): void {
  program
    .command('lag')
    .description('show consumer lag per group and partition (not implemented yet)')
    .option('-c, --config <file>', 'configuration file (YAML or JSON)')
    .action(() => {
      ctx.io.err('conveyor lag: not implemented yet');
      process.exitCode = 70;
    });
}
