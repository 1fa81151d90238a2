/**
 * `conveyor check [--config <file>] [--json]`: validates the configuration and the handler files exactly as `run`
 * would, without connecting to anything, and prints the resolved configuration (secrets redacted) and what each
 * handler consumes. Exit 0 when both are sound, 78 otherwise (every problem listed).
 */
import { relative } from 'node:path';
import type { Command } from 'commander';
import { stringify } from 'yaml';
import { describeConfig } from '../config/load.ts';
import type { ConveyorConfig } from '../config/schema.ts';
import { discoverHandlers, type HandlerSpec } from '../handlers/discover.ts';
import type { CliContext } from './context.ts';
import { EXIT_OK, settle } from './exit-codes.ts';
import { formatTable } from './text-table.ts';

interface CheckOptions {
  readonly config?: string;
  readonly json?: boolean;
}

export function registerCheck(program: Command, ctx: CliContext): void {
  program
    .command('check')
    .summary('validate the configuration and handler files; print the resolved configuration')
    .description(
      'Loads the configuration (file + environment) and imports every handler file as `run` would, without connecting ' +
        'to any broker. Prints the resolved configuration with secrets redacted and a table of the handlers.\n\n' +
        'Exit codes: 0 valid, 64 bad command line, 78 invalid configuration or handler files (every problem listed).',
    )
    .option('-c, --config <file>', 'configuration file (YAML or JSON); environment variables override it')
    .option('--json', 'print one JSON document: { config, handlers }')
    .action((options: CheckOptions) => settle(ctx.io, 'check', () => check(options, ctx)));
}

/** A handler as `check` shows it. */
export interface HandlerSummary {
  readonly name: string;
  readonly broker: string;
  /** Kafka topics, or the RabbitMQ queue. */
  readonly consumes: readonly string[];
  /** RabbitMQ: the exchange binding, when declared. */
  readonly binding?: { readonly exchange: string; readonly routingKey: string };
  /** Kafka consumer group; absent for RabbitMQ handlers. */
  readonly group?: string;
  /** Which messages may run at once, and how many runs at once in one process. */
  readonly ordering: string;
  readonly concurrency: number;
  readonly retries: number;
  readonly timeoutMs: number;
  /** Dead-letter topics (Kafka) or queues (RabbitMQ); empty: retries forever. */
  readonly deadLetter: readonly string[];
  readonly file: string;
}

export function summarizeHandler(spec: HandlerSpec, cwd = process.cwd()): HandlerSummary {
  const deadLetter = [...new Set(spec.topics.map((t) => spec.deadLetterTopicFor(t)).filter((d): d is string => d !== null))];
  const file = relative(cwd, spec.file);
  return {
    name: spec.name,
    broker: spec.broker,
    consumes: spec.topics,
    ...(spec.queue?.exchange !== undefined ? { binding: { exchange: spec.queue.exchange, routingKey: spec.queue.routingKey } } : {}),
    ...(spec.broker === 'kafka' ? { group: spec.group } : {}),
    ordering: spec.ordering,
    concurrency: spec.concurrency,
    retries: spec.maxRetries,
    timeoutMs: spec.timeoutMs,
    deadLetter,
    file: file.startsWith('..') ? spec.file : file,
  };
}

export function handlerTable(handlers: readonly HandlerSummary[]): string[] {
  return formatTable(handlers, [
    { header: 'NAME', value: (h) => h.name },
    { header: 'BROKER', value: (h) => h.broker },
    {
      header: 'CONSUMES',
      value: (h) => (h.broker === 'rabbitmq' ? `queue ${h.consumes.join(', ')}${h.binding ? ` ← ${h.binding.exchange} (${h.binding.routingKey})` : ''}` : h.consumes.join(', ')),
    },
    { header: 'GROUP', value: (h) => h.group ?? '-' },
    { header: 'ORDERING', value: (h) => h.ordering },
    { header: 'CONCURRENCY', value: (h) => String(h.concurrency), right: true },
    { header: 'RETRIES', value: (h) => String(h.retries), right: true },
    { header: 'TIMEOUT', value: (h) => `${h.timeoutMs} ms`, right: true },
    { header: 'DEAD LETTERS', value: (h) => (h.deadLetter.length > 0 ? h.deadLetter.join(', ') : 'none: retries forever') },
    { header: 'FILE', value: (h) => h.file },
  ]);
}

async function check(options: CheckOptions, ctx: CliContext): Promise<number> {
  const config: ConveyorConfig = ctx.loadConfig(options.config);
  const specs = await discoverHandlers(config.handlers.directory, config);
  const shown = describeConfig(config);
  const handlers = specs.map((s) => summarizeHandler(s));
  if (options.json) {
    ctx.io.out(JSON.stringify({ config: shown, handlers }, null, 2));
    return EXIT_OK;
  }
  const source = options.config === undefined ? 'defaults + environment' : `${options.config} + environment`;
  ctx.io.out(`# configuration (${source}), secrets redacted`);
  for (const line of stringify(shown).trimEnd().split('\n')) ctx.io.out(line);
  ctx.io.out('');
  ctx.io.out(`# handlers (${handlers.length}) in ${config.handlers.directory}`);
  for (const line of handlerTable(handlers)) ctx.io.out(line);
  ctx.io.out('');
  ctx.io.out(`ok: the configuration and ${handlers.length} handler file(s) are valid`);
  return EXIT_OK;
}
