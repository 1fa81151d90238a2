/**
 * Loads the configuration once, at start-up: schema defaults, then a JSON or YAML file, then the environment,
 * each overriding the one before. Every problem is collected, one line per bad key, and thrown together as one
 * ConfigError; the CLI exits with EXIT_CONFIG (78).
 *
 * We read and parse the file ourselves and hand convict a plain object rather than using convict's loadFile:
 * loadFile falls back to JSON.parse for any unknown extension, cannot tell a missing file from a syntax error
 * from a bad merge, and its merge throws a TypeError on a mapping nested two deep under a setting.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { extname } from 'node:path';
import convict from 'convict';
import { parse as parseYaml } from 'yaml';
import { ConfigError, EXIT_CONFIG } from '../failure/errors.ts';
import { isUrlText, redactSecretUrl, redactUrl } from '../ops/redact.ts';
import { budgetProblem, poolThreads } from './memory-budget.ts';
import { conveyorSchema, describeValue, isSettingNode, settings } from './schema.ts';
import type { ConveyorConfig, Setting } from './schema.ts';

export { EXIT_CONFIG };

export interface LoadConfigOptions {
  /** A `.json`, `.yaml` or `.yml` file; without one, defaults and environment only. */
  file?: string;
  /** Environment variables to read; defaults to process.env. */
  env?: Record<string, string | undefined>;
}

const DOCS = 'docs/configuration.md';

/** Resolves and validates the configuration, or throws ConfigError listing every problem. */
export function loadConfig(options: LoadConfigOptions = {}): ConveyorConfig {
  // A fresh instance per call: nothing leaks between loads. `args: []` keeps convict away from process.argv.
  const config = convict(conveyorSchema, { env: options.env ?? process.env, args: [] });
  const problems = new Problems();
  if (options.file !== undefined) {
    // load() merges the file, then re-applies the environment on top of it.
    config.load(knownSettings(readSettingsFile(options.file), conveyorSchema, '', problems));
  }
  const resolved = config.getProperties();
  for (const setting of settings) {
    const problem = problemOf(setting, valueAt(resolved, setting.path));
    if (problem !== undefined) problems.add(setting, problem);
  }
  checkCrossField(resolved, problems);
  if (problems.lines.length > 0) throw new ConfigError(problems.lines);

  try {
    // Our checks above cover everything convict checks; this only guards against the two drifting apart.
    config.validate({ allowed: 'strict' });
  } catch (error) {
    throw new ConfigError(String((error as Error).message).split('\n'));
  }
  return resolved;
}

/**
 * The resolved configuration as a plain object that may be printed or logged (`conveyor check`): secret settings
 * are `***` when set, and secret URLs keep everything but their password.
 */
export function describeConfig(config: ConveyorConfig): Record<string, unknown> {
  const out = structuredClone(config) as unknown as Record<string, Record<string, unknown>>;
  for (const setting of settings) {
    if (!setting.sensitive) continue;
    const [section, key] = setting.path.split('.') as [string, string];
    const value = out[section]![key];
    if (typeof value !== 'string' || value === '') continue;
    out[section]![key] = isUrlText(value) ? redactSecretUrl(value) : '***';
  }
  return out;
}

/**
 * The setting's rejection of `value`, if any. A secret setting's rejection shows the value only without its
 * secrets (an AMQP URL without its password, any other URL without its path and query, which may hold a token),
 * or only its kind: a password given as a YAML list or mapping must not be echoed into the error.
 */
function problemOf(setting: Setting, value: unknown): string | undefined {
  const problem = setting.check(value);
  if (problem === undefined || !setting.sensitive) return problem;
  return `must be ${setting.expected}; got ${describeSecret(value)}`;
}

function describeSecret(value: unknown): string {
  // not a URL (AMQP_URL=host:5672): shown without any `user:password@` in it
  if (typeof value === 'string') return describeValue(isUrlText(value) ? redactSecretUrl(value) : redactUrl(value));
  if (value === null || value === undefined) return describeValue(value);
  const kind = Array.isArray(value) ? 'a list' : typeof value === 'object' ? 'a mapping' : `a ${typeof value}`;
  return `${kind} (not shown: the setting is secret)`;
}

