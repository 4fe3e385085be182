import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { REQUEST_TIMEOUTS } from '../dynamodb/dynamodb-store.js';
import { assertSameNames, DynamoDBStore, type DynamoDBStoreOptions, type RecordFence } from '../dynamodb-store.js';
import { IdempotencyError } from '../errors.js';
import { forgetRecord, recordIdOf } from '../operations.js';
import { UnreadableRecordError } from '../response-codec.js';
import { shellCommand } from '../shell-words.js';
import { DURABLE_OWNER, type RecordSummary } from '../store.js';
import { describeRecord, describeStuck, instant, isDate, jsonText as json, keyAttributeAdvice, printableLines, span } from './format.js';
import { type Command, helpText, parseCommand, UsageError } from './options.js';
import { stuckRecords } from './stuck.js';
import { type TableClock, tableClock } from './table-clock.js';

/** Where the CLI reads its environment and writes its output; the real process in `main.ts`. @internal */
export interface CliIo {
  readonly env: NodeJS.ProcessEnv;
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  readonly now: () => number;
  /** The package's version, for `--version`; `undefined` when it cannot be read. */
  readonly version?: string | undefined;
}

/** Exit codes, as the help lists them. @internal */
export const EXIT = { done: 0, failed: 1, usage: 2, notFound: 3, refused: 4 } as const;

/** A checked command line, ready to send its requests. */
interface Plan {
  readonly command: Exclude<Command, { command: 'help' | 'version' }>;
  /** The record id, for inspect and forget. */
  readonly id: string;
  readonly client: DynamoDBClient;
  readonly store: DynamoDBStore;
}

/** Checks everything that can be checked without a request; throws what {@link runCli} reports as a usage error. */
function prepare(argv: readonly string[], env: NodeJS.ProcessEnv): Plan | 'help' | 'version' {
  const command = parseCommand(argv, env);
  if (command.command === 'help' || command.command === 'version') return command.command;
  checkEndpoint(env);
  const id = command.command === 'stuck' ? '' : recordIdOf(command.address);
  // The SDK's own configuration chain (environment, profile, AWS_ENDPOINT_URL_DYNAMODB), unless overridden;
  // each attempt bounded as the store's own client is, since the SDK sets no timeout: a request never answered would hang the command.
  // A table given by its ARN is in the ARN's Region, unless --region says otherwise.
  const region = command.region ?? (command.table.startsWith('arn:') ? command.table.split(':')[3] || undefined : undefined);
  const client = new DynamoDBClient({
    requestHandler: REQUEST_TIMEOUTS,
    ...(region === undefined ? {} : { region }),
    ...(command.profile === undefined ? {} : { profile: command.profile }),
  });
  // The commands write no record: a retention in the environment (IDEMPOTENCY_EXPIRES_AFTER_SECONDS, for functions) is not theirs to check.
  const store = new CliStore({ tableName: command.table, client, attributes: command.attributes, expiresAfterSeconds: 1 }, [
    '--table',
    command.table,
    ...(command.region === undefined ? [] : ['--region', command.region]),
    ...(command.profile === undefined ? [] : ['--profile', command.profile]),
    ...(Object.keys(command.attributes).length === 0 ? [] : ['--attributes', JSON.stringify(command.attributes)]),
  ]);
  return { command, id, client, store };
}

/**
 * An endpoint URL in the environment, as the SDK picks it, must be a URL: `localhost:8000` reads as
 * one of scheme `localhost:`, which the SDK sends to port 80 of this host, and reports whatever
 * answers there (`UnknownError`), or `TypeError: Invalid URL`, neither naming the variable.
 */
function checkEndpoint(env: NodeJS.ProcessEnv): void {
  if (env.AWS_IGNORE_CONFIGURED_ENDPOINT_URLS?.toLowerCase() === 'true') return;
  const variable = env.AWS_ENDPOINT_URL_DYNAMODB ? 'AWS_ENDPOINT_URL_DYNAMODB' : env.AWS_ENDPOINT_URL ? 'AWS_ENDPOINT_URL' : undefined;
  if (variable === undefined) return;
  const given = env[variable]!;
  let url: URL | undefined;
  try {
    url = new URL(given);
  } catch {}
  if (url === undefined || !['http:', 'https:'].includes(url.protocol) || url.hostname === '') {
    // A host and port alone (the usual slip) gets its own URL as the example.
    const example = /^(\[[\d:a-f.]+\]|[\w.-]+)(:\d+)?$/i.test(given) ? `http://${given}` : 'http://127.0.0.1:8000';
    throw new UsageError(`${variable} ${JSON.stringify(given)} is not an http:// or https:// URL: give it with its scheme, e.g. ${example}.`);
  }
}

