import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.ts';
import { createLogger } from '../../src/ops/logger.ts';
import { redactErrorFields, redactLogFields, redactSecrets, redactSecretUrl, redactTokenUrl, redactUrl } from '../../src/ops/redact.ts';

/** The JSON lines a logger at `level` writes while `write` runs. */
function logged(write: (log: ReturnType<typeof createLogger>) => void, level = 'debug'): Array<Record<string, unknown>> {
  const lines: string[] = [];
  write(createLogger('redact-test', level, { write: (line: string) => void lines.push(line) }));
  return lines.map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('redactUrl', () => {
  it.each([
    ['amqp://user:s3cret@host:5672/vhost', 'amqp://user:***@host:5672/vhost'],
    ['amqps://worker:p%40ss@mq.internal:5671/orders', 'amqps://worker:***@mq.internal:5671/orders'],
    // no scheme: parses as a URL of scheme "guest:", or not at all; the credentials go either way
    ['guest:s3cret@localhost:5672', 'guest:***@localhost:5672'],
    ['amqp//user:s3cret@host', 'amqp//user:***@host'],
  ])('hides the password of %s', (url, shown) => {
    expect(redactUrl(url)).toBe(shown);
  });

  it.each(['amqp://host:5672', 'amqp://user@host:5672', 'localhost:5672', '/metrics', ''])('leaves %j, which has no password, as it is', (text) => {
    expect(redactUrl(text)).toBe(text);
  });
});

/**
 * URL-shaped secrets of every shape, well-formed or not (issue 10 §6): [input, redactUrl (and free text), the
 * secret that must not survive]. The same table runs through redactUrl, redactSecrets, redactSecretUrl and the
 * configuration error of AMQP_URL.
 */
const MALFORMED: ReadonlyArray<readonly [string, string, string]> = [
  ['amqp://u:S3cr3tPw@', 'amqp://u:***@', 'S3cr3tPw'], // no host
  ['amqp://u:S3cr3tPw@/vhost', 'amqp://u:***@/vhost', 'S3cr3tPw'], // no host, a vhost
  ['amqps://u:S3cr3tPw@', 'amqps://u:***@', 'S3cr3tPw'],
  ['u:S3cr3tPw@', 'u:***@', 'S3cr3tPw'], // no scheme, no host
  ['u:S3cr3tPw@mq:5672', 'u:***@mq:5672', 'S3cr3tPw'], // no scheme
  ['amqp:/u:S3cr3tPw@mq', 'amqp:/u:***@mq', 'S3cr3tPw'], // one slash
  ['amqp://u:S3c@r3tPw@mq:5672/v', 'amqp://u:***@mq:5672/v', 'r3tPw'], // `@` in the password
  ['amqp://u:S3c@r3t@Pw@', 'amqp://u:***@', 'Pw'], // several `@`, no host
  ['amqp://u:S3c:r3tPw@mq', 'amqp://u:***@mq', 'r3tPw'], // `:` in the password
  ['amqp://u:S3c/r3tPw@mq/v', 'amqp://u:***@mq/v', 'r3tPw'], // `/` in the password (unparsable)
  ['amqp://u:S3c%40r3tPw@mq', 'amqp://u:***@mq', 'r3tPw'], // percent-encoded
  ['amqp://u%3Ax:S3cr3tPw@mq', 'amqp://u%3Ax:***@mq', 'S3cr3tPw'], // percent-encoded user
  ['amqp://:S3cr3tPw@mq', 'amqp://:***@mq', 'S3cr3tPw'], // no user
  ['amqp://u:S3cr3tPw@[::1]:5672/v', 'amqp://u:***@[::1]:5672/v', 'S3cr3tPw'], // IPv6
  ['amqp://u:S3c@r3tPw@[::1]', 'amqp://u:***@[::1]', 'r3tPw'], // IPv6 and `@` in the password
  ['amqp://u:S3cr3tPw@mq:notaport', 'amqp://u:***@mq:notaport', 'S3cr3tPw'], // bad port
  ['AMQPS://U:S3cr3tPw@MQ', 'amqps://U:***@MQ', 'S3cr3tPw'], // capitals
  ['kafka://u:S3cr3tPw@broker:9092', 'kafka://u:***@broker:9092', 'S3cr3tPw'],
  ['SASL_SSL://u:S3cr3tPw@broker:9094', 'SASL_SSL://u:***@broker:9094', 'S3cr3tPw'],
  ['https://u:S3cr3tPw@hooks.example/x?y=1', 'https://u:***@hooks.example/x?y=1', 'S3cr3tPw'],
  ['https://S3cr3tTok@github.com/org/repo', 'https://***@github.com/org/repo', 'S3cr3tTok'], // a lone user outside AMQP: a token
  ['amqp://a:S3cr3tA@h1,amqp://b:S3cr3tB@h2', 'amqp://a:***@h1,amqp://b:***@h2', 'S3cr3t'], // several URLs
  ['amqp://a:S3cr3tA@h1 amqps://b:S3cr3tB@', 'amqp://a:***@h1 amqps://b:***@', 'S3cr3t'],
];

describe('redactUrl and redactSecrets: malformed URLs', () => {
  it.each(MALFORMED)('%s → %s', (text, shown, secret) => {
    expect(redactUrl(text)).toBe(shown);
    expect(redactUrl(text)).not.toContain(secret);
    expect(redactSecrets(text)).not.toContain(secret);
    expect(redactSecrets(`connect to ${text} failed`)).not.toContain(secret);
  });

  it('keeps what is not a password: a lone AMQP user, a host and port, an e-mail address in a path', () => {
    for (const text of ['amqp://app@mq:5672/v', 'amqp://app@', 'https://host:8443/users/bob@example.com', 'https://host/users/bob@example.com', 'amqp://[::1]:5672']) {
      expect(redactUrl(text)).toBe(text);
    }
  });

  it('stays linear on long text full of colons and commas', () => {
    const text = `@ ${',a:b'.repeat(50_000)}`;
    const started = performance.now();
    redactSecrets(text);
    expect(performance.now() - started).toBeLessThan(1000);
  });
});

describe('redactSecretUrl: the whole value is a secret setting', () => {
  it.each(MALFORMED.filter(([text]) => /^amqps?:\/\//i.test(text)))('%s shows no password', (text, _shown, secret) => {
    expect(redactSecretUrl(text)).not.toContain(secret);
    expect(redactSecretUrl(text)).toMatch(/^amqps?:\/\//i);
  });

  it('hides even what free text cannot tell from prose: a space in the password', () => {
    expect(redactSecretUrl('amqp://u:S3c r3tPw@mq')).toBe('amqp://u:***@mq');
    expect(redactSecretUrl('amqp://u:S3c r3tPw@')).toBe('amqp://u:***@');
  });

  it('keeps only scheme, host and port of any other URL with a path; never a password or a lone user', () => {
    expect(redactSecretUrl('https://S3cr3tTok@hooks.example')).toBe('https://***@hooks.example');
    expect(redactSecretUrl('https://u:S3cr3tPw@hooks.example')).toBe('https://u:***@hooks.example/');
    expect(redactSecretUrl('https://u:S3cr3tPw@hooks.example/T0/B0')).toBe('https://hooks.example/***');
    expect(redactSecretUrl('https://u:S3cr3tPw@')).toBe('***');
  });

  it.each(MALFORMED.filter(([text]) => /^amqps?:\/\//i.test(text)))('AMQP_URL=%s: the configuration error and conveyor check show no password', (text, _shown, secret) => {
    let message = '';
    try {
      loadConfig({ env: { AMQP_URL: text } });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).not.toContain(secret);
  });
});

describe('redactSecrets', () => {
  it('hides every user:password@ in free text, wherever it stands', () => {
    expect(redactSecrets('connect to amqp://a:one@h1 failed, then (b:two@h2) and "c:three@h3"')).toBe(
      'connect to amqp://a:***@h1 failed, then (b:***@h2) and "c:***@h3"',
    );
  });

  it('hides password=…, sasl.password=…, token=… and JSON "password": "…" values', () => {
    expect(redactSecrets('sasl.username=app sasl.password=s3cret KAFKA_SASL_PASSWORD=x1 https://h/?token=t0k&x=1 {"password":"p2"}')).toBe(
      'sasl.username=app sasl.password=*** KAFKA_SASL_PASSWORD=*** https://h/?token=***&x=1 {"password":"***"}',
    );
  });

  it('leaves prose about passwords and e-mail addresses alone', () => {
    const prose = 'wrong password: check KAFKA_SASL_PASSWORD; mail ops@example.com';
    expect(redactSecrets(prose)).toBe(prose);
  });

  it('returns text that cannot hold a secret unchanged (the same string)', () => {
    const text = 'message handled topic=orders partition=3';
    expect(redactSecrets(text)).toBe(text);
  });
});

describe('redactTokenUrl', () => {
  it('keeps only scheme, host and port of a URL with a path or query (webhooks carry tokens there)', () => {
    expect(redactTokenUrl('https://hooks.example/T0/B0/tok3n')).toBe('https://hooks.example/***');
    expect(redactTokenUrl('https://hooks.example/?key=abc')).toBe('https://hooks.example/***');
    expect(redactTokenUrl('https://hooks.example')).toBe('https://hooks.example');
    expect(redactTokenUrl('not a url')).toBe('***');
  });
});

describe('redactLogFields', () => {
  it('censors secret fields one level down and redacts text at the top and one level down', () => {
    const fields = { topic: 't', reason: 'to amqp://u:p1@h', options: { password: 'p2', url: 'amqp://u:p3@h', note: 'token=p4', keep: 1 } };
    expect(redactLogFields(fields)).toEqual({
      topic: 't',
      reason: 'to amqp://u:***@h',
      options: { password: '***', url: 'amqp://u:***@h', note: 'token=***', keep: 1 },
    });
    expect(fields.options.password, 'the caller’s object is not changed').toBe('p2');
  });

  it('returns the very object when nothing needs hiding (the hot path at debug level)', () => {
    const fields = { topic: 'orders', partition: 3, offset: '42', correlationId: 'c-1' };
    expect(redactLogFields(fields)).toBe(fields);
  });
});

describe('redactErrorFields', () => {
  it('redacts every string of a serialized error, nested ones included', () => {
    expect(redactErrorFields({ message: 'to amqp://u:p1@h', stack: 'Error: amqp://u:p2@h', context: { url: 'x:p3@h' }, list: ['password=p4'] })).toEqual({
      message: 'to amqp://u:***@h',
      stack: 'Error: amqp://u:***@h',
      context: { url: 'x:***@h' },
      list: ['password=***'],
    });
  });
});

describe('createLogger: no secret in any line', () => {
  it('censors password fields, keeps URLs but their password, at the top, one level down and in the configuration', () => {
    const [line] = logged((log) =>
      log.info({
        password: 'p1',
        saslPassword: 'p2',
        'sasl.password': 'p3',
        amqpUrl: 'amqps://app:p4@mq:5671/v',
        url: new URL('amqp://app:p5@mq'),
        headers: { authorization: 'Bearer p6' },
        sasl: { mechanism: 'SCRAM-SHA-512', password: 'p7' },
        config: { kafka: { saslPassword: 'p8', saslUsername: 'app' }, rabbitmq: { url: 'amqp://app:p9@mq' } },
        kafka: { 'sasl.password': 'p10' },
        webhookUrl: 'https://hooks.example/T0/p11',
      }, 'configured'),
    );
    expect(JSON.stringify(line)).not.toMatch(/p\d+\b(?!:)/);
    expect(line).toMatchObject({
      password: '***',
      saslPassword: '***',
      'sasl.password': '***',
      amqpUrl: 'amqps://app:***@mq:5671/v',
      url: 'amqp://app:***@mq',
      headers: { authorization: '***' },
      sasl: { mechanism: 'SCRAM-SHA-512', password: '***' },
      config: { kafka: { saslPassword: '***', saslUsername: 'app' }, rabbitmq: { url: 'amqp://app:***@mq' } },
      kafka: { 'sasl.password': '***' },
      webhookUrl: 'https://hooks.example/***',
    });
  });

  it('redacts URLs with credentials in messages, interpolated values, text fields and errors with their causes', () => {
    const lines = logged((log) => {
      log.warn({ reason: 'refused amqp://app:p1@mq' }, 'connect to amqp://app:p2@mq failed');
      log.info('retrying %s', 'amqp://app:p3@mq');
      log.error({ err: new Error('lost amqp://app:p4@mq', { cause: new Error('socket amqp://app:p5@mq') }) }, 'connection lost');
      log.warn({ err: { message: 'plain amqp://app:p6@mq' } }, 'plain error object');
    });
    const text = lines.map((l) => JSON.stringify(l)).join('\n');
    for (const secret of ['p1', 'p2', 'p3', 'p4', 'p5', 'p6']) expect(text).not.toContain(`:${secret}@`);
    expect(lines[0]).toMatchObject({ reason: 'refused amqp://app:***@mq', msg: 'connect to amqp://app:***@mq failed' });
    expect(lines[1]?.msg).toBe('retrying amqp://app:***@mq');
    expect((lines[2]?.err as { message: string }).message).toBe('lost amqp://app:***@mq: socket amqp://app:***@mq');
  });

  it('redacts child bindings under URL field names (rabbitmq, url)', () => {
    const [line] = logged((log) => log.child({ rabbitmq: 'amqp://app:p1@mq:5672', url: 'amqp://app:p2@mq' }).info('connected'));
    expect(line).toMatchObject({ rabbitmq: 'amqp://app:***@mq:5672', url: 'amqp://app:***@mq' });
  });

  it('writes nothing, and so redacts nothing, below its level', () => {
    expect(logged((log) => log.debug({ password: 'p1' }, 'hidden'), 'info')).toEqual([]);
  });
});

describe('configuration errors never echo a secret', () => {
  it('shows a secret setting of the wrong shape by its kind, and bad secret URLs without password or path', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'conveyor-redact-')), 'config.yaml');
    writeFileSync(
      file,
      [
        'kafka:',
        '  saslPassword: [hunter2-list]',
        '  sslKeyPassword: { key: hunter2-mapping }',
        'rabbitmq:',
        '  url: "guest:hunter2-url@localhost:5672"',
        'lag:',
        '  webhookUrl: "ftp://hooks.example/T0/hunter2-token"',
        '',
      ].join('\n'),
    );
    let message = '';
    try {
      loadConfig({ file, env: {} });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).not.toContain('hunter2');
    expect(message.split('\n').slice(1)).toEqual([
      '  - kafka.saslPassword (KAFKA_SASL_PASSWORD): must be a string; got a list (not shown: the setting is secret)',
      '  - kafka.sslKeyPassword (KAFKA_SSL_KEY_PASSWORD): must be a string; got a mapping (not shown: the setting is secret)',
      '  - rabbitmq.url (AMQP_URL): must be an amqp:// or amqps:// URL (amqp://user:password@host:5672/vhost); got "guest:***@localhost:5672"',
      '  - lag.webhookUrl (CONVEYOR_LAG_WEBHOOK_URL): must be empty or an http:// or https:// URL; got "ftp://hooks.example/***"',
    ]);
  });
});
