/**
 * `conveyor check` as an operator runs it, and `conveyor <command> --help` for every command: the resolved
 * configuration with its secrets redacted, the handler table, exit 78 for bad configuration or handler files,
 * and no broker contacted along the way.
 */
import { randomUUID } from 'node:crypto';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { getFreePort } from '../support/free-port.ts';
import { BAD_HANDLERS_DIR, brokerConfig, jsonOf, runCli, writeConfig } from '../support/cli.ts';
import { uniqueName } from '../support/kafka.ts';

describe('conveyor check', () => {
  const topic = uniqueName('conveyor.test.cli-check');
  const handlerEnv = { TEST_TOPIC: topic, TEST_GROUP: `${topic}.group`, TEST_RETRIES: '4' };

  it('prints the resolved configuration with every secret redacted, and the handlers; connects to nothing', async () => {
    const password = `pw-${randomUUID()}`;
    const amqpPassword = `amqp-${randomUUID()}`;
    const webhookToken = `token-${randomUUID()}`;
    // nothing listens there: check must not try
    const config = brokerConfig({ bootstrapServers: `127.0.0.1:${await getFreePort()}` });
    const env = {
      ...handlerEnv,
      KAFKA_SECURITY_PROTOCOL: 'sasl_plaintext',
      KAFKA_SASL_USERNAME: 'operator',
      KAFKA_SASL_PASSWORD: password,
      AMQP_URL: `amqp://guest:${amqpPassword}@127.0.0.1:5672/`,
      CONVEYOR_LAG_WEBHOOK_URL: `https://hooks.example.com/services/${webhookToken}`,
    };
    const result = await runCli(['check', '--config', config], env);
    expect(result.code, result.stderr).toBe(0);
    for (const secret of [password, amqpPassword, webhookToken]) {
      expect(result.stdout).not.toContain(secret);
      expect(result.stderr).not.toContain(secret);
    }
    expect(result.stdout).toContain(`# configuration (${config} + environment), secrets redacted`);
    expect(result.stdout).toMatch(/\n {2}saslPassword: "\*\*\*"\n/);
    expect(result.stdout).toMatch(/\n {2}saslUsername: operator\n/);
    expect(result.stdout).toContain('  url: amqp://guest:***@127.0.0.1:5672/');
    expect(result.stdout).toContain('  webhookUrl: https://hooks.example.com/***');

    const lines = result.stdout.trimEnd().split('\n');
    const header = lines.findIndex((l) => l.startsWith('NAME '));
    expect(lines[header]).toMatch(/^NAME\s+BROKER\s+CONSUMES\s+GROUP\s+ORDERING\s+CONCURRENCY\s+RETRIES\s+TIMEOUT\s+DEAD LETTERS\s+FILE$/);
    expect(lines[header + 1]!.split(/\s{2,}/)).toEqual(['recorder', 'kafka', topic, `${topic}.group`, 'partition', '64', '4', '5000 ms', `${topic}.dlq`, 'test/fixtures/handlers/recorder.ts']);
    expect(lines.at(-1)).toBe('ok: the configuration and 1 handler file(s) are valid');
    expect(result.ms, 'no broker connection attempted').toBeLessThan(10_000);

    const json = jsonOf<{ config: { kafka: { saslPassword: string; bootstrapServers: string } }; handlers: Array<Record<string, unknown>> }>(
      await runCli(['check', '--config', config, '--json'], env),
    );
    expect(json.config.kafka.saslPassword).toBe('***');
    expect(JSON.stringify(json)).not.toContain(password);
    expect(json.handlers).toEqual([
      { name: 'recorder', broker: 'kafka', consumes: [topic], group: `${topic}.group`, ordering: 'partition', concurrency: 64, retries: 4, timeoutMs: 5000, deadLetter: [`${topic}.dlq`], file: 'test/fixtures/handlers/recorder.ts' },
    ]);
  });

  it('a RabbitMQ handler: its queue and <queue>.dlq', async () => {
    const queue = uniqueName('conveyor.test.cli-check-q');
    const result = await runCli(['check', '--config', brokerConfig(), '--json'], { TEST_QUEUE: queue, TEST_RETRIES: '1' });
    expect(jsonOf<{ handlers: unknown[] }>(result).handlers).toEqual([
      { name: 'recorder', broker: 'rabbitmq', consumes: [queue], ordering: 'partition', concurrency: 1, retries: 1, timeoutMs: 5000, deadLetter: [`${queue}.dlq`], file: 'test/fixtures/handlers/recorder.ts' },
    ]);
  });

  it('invalid configuration: exit 78, each problem on its own line naming its environment variable', async () => {
    const config = writeConfig(['retry:', '  maxAttempts: 99', 'kafka:', '  acks: "2"', 'handlers:', '  directory: test/fixtures/handlers']);
    const result = await runCli(['check', '--config', config], handlerEnv);
    expect(result.code).toBe(78);
    expect(result.stdout).toBe('');
    const lines = result.stderr.split('\n');
    expect(lines[0]).toBe('conveyor check: conveyor.config.invalid: invalid configuration:');
    expect(lines).toContain('  - retry.maxAttempts (KAFKA_MAX_RETRY_ATTEMPTS): must be an integer from 0 to 10; got 99');
    expect(lines).toContain('  - kafka.acks (KAFKA_ACKS): must be one of all, 1, 0; got "2"');

    const missing = await runCli(['check', '--config', join(BAD_HANDLERS_DIR, 'no-such-config.yaml')], handlerEnv);
    expect(missing.code).toBe(78);
    expect(missing.stderr).toMatch(/no-such-config\.yaml: cannot read the configuration file: no such file/);
  });

  it('bad handler files: exit 78, naming each file and its problems', async () => {
    const result = await runCli(['check', '--config', brokerConfig({ handlersDir: BAD_HANDLERS_DIR })]);
    expect(result.code).toBe(78);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/^conveyor check: conveyor\.handler\.invalid: 2 handler file\(s\) cannot be used:/);
    expect(result.stderr).toContain(`${join(BAD_HANDLERS_DIR, 'throws-on-import.ts')}:\n  - cannot be imported: fixture: this handler file breaks at import time`);
    expect(result.stderr).toMatch(/nonsense\.ts:\n(\s+- .*\n)*\s+- timeoutMs must be an integer from 1 to 3600000; got -1/);
  });

  it('two handler files with one explicit group on one topic: exit 78, naming both files (they would split the partitions)', async () => {
    const dir = resolve('test/fixtures/shared-group-handlers');
    const shared = uniqueName('conveyor.test.cli-check-shared');
    const result = await runCli(['check', '--config', brokerConfig({ handlersDir: dir })], { TEST_TOPIC: shared, TEST_GROUP: `${shared}.group` });
    expect(result.code, result.stderr).toBe(78);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/^conveyor check: conveyor\.handler\.invalid: 2 handler file\(s\) cannot be used:/);
    const audit = join(dir, 'orders-audit.ts');
    const billing = join(dir, 'orders-billing.ts');
    expect(result.stderr).toContain(
      `${audit}:\n  - conveyor.handler.shared_consumer: group "${shared}.group" on topic "${shared}" is also used by ${billing} (handler "orders-billing"): the handlers would split the topic's partitions between them`,
    );
    expect(result.stderr).toContain(`${billing}:\n  - conveyor.handler.shared_consumer: group "${shared}.group" on topic "${shared}" is also used by ${audit} (handler "orders-audit")`);
  });
});