const PARSERS: Readonly<Record<string, { readonly language: string; readonly parse: (text: string) => unknown }>> = {
  '.json': { language: 'JSON', parse: (text) => JSON.parse(text) as unknown },
  '.yaml': { language: 'YAML', parse: (text) => parseYaml(text) as unknown },
  '.yml': { language: 'YAML', parse: (text) => parseYaml(text) as unknown },
};

/** The file's top-level mapping; any failure is a single problem naming the file. */
function readSettingsFile(file: string): Record<string, unknown> {
  const parser = PARSERS[extname(file).toLowerCase()];
  if (parser === undefined) throw new ConfigError([`${file}: a configuration file must end in .json, .yaml or .yml`]);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError([`${file}: cannot read the configuration file: ${readFailure(error)}`]);
  }
  if (text.trim() === '') return {};
  let parsed: unknown;
  try {
    parsed = parser.parse(text);
  } catch (error) {
    // YAML errors continue with a multi-line excerpt of the source; the first line names line and column.
    const reason = String((error as Error).message).split('\n')[0]?.replace(/:$/, '');
    throw new ConfigError([`${file}: not valid ${parser.language}: ${reason}`]);
  }
  if (parsed === null || parsed === undefined) return {}; // only comments
  if (!isMapping(parsed)) {
    throw new ConfigError([`${file}: must hold a mapping of settings at the top level; got ${describeValue(parsed)}`]);
  }
  return parsed;
}

function readFailure(error: unknown): string {
  switch ((error as NodeJS.ErrnoException).code) {
    case 'ENOENT':
      return 'no such file';
    case 'EACCES':
      return 'permission denied';
    case 'EISDIR':
      return 'it is a directory';
    default:
      return String((error as Error).message);
  }
}

/**
 * The parts of `raw` that match the schema, ready for convict; everything else becomes a problem. Only this
 * object reaches convict, so its merge never meets a key or a shape it does not expect.
 */
function knownSettings(raw: Record<string, unknown>, section: object, prefix: string, problems: Problems): Record<string, unknown> {
  const known: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(raw)) {
    const path = prefix === '' ? key : `${prefix}.${key}`;
    const node = Object.hasOwn(section, key) ? (section as Record<string, object>)[key] : undefined;
    if (node === undefined) {
      problems.lines.push(unknownKeyProblem(path, key, section));
    } else if (isSettingNode(node)) {
      const setting = settingAt(path);
      if (typeof value === 'object' && value !== null) {
        problems.add(setting, problemOf(setting, value) ?? `must not be a ${Array.isArray(value) ? 'list' : 'mapping'}`);
      } else {
        known[key] = asEnvironmentWouldGiveIt(setting, value);
      }
    } else if (value === null) {
      // An empty section (every setting under it commented out) sets nothing.
    } else if (isMapping(value)) {
      known[key] = knownSettings(value, node, path, problems);
    } else {
      problems.lines.push(`${path}: must be a mapping of settings (see ${DOCS}); got ${describeValue(value)}`);
    }
  }
  return known;
}

/**
 * A file may write `acks: 1` or `enableIdempotence: 0`, which YAML and JSON parse as numbers. Text and boolean
 * settings read them as the environment variable's text would be read, so both sources accept the same values.
 */
function asEnvironmentWouldGiveIt(setting: Setting, value: unknown): unknown {
  const wanted = typeof setting.default;
  const given = typeof value;
  if ((wanted === 'string' || wanted === 'boolean') && (given === 'number' || given === 'boolean') && wanted !== given) {
    return String(value);
  }
  return value;
}

