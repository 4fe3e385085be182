/**
 * The reference tables of docs/options.md against the code they describe: the "Errors" table names every
 * error code with the status `httpIdempotency` answers, the "Options" table names exactly the
 * options the entry points share, and the text above it names the options each entry point takes;
 * docs/cdk.md names the props of `IdempotencyTable` and of `IdempotencyTable.fromTable`; the stores'
 * option lists (docs/options.md, docs/redis.md, the README) name every option each store takes;
 * docs/how-it-works.md's attribute table names every attribute the store's `attributes` option renames;
 * advice to bound your own DynamoDB client's `requestTimeout` also sets `throwOnRequestTimeout`, and
 * `socketTimeout`.
 */
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { DynamoDBClient, ListTablesCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { describe, expect, test } from '@jest/globals';
import { App, Stack } from 'aws-cdk-lib';
import { Table } from 'aws-cdk-lib/aws-dynamodb';
import { IdempotencyTable } from '../../lib/cdk/index.js';
import { DynamoDBStore as LeanDynamoDBStore } from '../../lib/dynamodb/index.js';
import { DEFAULT_ATTRIBUTE_NAMES } from '../../lib/dynamodb-store-options.js';
import { problem } from '../../lib/http.js';
import { DynamoDBStore, httpIdempotency, IdempotencyError, type IdempotencyErrorCode, idempotency, idempotentBatch, makeIdempotent } from '../../lib/index.js';
import { sharedOptionsExcept } from '../../lib/options.js';
import { RedisStore } from '../../lib/redis/index.js';
import { InMemoryStore } from '../../lib/testing/index.js';
import { ROOT } from './snippets.js';

/** Every code, so that a new one fails the type-check until it is added here and to docs/options.md. */
const CODES: Readonly<Record<IdempotencyErrorCode, true>> = {
  IN_PROGRESS: true,
  PAYLOAD_MISMATCH: true,
  KEY_MISSING: true,
  INVALID_KEY: true,
  STORE_FAILURE: true,
  SUPERSEDED: true,
  RESPONSE_NOT_STORED: true,
  ERROR_NOT_STORED: true,
  TRANSACTION_CONDITION_FAILED: true,
  TRANSACTION_INVALID: true,
  TRANSACTION_CONFLICT: true,
  COMMIT_FAILED: true,
};

/** The first cell of each row, and the rest, of the first table under the heading `## <heading>` of docs/options.md. */
function table(heading: string): Array<[string, ...string[]]> {
  const readme = readFileSync(`${ROOT}/docs/options.md`, 'utf8');
  const start = readme.indexOf(`\n## ${heading}\n`);
  expect(start).toBeGreaterThan(0);
  const section = readme.slice(start + heading.length + 5).split(/\n## /)[0]!;
  const lines = section.split('\n');
  const first = lines.findIndex((line) => line.startsWith('|'));
  const rows = lines.slice(
    first + 2,
    lines.findIndex((line, i) => i > first && !line.startsWith('|')),
  );
  return rows.map(
    (row) =>
      row
        .slice(1, -1)
        .split(' | ')
        .map((cell) => cell.trim()) as [string, ...string[]],
  );
}

describe('docs/options.md reference tables', () => {
  test('"Errors" lists every error code once, with the status httpIdempotency answers for it', () => {
    const rows = table('Errors');
    expect(rows.map(([code]) => code.replaceAll('`', '')).sort()).toEqual(Object.keys(CODES).sort());
    for (const [code, status] of rows) {
      const answer = problem(new IdempotencyError(code.replaceAll('`', '') as IdempotencyErrorCode, 'x'), 60);
      expect([code, status]).toEqual([code, answer === undefined ? 'thrown (500)' : String(answer.statusCode)]);
    }
  });

  test('"Options" names exactly the options the entry points share', () => {
    const names = table('Options').map(([option]) => /^`(\w+)/.exec(option)?.[1]);
    expect(names.sort()).toEqual(sharedOptionsExcept([]).sort());
  });

  test('the text above "Options" names the options each entry point takes: the shared ones it keeps, and its own', () => {
    const readme = readFileSync(`${ROOT}/docs/options.md`, 'utf8');
    const intro = readme.slice(readme.indexOf('\n## Options\n'), readme.indexOf('\n| option'));
    const named = (pattern: RegExp): string[] => [...(pattern.exec(intro)?.[1] ?? '').matchAll(/`(\w+)`/g)].map((match) => match[1]!);
    const options = { store: new InMemoryStore(), name: 'options', unknownOption: true } as never;
    const known = (make: (options: never) => unknown): string[] => knownOptions(() => make(options));
    const shared = sharedOptionsExcept([]);
    const except = (excluded: string[]) => shared.filter((name) => !excluded.includes(name));
    expect(known((options) => idempotency(options))).toEqual([...shared].sort());
    expect(known((options) => makeIdempotent(async (_: unknown) => 1, options))).toEqual([...shared].sort());
    expect(known((options) => httpIdempotency(options))).toEqual(
      [...except(named(/`httpIdempotency`\stakes\sall\sbut\s(.*?)\s\(it\sderives/s)), ...named(/`httpIdempotency`'s\s(.*?)\s\(\[HTTP\]/s)].sort(),
    );
    expect(known((options) => idempotentBatch(async () => 1, options))).toEqual(
      [...except(named(/`idempotentBatch`\sall\sbut\s(.*?)\s\(its/s)), ...named(/`idempotentBatch`'s\s(.*?)\s\(\[batch\]/s)].sort(),
    );
  });
});

/** The options a constructor or function knows, as the `TypeError` for an unknown one lists them. */
function knownOptions(make: () => unknown): string[] {
  try {
    make();
  } catch (error) {
    const [, list = ''] = (error as Error).message.split('Known options: ');
    return list.replace(/\.$/, '').split(', ').sort();
  }
  throw new Error('an unknown option was accepted');
}

test('docs/cdk.md names the props IdempotencyTable and IdempotencyTable.fromTable take', () => {
  const cdk = readFileSync(`${ROOT}/docs/cdk.md`, 'utf8');
  const props = (pattern: RegExp): string[] => [...(pattern.exec(cdk)?.[1] ?? '').matchAll(/`([a-z]\w*)`/g)].map((match) => match[1]!).sort();
  const stack = new Stack(new App(), 'Props');
  expect(knownOptions(() => new IdempotencyTable(stack, 'New', { unknownProp: true } as never))).toEqual(props(/\*\*Props:\*\*\s(.*?);\s`fromTable`\stakes/s));
  const existing = Table.fromTableName(stack, 'Existing', 'records');
  expect(knownOptions(() => IdempotencyTable.fromTable(stack, 'Imported', existing, { unknownProp: true } as never))).toEqual(
    props(/`fromTable` takes\s(.*?)\.\s\*\*Methods/s),
  );
});

test.each([
  ['DynamoDBStore', 'docs/options.md', /`DynamoDBStore` options: (.*?)\n\n/s, () => new DynamoDBStore({ unknownOption: true } as never)],
  [
    'DynamoDBStore of lambda-idempotency/dynamodb',
    'docs/options.md',
    /`DynamoDBStore` options: (.*?)\n\n/s,
    () => new LeanDynamoDBStore({ unknownOption: true } as never),
  ],
  ['RedisStore', 'docs/redis.md', /\*\*Options:\*\* (.*?)\n- \*\*/s, () => new RedisStore({ unknownOption: true } as never)],
  ['InMemoryStore', 'README.md', /has `InMemoryStore` \((.*?)\)/s, () => new InMemoryStore({ unknownOption: true } as never)],
])('the option list of %s in %s names every option it takes', (_store, file, section, make) => {
  const text = pattern(readFileSync(`${ROOT}/${file}`, 'utf8'), section);
  const named = new Set([...text.matchAll(/`(\w+)/g)].map((match) => match[1]));
  const known = knownOptions(make);
  expect(known.length).toBeGreaterThan(0);
  expect(known.filter((name) => !named.has(name))).toEqual([]);
});

/** The part of `text` a pattern's first group captures; the pattern must match. */
function pattern(text: string, section: RegExp): string {
  const found = section.exec(text)?.[1];
  if (found === undefined) throw new Error(`no match for ${section}`);
  return found;
}

test('every id of a synth finding (`lambda-idempotency:…`) the CDK construct reports is named in docs/cdk.md, where a user looks for what to acknowledge', () => {
  const sources = readdirSync(`${ROOT}/lib/cdk`).map((name) => readFileSync(`${ROOT}/lib/cdk/${name}`, 'utf8'));
  const ids = [...new Set(sources.flatMap((source) => [...source.matchAll(/'lambda-idempotency:(\w+)'/g)].map((match) => match[1]!)))];
  expect(ids.length).toBeGreaterThan(25);
  const page = readFileSync(`${ROOT}/docs/cdk.md`, 'utf8');
  expect(ids.filter((id) => !new RegExp(`\`(lambda-idempotency:)?${id}\``).test(page))).toEqual([]);
});

test('the attribute table of docs/how-it-works.md names every attribute `attributes` renames, by its default name', () => {
  const text = readFileSync(`${ROOT}/docs/how-it-works.md`, 'utf8');
  const rows = text.split('\n').filter((line) => line.startsWith('| `'));
  const named = rows.map((row) => /^\| `(\w+)`/.exec(row)?.[1]);
  expect(named.sort()).toEqual(Object.values(DEFAULT_ATTRIBUTE_NAMES).sort());
});

/** Paragraphs (and table rows) of the README and docs/ that name `named` but not `missing`, each as `<file>: <its start>`. */
function paragraphsWithout(named: string, missing: string): string[] {
  const documents = ['README.md', ...readdirSync(`${ROOT}/docs`).map((name) => `docs/${name}`)].filter((file) => file.endsWith('.md'));
  return documents.flatMap((file) =>
    readFileSync(`${ROOT}/${file}`, 'utf8')
      .split(/\n\s*\n|\n(?=\|)/)
      .filter((paragraph) => paragraph.includes(named) && !paragraph.includes(missing))
      .map((paragraph) => `${file}: ${paragraph.trim().slice(0, 120)}`),
  );
}

/** A client of a loopback server on `port`, one attempt a request, with the request handler's options given. */
const clientAt = (port: number, requestHandler: object): DynamoDBClient =>
  new DynamoDBClient({
    endpoint: `http://127.0.0.1:${port}`,
    region: 'local',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    maxAttempts: 1,
    requestHandler,
  });

test('a paragraph of the docs that bounds your own DynamoDB client with `requestTimeout` also sets `throwOnRequestTimeout`: without it, the SDK only logs, and the request stays unanswered', async () => {
  // What the docs warn of, on this SDK: a server that never answers, and a client with `requestTimeout` alone.
  const server = createServer(() => undefined).listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  const quiet = { trace: () => undefined, debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
  const client = clientAt(port, { requestTimeout: 100, logger: quiet });
  try {
    const sent = client.send(new ListTablesCommand({})).then(
      () => 'answered',
      () => 'rejected',
    );
    expect(await Promise.race([sent, new Promise((resolve) => setTimeout(resolve, 1_000, 'pending'))])).toBe('pending');
  } finally {
    client.destroy();
    server.close();
  }
  expect(paragraphsWithout('requestTimeout', 'throwOnRequestTimeout')).toEqual([]);
});

test('a paragraph of the docs that bounds your own DynamoDB client with `throwOnRequestTimeout` also sets `socketTimeout`: without it, a reply whose body stops coming after its headers stays unanswered', async () => {
  // What the docs warn of, on this SDK: a reply cut short after its headers (a connection dropped
  // silently mid-reply), and a client bounded by `requestTimeout` and `throwOnRequestTimeout` alone.
  const server = createServer((socket) => {
    socket.once('data', () => socket.write('HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: 2\r\n\r\n{'));
  }).listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  const unbounded = clientAt(port, { connectionTimeout: 100, requestTimeout: 100, throwOnRequestTimeout: true });
  const bounded = clientAt(port, { connectionTimeout: 100, requestTimeout: 100, throwOnRequestTimeout: true, socketTimeout: 100 });
  try {
    const sent = (sender: DynamoDBClient) =>
      sender.send(new PutItemCommand({ TableName: 'table', Item: { id: { S: 'k' } } })).then(
        () => 'answered',
        (error: Error) => error.name,
      );
    // The bounded client is given all the time the test has (its retries run slower on a loaded
    // machine); the unbounded one is still unanswered a second after the bounded one gave up.
    const unanswered = sent(unbounded);
    expect(await sent(bounded)).toBe('TimeoutError');
    expect(await Promise.race([unanswered, new Promise((resolve) => setTimeout(resolve, 1_000, 'pending'))])).toBe('pending');
  } finally {
    unbounded.destroy();
    bounded.destroy();
    server.close();
  }
  expect(paragraphsWithout('throwOnRequestTimeout', 'socketTimeout')).toEqual([]);
});