/** The store of a command: the forget command its error for an unreadable item names has the flags that found the item. */
class CliStore extends DynamoDBStore {
  readonly #flags: readonly string[];

  constructor(options: DynamoDBStoreOptions, flags: readonly string[]) {
    super(options);
    this.#flags = flags;
  }

  protected override async forgetCommand(key: string): Promise<string> {
    return shellCommand(['lambda-idempotency', 'forget', ...this.#flags, '--id', key, '--yes']);
  }
}

/** The table a command read, with the Region it read it in: a table of the same name elsewhere answers too. */
const tableRead = async (table: string, client: DynamoDBClient): Promise<string> => `${table} (${await client.config.region()})`;

async function execute(plan: Plan, io: CliIo): Promise<number> {
  const { command, id, client, store } = plan;
  const clock = tableClock(client, io.now);
  switch (command.command) {
    case 'inspect': {
      const read = await store.inspectFenced(id);
      if (read !== undefined) {
        const { summary } = read;
        // No lease (an INPROGRESS record) or retention under these names, and attributes none of these
        // names is: the functions' store names them otherwise; shown as none, a live attempt would look held
        // until its retention, and a retention unset.
        const a = store.attributes;
        const missing = [
          ...(summary.status === 'INPROGRESS' && summary.leaseUntil === undefined ? [a.leaseUntil] : []),
          ...(summary.expiresAt === undefined ? [a.expiration] : []),
        ];
        if (missing.length > 0 && read.otherNames.length > 0) {
          throw new Error(
            `${id} in ${command.table} has no \`${missing[0]}\` attribute but holds ${read.otherNames.map((name) => `\`${name}\``).join(', ')}, which none of these attribute names is: it was written under other attribute names than these; give --attributes with every name the functions' store uses.`,
          );
        }
        io.stdout(command.json ? json(summary) : `${describeRecord(summary, clock.now())}\n`);
        return EXIT.done;
      }
      const hint = missHint(command);
      if (!command.json) {
        io.stdout(`No record ${id} in ${await tableRead(command.table, client)}.${hint}\n`);
      } else {
        io.stdout(json(null));
        if (hint) io.stderr(`lambda-idempotency:${hint}\n`);
      }
      return EXIT.notFound;
    }
    case 'forget':
      return forget(command, id, store, client, clock, io);
    case 'stuck': {
      io.stderr(`lambda-idempotency: stuck scans the whole table ${command.table}: every item is read (and billed), page by page.\n`);
      const found: RecordSummary[] = [];
      try {
        for await (const summary of stuckRecords({
          client,
          tableName: command.table,
          attributes: store.attributes,
          now: clock.now,
          ...(command.name ? { name: command.name } : {}),
        })) {
          found.push(summary);
          if (!command.json) io.stdout(`${describeStuck(summary, clock.now())}\n`);
        }
      } catch (error) {
        // A later page that fails (after the SDK's retries) must not lose what the pages before it found:
        // a script gets them as valid JSON, and both modes are told that the list is partial (exit 1).
        if (found.length === 0) throw error;
        if (command.json) io.stdout(json(found));
        await report(error, plan, io);
        io.stderr(
          `lambda-idempotency: the scan of ${command.table} stopped before its end: the ${found.length} INPROGRESS record${found.length === 1 ? '' : 's'} past the lease listed are those of the pages it read; run stuck again for the others.\n`,
        );
        return EXIT.failed;
      }
      io.stdout(command.json ? json(found) : `${found.length} INPROGRESS record${found.length === 1 ? '' : 's'} past the lease.\n`);
      // None found under a name no record is namespaced by: say so, not only that none is stuck.
      const hint = found.length === 0 && command.name ? nameHint(command.name) : '';
      if (hint) io.stderr(`lambda-idempotency:${hint}\n`);
      return EXIT.done;
    }
  }
}

/** Base64url SHA-256, the hash of every record id the library writes. */
const HASH = /^[A-Za-z0-9_-]{43}$/;

/**
 * Why an address may have missed the record the function uses, when its spelling says so: an id
 * copied in part (or with a character around it), a namespace that is not a function's name, a key
 * that is a record id or hash, a key whose number or string twin is another record. '' when nothing stands out.
 */
