import { parseArgs } from 'node:util';
import { type AttributeNames, DEFAULT_ATTRIBUTE_NAMES } from '../dynamodb-store.js';
import { inexactNumberIn } from '../exact-json.js';
import type { RecordAddress } from '../operations.js';
import { shellCommand } from '../shell-words.js';
import type { RecordStatus } from '../store.js';

/** The command line of `lambda-idempotency`: one table of options feeds parsing, checks and help. @internal */

export type CommandName = 'inspect' | 'forget' | 'stuck';

/** What one invocation asks for, checked. @internal */
export type Command =
  | { readonly command: 'help' }
  | { readonly command: 'version' }
  | (Common & { readonly command: 'inspect'; readonly address: RecordAddress })
  | (Common & { readonly command: 'forget'; readonly address: RecordAddress; readonly onlyIf?: RecordStatus; readonly leaseUntil?: number })
  | (Common & { readonly command: 'stuck'; readonly name?: string });

interface Common {
  readonly table: string;
  readonly json: boolean;
  readonly attributes: Partial<AttributeNames>;
  readonly region?: string;
  readonly profile?: string;
}

/** A command line that cannot run: exit code 2, with a sentence. @internal */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

const ADDRESSED: readonly CommandName[] = ['inspect', 'forget'];
const ALL: readonly CommandName[] = ['inspect', 'forget', 'stuck'];

interface OptionSpec {
  readonly type: 'string' | 'boolean';
  readonly commands: readonly CommandName[];
  /** A one-letter form. */
  readonly short?: string;
  /** The value's placeholder in the help. */
  readonly value?: string;
  readonly help: string;
}

const OPTIONS = {
  table: { type: 'string', commands: ALL, value: 'T', help: 'The idempotency table. Default: $IDEMPOTENCY_TABLE.' },
  name: {
    type: 'string',
    commands: ALL,
    value: 'N',
    help: "The records' namespace: the `name` option, or the function name. With stuck: only this namespace.",
  },
  key: { type: 'string', commands: ADDRESSED, value: 'JSON', help: 'The key value the key selector returns, as JSON: \'"order-1"\', \'{"orderId":"o-1"}\'.' },
  'http-key': {
    type: 'string',
    commands: ADDRESSED,
    value: 'K',
    help: 'An httpIdempotency record: the Idempotency-Key header value, with --method and --route.',
  },
  method: { type: 'string', commands: ADDRESSED, value: 'M', help: 'With --http-key: the request method, e.g. POST.' },
  route: {
    type: 'string',
    commands: ADDRESSED,
    value: 'R',
    help: "With --http-key: an HTTP API's route key ('POST /payments'; its path '/payments' in payload format 1.0), a REST API's resource ('/payments/{id}'), else 'METHOD /path' (a $default route of payload 2.0 too).",
  },
  caller: {
    type: 'string',
    commands: ADDRESSED,
    value: 'C',
    help: 'With --http-key: the caller that scoped the key, as callerIdentity(event) (or your `scope`) returned it; omit if none.',
  },
  tenant: {
    type: 'string',
    commands: ADDRESSED,
    value: 'TENANT',
    help: "With --key or --http-key: the tenant id of the invocation, for a function in Lambda's tenant isolation mode.",
  },
  id: { type: 'string', commands: ADDRESSED, value: 'ID', help: 'The record id as logs show it, `<namespace>#<hash>` (instead of --name and a key).' },
  'only-if': {
    type: 'string',
    commands: ['forget'],
    value: 'S',
    help: 'COMPLETED: only while the record is COMPLETED (nothing read first). INPROGRESS: only a stuck attempt, never a COMPLETED record.',
  },
  'lease-until': {
    type: 'string',
    commands: ['forget'],
    value: 'T',
    help: 'Delete only the INPROGRESS attempt whose lease ends at T, as stuck, inspect or forget printed it, live or not: never a later one.',
  },
  yes: { type: 'boolean', commands: ['forget'], help: 'Really delete (forget refuses without it).' },
  json: { type: 'boolean', commands: ALL, help: 'Print JSON on standard output, for scripts.' },
  attributes: { type: 'string', commands: ALL, value: 'JSON', help: 'Attribute names that differ from DynamoDBStore\'s defaults, e.g. \'{"key":"pk"}\'.' },
  region: { type: 'string', commands: ALL, value: 'R', help: "AWS region. Default: a --table ARN's, else the SDK's ($AWS_REGION, the profile's)." },
  profile: { type: 'string', commands: ALL, value: 'P', help: 'AWS profile. Default: $AWS_PROFILE, else the default profile.' },
  help: { type: 'boolean', commands: ALL, short: 'h', help: 'This help (also -h).' },
  version: { type: 'boolean', commands: ALL, help: "The package's version." },
} as const satisfies Record<string, OptionSpec>;

type OptionName = keyof typeof OPTIONS;