function unknownKeyProblem(path: string, key: string, section: object): string {
  const problem = `${path}: not a known setting (see ${DOCS})`;
  if (key.includes('.') && (settingsByPath.has(path) || settings.some((s) => s.path.startsWith(`${path}.`)))) {
    const parts = path.split('.');
    const nested = parts.slice(0, -1).reduceRight((inner, part) => `${part}: { ${inner} }`, `${parts.at(-1)}: …`);
    return `${problem}; write it nested, ${nested}, not as one dotted key`;
  }
  // Same letters in another case or separator style (bootstrap_servers), or a typo of at most two letters.
  const squash = (name: string): string => name.toLowerCase().replace(/[._-]/g, '');
  const distances = Object.keys(section).map((candidate) => ({ candidate, distance: editDistance(squash(candidate), squash(key)) }));
  const near = distances.filter(({ distance }) => distance <= 2).sort((a, b) => a.distance - b.distance)[0]?.candidate;
  if (near === undefined) return problem;
  const prefix = path.slice(0, path.length - key.length);
  return `${problem}; did you mean ${prefix}${near}?`;
}

/** Levenshtein distance: insertions, deletions and substitutions needed to turn `a` into `b`. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i += 1) {
    const current = [i];
    for (let j = 1; j <= b.length; j += 1) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

/** Rules that relate two settings; each is checked only when both settings are valid on their own. */
function checkCrossField(config: ConveyorConfig, problems: Problems): void {
  const { backoffBaseSeconds, backoffMaxSeconds } = config.retry;
  if (problems.allValid('retry.backoffBaseSeconds', 'retry.backoffMaxSeconds') && backoffMaxSeconds < backoffBaseSeconds) {
    problems.add(settingAt('retry.backoffMaxSeconds'), `must be at least retry.backoffBaseSeconds (${backoffBaseSeconds}); got ${backoffMaxSeconds}`);
  }
  const { infoSeconds, warningSeconds, criticalSeconds } = config.lag;
  if (problems.allValid('lag.infoSeconds', 'lag.warningSeconds') && warningSeconds < infoSeconds) {
    problems.add(settingAt('lag.warningSeconds'), `must be at least lag.infoSeconds (${infoSeconds}); got ${warningSeconds}`);
  }
  if (problems.allValid('lag.warningSeconds', 'lag.criticalSeconds') && criticalSeconds < warningSeconds) {
    problems.add(settingAt('lag.criticalSeconds'), `must be at least lag.warningSeconds (${warningSeconds}); got ${criticalSeconds}`);
  }
  if (problems.allValid('memory.budgetMb', 'pool.size')) {
    const problem = budgetProblem(config.memory.budgetMb, poolThreads(config, availableParallelism()));
    if (problem !== undefined) problems.add(settingAt('memory.budgetMb'), problem);
  }
  const { securityProtocol, saslUsername, saslPassword } = config.kafka;
  if (problems.allValid('kafka.securityProtocol', 'kafka.saslUsername', 'kafka.saslPassword') && securityProtocol.startsWith('sasl_')) {
    // the password itself is never shown, only whether it is there
    if (saslUsername === '') problems.add(settingAt('kafka.saslUsername'), `must be set when kafka.securityProtocol is ${securityProtocol}`);
    if (saslPassword === '') problems.add(settingAt('kafka.saslPassword'), `must be set when kafka.securityProtocol is ${securityProtocol}`);
  }
}

/** Problem lines in the order found, and which settings they were about. */
class Problems {
  readonly lines: string[] = [];
  readonly #invalid = new Set<string>();

  /** `kafka.acks (KAFKA_ACKS): must be …`: the line names where the user can fix it. */
  add(setting: Setting, problem: string): void {
    this.lines.push(`${setting.env === undefined ? setting.path : `${setting.path} (${setting.env})`}: ${problem}`);
    this.#invalid.add(setting.path);
  }

  allValid(...paths: readonly string[]): boolean {
    return paths.every((path) => !this.#invalid.has(path));
  }
}

const settingsByPath: ReadonlyMap<string, Setting> = new Map(settings.map((setting) => [setting.path, setting]));

function settingAt(path: string): Setting {
  const setting = settingsByPath.get(path);
  if (setting === undefined) throw new Error(`no setting ${path} in the schema`);
  return setting;
}

function valueAt(tree: unknown, path: string): unknown {
  return path.split('.').reduce<unknown>((node, key) => (isMapping(node) && Object.hasOwn(node, key) ? node[key] : undefined), tree);
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
