/**
 * Command lines the CLI refuses before it sends a request (exit 2, one sentence naming what to
 * change), and the ones it reads a default into: each refused line would otherwise run on a part of
 * what the operator typed, or on another table or namespace than the one meant.
 */
import { type Command, parseCommand } from '../../lib/cli/options.js';
import { type CliIo, runCli } from '../../lib/cli/run.js';
import { recordIdOf } from '../../lib/index.js';
import { InMemoryStore, lambdaContext } from '../../lib/testing/index.js';
import { paymentHandler, paymentRequest } from '../support/payment-request.js';

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** The command in this process, with this environment; usage errors send no request. */
async function cli(env: NodeJS.ProcessEnv, ...argv: string[]): Promise<Run> {
  return cliOf({ version: '1.2.3' }, env, ...argv);
}

/** The command as `cli` runs it, with the package's version as given. */
async function cliOf(given: { version: string | undefined }, env: NodeJS.ProcessEnv, ...argv: string[]): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const io: CliIo = { env, now: Date.now, version: given.version, stdout: (text) => void (stdout += text), stderr: (text) => void (stderr += text) };
  const code = await runCli(argv, io);
  return { code, stdout, stderr };
}

const usage = (sentence: string): Run => ({
  code: 2,
  stdout: '',
  stderr: `lambda-idempotency: ${sentence}\nRun \`lambda-idempotency --help\` for usage.\n`,
});

test.each([
  ['a stray argument', ['inspect', '--table', 'orders', '--id', 'n#h', 'n#h2'], 'Unexpected argument `n#h2`: option values need their --option.'],
  // An empty namespace would list the stuck records of every namespace.
  ['an empty --name', ['stuck', '--table', 'orders', '--name', ''], '`--name` needs a value.'],
  ['an empty --id', ['forget', '--table', 'orders', '--id', '', '--yes'], '`--id` needs a value.'],
  ['a --name holding a record id', ['stuck', '--table', 'orders', '--name', 'worker#h'], "`--name` is a namespace, without '#'."],
  [
    'no record address',
    ['inspect', '--table', 'orders'],
    'Which record? Give one of --key (with --name), --http-key (with --name, --method, --route) or --id.',
  ],
  [
    'a key without --name',
    ['inspect', '--table', 'orders', '--key', '"o-1"'],
    'Which namespace? Give --name: the `name` option of the entry point, or the function name.',
  ],
  // The library's own refusal of an address is a usage error too, not a crash.
  [
    'a null key',
    ['inspect', '--table', 'orders', '--name', 'n', '--key', 'null'],
    'KEY_MISSING: The key is missing (undefined, null or empty string): no record has it.',
  ],
  ['--method with --key', ['inspect', '--table', 'orders', '--name', 'n', '--key', '"o-1"', '--method', 'POST'], '`--method` goes with --http-key.'],
  ['--caller with --id', ['forget', '--table', 'orders', '--id', 'n#h', '--caller', 'user-7', '--yes'], '`--caller` goes with --http-key.'],
  ['--name with --id', ['inspect', '--table', 'orders', '--name', 'other', '--id', 'n#h'], '`--id` already holds the namespace: leave out --name.'],
  ['--tenant with --id', ['inspect', '--table', 'orders', '--tenant', 't-1', '--id', 'n#h'], '`--id` already holds the tenant: leave out --tenant.'],
  ['--attributes holding an array', ['stuck', '--table', 'orders', '--attributes', '["pk"]'], '`--attributes` must be a JSON object of attribute names.'],
  ['--attributes holding null', ['stuck', '--table', 'orders', '--attributes', 'null'], '`--attributes` must be a JSON object of attribute names.'],
  ['an empty attribute name', ['stuck', '--table', 'orders', '--attributes', '{"key":""}'], '`--attributes`: `key` must be a non-empty string.'],
  ['an attribute name that is not a string', ['stuck', '--table', 'orders', '--attributes', '{"key":1}'], '`--attributes`: `key` must be a non-empty string.'],
  // Epoch milliseconds JavaScript reads as Infinity name no attempt: refused before any request, as an instant in another form is.
  [
    'a --lease-until beyond the numbers JavaScript holds',
    ['forget', '--table', 'orders', '--id', 'n#h', '--yes', '--lease-until', '1e400'],
    '`--lease-until` takes the lease end as stuck and inspect print it (2026-12-02T16:08:35.123Z), or in epoch milliseconds.',
  ],
])('%s is a usage error (exit 2) that says what to change', async (_what, argv, sentence) => {
  expect(await cli({}, ...argv)).toEqual(usage(sentence));
});