/** The help text: commands, then every option from the table. @internal */
export function helpText(): string {
  const options = Object.entries(OPTIONS).map(([name, spec]: [string, OptionSpec]) => `  ${`--${name} ${spec.value ?? ''}`.padEnd(18)} ${spec.help}`);
  return [
    'Usage: lambda-idempotency <command> [options]',
    '',
    'Commands:',
    '  inspect  Show a record: status, retention, lease end, stored sizes, the key that sealed them (never the stored response).',
    '  forget   Delete a record, so the next call with its key runs again. Needs --yes. Reads it first and deletes only',
    '           what it read: an attempt only once its lease has ended (--lease-until T names one, even a live one).',
    '  stuck    List INPROGRESS records whose lease has ended (crashed or timed-out attempts). Scans the table.',
    '',
    'Address a record (inspect, forget) by --name with --key, by --name with --http-key, or by --id.',
    '',
    'Options:',
    ...options,
    '',
    "AWS configuration is the SDK's own: region, credentials, profile; for DynamoDB Local set",
    'AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:8000.',
    'Exit codes: 0 done, 1 failed, 2 usage error (or forget without --yes), 3 no such record (forget: none it may delete),',
    '4 forget refused a record it read, held by an attempt that may be running or replayed by a durable execution (nothing deleted; it says what would delete it).',
    '',
  ].join('\n');
}

/**
 * Parses and checks a command line; throws a {@link UsageError} with a sentence when it cannot run.
 * @internal
 */
export function parseCommand(argv: readonly string[], env: NodeJS.ProcessEnv): Command {
  let parsed: ReturnType<typeof parseArgs<{ args: string[]; options: typeof OPTIONS; allowPositionals: true; strict: true; tokens: true }>>;
  try {
    parsed = parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: true, tokens: true });
  } catch (error) {
    // Help asked for beside an option this version lacks (or one without its value) is still help.
    if (parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: false }).values.help === true) return { command: 'help' };
    const sentence = (error as Error).message.split('. ')[0]!;
    throw new UsageError(sentence.endsWith('.') ? sentence : `${sentence}.`);
  }
  // parseArgs keeps the last of a repeated option: `forget --id a#… --id b#…` must not pick one silently.
  const seen = new Set<string>();
  for (const token of parsed.tokens) {
    if (token.kind !== 'option') continue;
    if (seen.has(token.name)) throw new UsageError(`\`--${token.name}\` is given twice: give it once.`);
    seen.add(token.name);
  }
  const values = parsed.values as Partial<Record<OptionName, string | boolean>>;
  const [command, ...extra] = parsed.positionals;
  if (values.help || command === 'help') return { command: 'help' };
  if (values.version || command === 'version') return { command: 'version' };
  if (command === undefined) throw new UsageError('Which command? Give inspect, forget or stuck (--help lists them).');
  if (!ALL.includes(command as CommandName)) throw new UsageError(`Unknown command \`${command}\`: use inspect, forget or stuck.`);
  if (extra.length > 0) throw new UsageError(`Unexpected argument \`${extra[0]}\`: option values need their --option.`);
  const name = command as CommandName;
  for (const option of Object.keys(values) as OptionName[]) {
    if (!(OPTIONS[option].commands as readonly CommandName[]).includes(name)) throw new UsageError(`\`--${option}\` does not apply to ${name}.`);
  }
  const text = (option: OptionName): string | undefined => {
    const value = values[option] as string | undefined;
    // A `scope` that returned '' keyed its records by that caller, another than none: `--caller ''` names it.
    if (value === '' && option !== 'caller') throw new UsageError(`\`--${option}\` needs a value.`);
    return value;
  };
  const table = text('table') ?? env.IDEMPOTENCY_TABLE;
  if (!table) throw new UsageError('Which table? Give --table or set IDEMPOTENCY_TABLE.');
  const common: Common = {
    table,
    json: values.json === true,
    attributes: attributeNames(text('attributes')),
    ...(text('region') === undefined ? {} : { region: text('region')! }),
    ...(text('profile') === undefined ? {} : { profile: text('profile')! }),
  };
  if (name === 'stuck') {
    const namespace = text('name');
    if (namespace?.includes('#')) throw new UsageError("`--name` is a namespace, without '#'.");
    return { ...common, command: name, ...(namespace === undefined ? {} : { name: namespace }) };
  }
  const address = addressOf(text);
  if (name === 'inspect') return { ...common, command: name, address };
  if (values.yes !== true) {
    throw new UsageError('forget deletes the record, after which the next call with its key runs again: add --yes to do it.');
  }
  const onlyIf = text('only-if');
  if (onlyIf !== undefined && onlyIf !== 'INPROGRESS' && onlyIf !== 'COMPLETED') throw new UsageError('`--only-if` takes INPROGRESS or COMPLETED.');
  const leaseUntil = leaseEnd(text('lease-until'));
  if (leaseUntil !== undefined && onlyIf === 'COMPLETED') throw new UsageError('`--lease-until` names an INPROGRESS attempt: a COMPLETED record has no lease.');
  return { ...common, command: name, address, ...(onlyIf === undefined ? {} : { onlyIf }), ...(leaseUntil === undefined ? {} : { leaseUntil }) };
}