describe('conveyor <command> --help', () => {
  it('prints the usage of every command and exits 0', async () => {
    const commands = [
      ['run'],
      ['check'],
      ['lag'],
      ['dlq'],
      ['dlq', 'list'],
      ['dlq', 'show'],
      ['dlq', 'replay'],
      ['dlq', 'resolve'],
      ['offsets'],
      ['offsets', 'reset'],
    ];
    const results = await Promise.all(commands.map((c) => runCli([...c, '--help'])));
    results.forEach((result, i) => {
      const name = commands[i]!.join(' ');
      expect(result.code, name).toBe(0);
      expect(result.stdout, name).toMatch(new RegExp(`^usage: conveyor ${name} `));
      expect(result.stderr, name).toBe('');
    });
    expect(results[0]!.stdout).toMatch(/^usage: conveyor run --config <file>\n/);
    expect(results[6]!.stdout).toContain('--filter <field=value>');
    expect(results[9]!.stdout).toMatch(/--to <target>\s+earliest \| latest \| <offset> \| <ISO 8601 time/);

    const top = await runCli(['--help']);
    expect(top.code).toBe(0);
    for (const command of ['run', 'check', 'lag', 'dlq', 'offsets']) expect(top.stdout).toMatch(new RegExp(`\\n  ${command}\\b`));
  });

  it('an unknown command or a missing option is a usage error: exit 64', async () => {
    const unknown = await runCli(['frobnicate']);
    expect(unknown.code).toBe(64);
    expect(unknown.stderr).toMatch(/^error: unknown command 'frobnicate'/);
    const missing = await runCli(['offsets', 'reset', '--group', 'g']);
    expect(missing.code).toBe(64);
    expect(missing.stderr).toMatch(/^error: required option '--topic <topic>' not specified/);
    const badLimit = await runCli(['dlq', 'list', '--limit', 'many']);
    expect(badLimit.code).toBe(64);
    expect(badLimit.stderr).toMatch(/option '--limit <n>' argument 'many' is invalid/);
    const badFilter = await runCli(['dlq', 'list', '--filter', 'colour=red', '--topic', 'x']);
    expect(badFilter.code).toBe(64);
    expect(badFilter.stderr).toMatch(/conveyor\.cli\.usage: --filter "colour=red": write field=value with field one of error_type, /);
  });
});
