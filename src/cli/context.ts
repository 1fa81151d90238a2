/**
 * What every `conveyor <command>` gets: where to write, and how to load the configuration the same way the runner
 * does (file + environment). Commands return their exit code; they never call process.exit themselves.
 */
import type { ConveyorConfig } from '../config/schema.ts';

export interface CliIO {
  /** One line of normal output (stdout). */
  out(line: string): void;
  /** One line of diagnostics or progress (stderr). */
  err(line: string): void;
  /** stderr is a terminal: progress bars may redraw in place; otherwise progress is printed as plain lines. */
  readonly interactive: boolean;
}

export interface CliContext {
  readonly io: CliIO;
  /** Loads and validates the configuration (throws ConfigError). */
  loadConfig(file: string | undefined): ConveyorConfig;
}