test('`help` prints the help, as --help does', async () => {
  const help = await cli({}, '--help');
  expect(help).toMatchObject({ code: 0, stderr: '', stdout: expect.stringMatching(/^Usage: lambda-idempotency <command>/) });
  expect(await cli({}, 'help')).toEqual(help);
  expect(await cli({}, '-h')).toEqual(help);
  expect(await cli({}, 'stuck', '-h')).toEqual(help);
  // Help asked for beside an option this version does not know, or a value left out, is still help.
  expect(await cli({}, '--help', '--bogus')).toEqual(help);
  expect(await cli({}, 'stuck', '-x', '--help')).toEqual(help);
  expect(await cli({}, 'inspect', '--help', '--table')).toEqual(help);
  // Given as an option's value, -h is that value: parseArgs's sentence says how to give it.
  expect(await cli({}, 'forget', '--http-key', '-h')).toEqual({ code: 2, stdout: '', stderr: expect.stringContaining("use '--http-key=-XYZ'") });
});

test('`--version` prints the version of the package the command is in, and sends nothing; without one it fails and says why', async () => {
  expect(await cli({}, '--version')).toEqual({ code: 0, stdout: '1.2.3\n', stderr: '' });
  expect(await cli({}, 'forget', '--version')).toEqual({ code: 0, stdout: '1.2.3\n', stderr: '' });
  // `version` as a command, as `help` is one.
  expect(await cli({}, 'version')).toEqual({ code: 0, stdout: '1.2.3\n', stderr: '' });
  expect(await cliOf({ version: undefined }, {}, '--version')).toEqual({
    code: 1,
    stdout: '',
    stderr: 'lambda-idempotency: the version is unknown: this copy of the command is not in its package.\n',
  });
});

test('the table is --table, else IDEMPOTENCY_TABLE', async () => {
  // A table name DynamoDB refuses shows which table the command took, before any request.
  const refused = (table: string) =>
    usage(
      `DynamoDBStore: \`tableName\` must be the name of a DynamoDB table (3 to 255 letters, digits, '_', '-' or '.') or its ARN, arn:aws:dynamodb:<region>:<account>:table/<name> (got "${table}").`,
    );
  expect(await cli({ IDEMPOTENCY_TABLE: 'e' }, 'inspect', '--id', 'n#h')).toEqual(refused('e'));
  expect(await cli({ IDEMPOTENCY_TABLE: 'e' }, 'inspect', '--table', 't', '--id', 'n#h')).toEqual(refused('t'));
});

test("`--caller ''` addresses the record of a request whose `scope` returned '', another than the record of a request without a caller", async () => {
  const store = new InMemoryStore();
  const { handler } = paymentHandler(async (key) => ({ paid: key }), { store, name: 'payments', scope: () => '' });
  await handler(paymentRequest('k-1'), lambdaContext());
  const http = ['--name', 'payments', '--http-key', 'k-1', '--method', 'POST', '--route', 'POST /payments'];
  const command = parseCommand(['inspect', '--table', 'orders', ...http, '--caller', ''], {});
  const id = recordIdOf((command as Extract<Command, { command: 'inspect' }>).address);
  expect((await store.inspect(id))?.status).toBe('COMPLETED');
  // Left out, --caller is no caller: another record.
  const none = parseCommand(['inspect', '--table', 'orders', ...http], {}) as Extract<Command, { command: 'inspect' }>;
  expect(recordIdOf(none.address)).not.toBe(id);
});

test('a string key given without its JSON quotes is suggested back quoted for the shell, as a key with a quote or a space is copied whole', async () => {
  const sentence = (suggested: string) => `\`--key\` must be JSON; a string key is quoted: --key ${suggested}.`;
  expect(await cli({}, 'inspect', '--table', 'orders', '--name', 'n', '--key', 'o-1')).toEqual(usage(sentence(`'"o-1"'`)));
  // Pasted into a POSIX shell, `'"o'1"'` would end the quotes at the key's own quote.
  expect(await cli({}, 'inspect', '--table', 'orders', '--name', 'n', '--key', "o'1 b")).toEqual(usage(sentence(`'"o'\\''1 b"'`)));
});