/** Epoch milliseconds, from the instant as the CLI prints it, to the millisecond, or from the number `--json` shows. */
function leaseEnd(given: string | undefined): number | undefined {
  if (given === undefined) return undefined;
  // Any length: a lease written by hand beyond the dates a Date holds is printed, and named by forget, in epoch ms.
  if (/^\d+(\.\d+)?(e\+?\d+)?$/i.test(given) && Number.isFinite(Number(given))) return Number(given);
  const millis = Date.parse(given);
  // Only the exact form: a rounded instant would name no attempt and delete nothing, silently.
  if (Number.isNaN(millis) || new Date(millis).toISOString() !== given) {
    throw new UsageError('`--lease-until` takes the lease end as stuck and inspect print it (2026-12-02T16:08:35.123Z), or in epoch milliseconds.');
  }
  return millis;
}

function addressOf(text: (option: OptionName) => string | undefined): RecordAddress {
  const given = (['key', 'http-key', 'id'] as const).filter((option) => text(option) !== undefined);
  if (given.length !== 1) throw new UsageError('Which record? Give one of --key (with --name), --http-key (with --name, --method, --route) or --id.');
  const httpOnly = (['method', 'route', 'caller'] as const).filter((option) => text(option) !== undefined);
  if (given[0] !== 'http-key' && httpOnly.length > 0) throw new UsageError(`\`--${httpOnly[0]}\` goes with --http-key.`);
  const id = text('id');
  if (id !== undefined) {
    if (text('name') !== undefined) throw new UsageError('`--id` already holds the namespace: leave out --name.');
    if (text('tenant') !== undefined) throw new UsageError('`--id` already holds the tenant: leave out --tenant.');
    return { id };
  }
  const name = text('name');
  if (name === undefined) throw new UsageError('Which namespace? Give --name: the `name` option of the entry point, or the function name.');
  const tenantId = text('tenant');
  const tenant = tenantId === undefined ? {} : { tenant: tenantId };
  const httpKey = text('http-key');
  if (httpKey !== undefined) {
    const method = text('method');
    const route = text('route');
    if (method === undefined || route === undefined)
      throw new UsageError('`--http-key` needs --method and --route (and --caller when the request had a caller identity).');
    const caller = text('caller');
    return { name, http: { key: httpKey, method, route, ...(caller === undefined ? {} : { caller }) }, ...tenant };
  }
  const json = text('key')!;
  try {
    const key: unknown = JSON.parse(json);
    // Rounded, it would address a record no entry point wrote; which record is meant depends on the entry point.
    const inexact = inexactNumberIn(json);
    if (inexact !== undefined) {
      const read = Number(inexact);
      // Beyond the doubles JavaScript reads it as Infinity, which no key can hold: no other entry point wrote such a record.
      const elsewhere = Number.isFinite(read) ? `elsewhere give it as JavaScript reads it, ${read}` : 'no other entry point keys by it';
      throw new UsageError(
        `\`--key\` holds ${inexact}, a number JavaScript cannot hold exactly: quote it ("${inexact}") for an idempotentBatch record, which keeps such numbers exact; ${elsewhere}.`,
      );
    }
    return { name, key, ...tenant };
  } catch (error) {
    if (error instanceof UsageError) throw error;
    // Broken JSON of an object, array or string is not a bare string key: quoting it would address another record.
    if (/^\s*[{["]/.test(json)) throw new UsageError('`--key` is not valid JSON; quote string values inside it.');
    // Quoted for the shell as a whole word: a key with its own quote would end single quotes put around it.
    throw new UsageError(`\`--key\` must be JSON; a string key is quoted: --key ${shellCommand([JSON.stringify(json)])}.`);
  }
}

function attributeNames(json: string | undefined): Partial<AttributeNames> {
  if (json === undefined) return {};
  let names: unknown;
  try {
    names = JSON.parse(json);
  } catch {
    throw new UsageError('`--attributes` must be a JSON object of attribute names, e.g. \'{"key":"pk"}\'.');
  }
  const known = Object.keys(DEFAULT_ATTRIBUTE_NAMES);
  if (names === null || typeof names !== 'object' || Array.isArray(names)) throw new UsageError('`--attributes` must be a JSON object of attribute names.');
  for (const [field, value] of Object.entries(names)) {
    if (!known.includes(field)) throw new UsageError(`\`--attributes\`: unknown field \`${field}\`. Known fields: ${known.join(', ')}.`);
    if (typeof value !== 'string' || value.length === 0) throw new UsageError(`\`--attributes\`: \`${field}\` must be a non-empty string.`);
  }
  return names as Partial<AttributeNames>;
}