function missHint({ address }: Extract<Command, { address: unknown }>): string {
  if ('id' in address) {
    const hash = address.id.slice(address.id.indexOf('#') + 1);
    if (!HASH.test(hash))
      return ` Its hash ${JSON.stringify(hash)} is not one the library writes (43 characters of base64url): copy the id whole, as logs show it.`;
    const name = address.id.slice(0, address.id.indexOf('#'));
    return name === name.trim() ? '' : ` Its namespace ${JSON.stringify(name)} has spaces around it: copy the id as logs show it.`;
  }
  const named = nameHint(address.name);
  if (named) return named;
  if ('http' in address) {
    // The middleware reads a quoted header value (an RFC 8941 string) without its quotes, and drops spaces around it.
    const { key } = address.http;
    if (/^\s*".*"\s*$/.test(key)) return ` The quotes of a quoted Idempotency-Key are not part of the key: give --http-key without them.`;
    return key === key.trim() ? '' : ` The middleware drops the spaces around an Idempotency-Key: give --http-key without them.`;
  }
  // A record id, or its hash, copied from a log into --key is hashed again, as a key: another record.
  if (typeof address.key === 'string' && /^[^#]+#[A-Za-z0-9_-]{43}$/.test(address.key)) {
    return ` \`--key\` holds a record id, which is hashed again as a key: give it as ${shellCommand(['--id', address.key])}.`;
  }
  if (typeof address.key === 'string' && HASH.test(address.key)) {
    return ` \`--key\` holds a record's hash, which is hashed again as a key: give the record id, ${shellCommand(['--id', `${address.name}#${address.key}`])}.`;
  }
  if (typeof address.key === 'number') return ` The string key "${address.key}" is another record: --key '"${address.key}"'.`;
  if (typeof address.key === 'string' && /^-?(0|[1-9]\d*)(\.\d+)?$/.test(address.key) && String(Number(address.key)) === address.key) {
    return ` The number key ${address.key} is another record: --key ${address.key}.`;
  }
  return '';
}

/** What to give for a `--name` that is no function's bare name (an ARN, an alias or version, spaces around it); '' for any other. */
function nameHint(name: string): string {
  return name !== name.trim() || name.includes(':')
    ? ` --name ${JSON.stringify(name)} is not a function's name: records are namespaced by the name alone (no ARN, alias, version or spaces), or by the \`name\` option.`
    : '';
}

/** A lease end as `--lease-until` takes it back exactly: ISO, or epoch milliseconds when it has a fraction of one. */
const leaseText = (millis: number): string => (Number.isInteger(millis) && isDate(millis) ? new Date(millis).toISOString() : String(millis));

const DELETED = 'the next call with this key runs again (not in an instance that holds it in its cacheSize memory).';

/**
 * Deletes the record, fenced so that a call that took it over since is never deleted: by
 * `--lease-until`, by `--only-if COMPLETED`, or else on what forget reads first. An attempt is
 * deleted only once its lease has ended (a takeover needs that and sets a later lease, so the call
 * that took over keeps the record and runs alone); a COMPLETED record, and an INPROGRESS record
 * without a lease (held until its retention), only while it is as read: same owner, status, lease
 * and retention, so a call that claimed the key again after its retention keeps its record. Plain
 * forget also deletes an item the store cannot read as a record, as the store's error tells users to,
 * fenced so that a claim that replaced it since is never deleted.
 */
async function forget(
  command: Extract<Command, { command: 'forget' }>,
  id: string,
  store: DynamoDBStore,
  client: DynamoDBClient,
  clock: TableClock,
  io: CliIo,
): Promise<number> {
  const where = async () => `in ${await tableRead(command.table, client)}`;
  const print = (deleted: boolean, leaseUntil: number | undefined, text: string): number => {
    io.stdout(command.json ? json({ id, deleted, ...(leaseUntil === undefined ? {} : { leaseUntil }) }) : `${text}\n`);
    return deleted ? EXIT.done : EXIT.notFound;
  };
  // The record is there and forget will not delete it (an attempt that may be running): a script
  // must not read that as "no record", which would take the key as cleared.
  const refuse = (leaseUntil: number | undefined, text: string): number => {
    io.stdout(command.json ? json({ id, deleted: false, refused: true, ...(leaseUntil === undefined ? {} : { leaseUntil }) }) : `${text}\n`);
    return EXIT.refused;
  };
  // A delete that read nothing first and matched nothing: a mistyped address is as likely as a record that changed.
  const unmatched = (leaseUntil: number | undefined, text: string): number => {
    const hint = missHint(command);
    if (command.json && hint) io.stderr(`lambda-idempotency:${hint}\n`);
    return print(false, leaseUntil, `${text}${hint}`);
  };
  let leaseUntil = command.leaseUntil;
  if (leaseUntil === undefined) {
    if (command.onlyIf === 'COMPLETED') {
      const deleted = await forgetRecord({ store, id, onlyIf: 'COMPLETED' });
      return deleted
        ? print(true, undefined, `Deleted ${id}; ${DELETED}`)
        : unmatched(undefined, `No record ${id} with status COMPLETED ${await where()}: nothing deleted.`);
    }
    let read: { summary: RecordSummary; fence: RecordFence; otherNames: readonly string[] } | undefined;
    try {
      read = await store.inspectFenced(id);
    } catch (error) {
      if (!(error instanceof UnreadableRecordError) || command.onlyIf !== undefined) throw error;
      const result = await store.forgetUnreadable(id);
      return print(
        result === 'deleted',
        undefined,
        result === 'deleted'
          ? `Deleted ${id}, an item this store cannot read as a record (written by hand, or under other attribute names); ${DELETED}`
          : result === 'absent'
            ? `No record ${id} ${await where()}: nothing deleted.`
            : `${id} changed after forget read it (a call claimed it, or it was written again): nothing deleted.`,
      );
    }
    if (read === undefined || (command.onlyIf && read.summary.status === 'COMPLETED')) {
      const missed = `No record ${id}${command.onlyIf ? ' with status INPROGRESS' : ''} ${await where()}: nothing deleted.`;
      if (command.json && read === undefined && missHint(command)) io.stderr(`lambda-idempotency:${missHint(command)}\n`);
      return print(false, undefined, `${missed}${read === undefined ? missHint(command) : ''}`);
    }
    const seen = read.summary;
    // No lease under this name, and attributes none of these names is: its lease may be under another
    // name (the functions' store names it otherwise), and the attempt live.
    if (seen.status === 'INPROGRESS' && seen.leaseUntil === undefined) assertSameNames(id, command.table, store.attributes.leaseUntil, read.otherNames);
    // A durable execution's COMPLETED record (a call in its body given the durable context) is replayed
    // by every resume of a suspended execution: forgotten, the call would run again in that execution.
    // Its owner tells it; whether the execution has ended, only the operator knows (--only-if COMPLETED).
    if (seen.status === 'COMPLETED' && read.fence[store.attributes.owner]?.S?.startsWith(DURABLE_OWNER)) {
      return refuse(
        undefined,
        `${id} was written by a durable execution, which replays it on every resume: forgetting it while the execution is suspended would run the call again, so nothing was deleted. ` +
          'If you know the execution has ended, add --only-if COMPLETED.',
      );
    }
    // A COMPLETED record, or an INPROGRESS one without a lease, is deleted only as read: a call that
    // claimed the key since (its retention ended) writes another owner, and keeps its record.
    if (seen.status === 'COMPLETED' || (seen.leaseUntil === undefined && !command.onlyIf)) {
      const deleted = await store.forgetFenced(id, read.fence);
      const since = seen.status === 'COMPLETED' ? 'a call claimed it again after its retention' : 'it completed, or a call claimed it after its retention';
      return print(
        deleted,
        undefined,
        deleted ? `Deleted ${id}; ${DELETED}` : `${id} changed after forget read it ${seen.status} (${since}, or it is gone): nothing deleted.`,
      );
    }
    if (seen.leaseUntil === undefined) {
      return refuse(undefined, `${id} is INPROGRESS without a lease: nothing deleted. Forget it without --only-if if nothing runs.`);
    }
    // Judged after the read, whose answer dates the table's clock.
    const now = clock.now();
    if (seen.leaseUntil >= now) {
      // Ended by this machine's clock alone: say why the attempt is still taken as running.
      const skew =
        seen.leaseUntil < io.now() && clock.ahead() >= 1000 ? ` by the table's clock (this machine's clock is ${span(clock.ahead())} ahead of it)` : '';
      return refuse(
        seen.leaseUntil,
        `${id} is held by an attempt whose lease ends ${instant(seen.leaseUntil, now)}${skew}: it may be running, so nothing was deleted. ` +
          `If you know it is not (a durable execution that failed), add --lease-until ${leaseText(seen.leaseUntil)}${command.onlyIf ? ' instead of --only-if' : ''}.`,
      );
    }
    leaseUntil = seen.leaseUntil;
  }
  const deleted = await forgetRecord({ store, id, leaseUntil });
  if (!deleted) {
    const text = `No attempt of ${id} whose lease ends at ${leaseText(leaseUntil)}: nothing deleted (another attempt took the record over, or it completed or is gone).`;
    // Read first (plain forget, --only-if INPROGRESS), the address found a record: no hint is due.
    return command.leaseUntil === undefined ? print(false, leaseUntil, text) : unmatched(leaseUntil, text);
  }
  const now = clock.now();
  return print(true, leaseUntil, `Deleted ${id}, the attempt whose lease ${leaseUntil < now ? 'ended' : 'ends'} ${instant(leaseUntil, now)}; ${DELETED}`);
}

/** What to check after a failed request, when its error does not say. */
async function hintFor(error: unknown, plan: Plan, env: NodeJS.ProcessEnv): Promise<string> {
  const { command, client } = plan;
  if (/region is missing/i.test((error as Error | null)?.message ?? '')) return ': give --region or set AWS_REGION.';
  // The SDK quotes the Region it refused, but not where it read it (--region, AWS_REGION or the profile).
  if (/^Region not accepted: /.test((error as Error | null)?.message ?? '')) return " Give --region or set AWS_REGION to a Region's name, such as us-east-1.";
  if ((error as Error | null)?.name === 'CredentialsProviderError') {
    // The SDK reads AWS_PROFILE when no --profile is given: then that profile is the one to check.
    const profile = command.profile ?? (env.AWS_PROFILE ? `${env.AWS_PROFILE} (AWS_PROFILE)` : undefined);
    return profile === undefined
      ? ': give --profile, or set AWS_PROFILE or credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) in the environment.'
      : `: check that the profile ${profile} exists in the AWS config or credentials file, with credentials.`;
  }
  // A table keyed otherwise refuses the key itself. DynamoDB Local names a missing key attribute; DynamoDB's
  // "does not match the schema" is also its refusal of a key without the table's sort key, and a key of
  // another type is refused apart ("Type mismatch for key"; Local's refusal of a missing sort key is "The
  // number of conditions on the keys is invalid").
  if ((error as Error | null)?.name === 'ValidationException') {
    const { table } = command;
    const { key } = plan.store.attributes;
    if (/required keys was not given/i.test((error as Error).message)) return `: ${keyAttributeAdvice(table, key)}`;
    if (/key element does not match the schema|Type mismatch for key|number of conditions on the keys is invalid/i.test((error as Error).message)) {
      return `: ${table} is not keyed by \`${key}\`, a string, alone: the functions' store needs such a table; if its key attribute has another name, give --attributes '{"key":"<its name>"}'.`;
    }
  }
  // DynamoDB names neither the table nor the Region it looked in: most often it is another Region's, or another account's.
  if ((error as Error | null)?.name !== 'ResourceNotFoundException') return '';
  const region = await client.config.region().catch(() => 'this Region');
  return ` (table ${command.table} in ${region}): check --table, --region and --profile.`;
}

/** Writes the error a command failed with, and what to check when its error does not say. */
async function report(thrown: unknown, plan: Plan, io: CliIo): Promise<void> {
  // forgetRecord's STORE_FAILURE wraps the store's error, which the command reports as it is, with its hint.
  const error = thrown instanceof IdempotencyError && thrown.code === 'STORE_FAILURE' && thrown.cause !== undefined ? thrown.cause : thrown;
  const message = error instanceof Error ? `${error.name === 'Error' ? '' : `${error.name}: `}${error.message}` : String(error);
  io.stderr(`lambda-idempotency: ${printableLines(message)}${await hintFor(error, plan, io.env)}\n`);
}

/**
 * Runs one command line and returns its exit code: 0 done, 1 a request failed, 2 a usage error
 * (nothing sent), 3 no such record, 4 forget refused a record it read (an attempt that may be running, or a durable execution's COMPLETED record). @internal
 */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  let plan: Plan | 'help' | 'version';
  try {
    plan = prepare(argv, io.env);
  } catch (error) {
    // A bad address (a malformed id, a key JSON cannot hash) or table name is as much a usage error as a bad flag.
    if (!(error instanceof UsageError || error instanceof TypeError || error instanceof IdempotencyError)) throw error;
    io.stderr(`lambda-idempotency: ${error.message}\nRun \`lambda-idempotency --help\` for usage.\n`);
    return EXIT.usage;
  }
  if (plan === 'help') {
    io.stdout(helpText());
    return EXIT.done;
  }
  if (plan === 'version') {
    if (io.version === undefined) {
      io.stderr('lambda-idempotency: the version is unknown: this copy of the command is not in its package.\n');
      return EXIT.failed;
    }
    io.stdout(`${io.version}\n`);
    return EXIT.done;
  }
  try {
    return await execute(plan, io);
  } catch (thrown) {
    await report(thrown, plan, io);
    return EXIT.failed;
  } finally {
    plan.client.destroy();
  }
}
