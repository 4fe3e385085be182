import { Annotations, Arn, Aws, Duration, type IResource, RemovalPolicy, Stack, Token, TokenComparison } from 'aws-cdk-lib';
import { BillingMode, type ITable, Table, TableEncryption, TableV2 } from 'aws-cdk-lib/aws-dynamodb';
import { AccountPrincipal, Grant, type IGrantable, principalIsOwnedResource } from 'aws-cdk-lib/aws-iam';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import type { IFunction, Function as LambdaFunction, SingletonFunction } from 'aws-cdk-lib/aws-lambda';
import { SqsEventSource, type SqsEventSourceProps } from 'aws-cdk-lib/aws-lambda-event-sources';
import type { IQueue } from 'aws-cdk-lib/aws-sqs';
import { Construct, type IConstruct } from 'constructs';
import { MAX_ENVIRONMENT_RETENTION_SECONDS, TABLE_NAME } from '../dynamodb-store-options.js';
import { checkOptions, isBoolean, type OptionCheck } from '../options.js';
import { idempotencyTableSchema } from '../table-schema.js';
import {
  aliasOf,
  checkDurable,
  checkEnvironmentRetention,
  checkEnvironmentTable,
  checkFunction,
  checkPipes,
  checkQueue,
  checkRole,
  checkStreams,
  checkTable,
  checkTableReach,
  checkUnknownQueues,
  environmentValue,
  type Finding,
  formatSeconds,
  isKeyOfApp,
  localReplica,
  mappingsOf,
  namedByArn,
  queuesFeeding,
} from './checks.js';
import { IdempotencyMonitoring, type IdempotencyMonitoringProps, isLambdaFunction, watchedName } from './monitoring.js';
import { tablePropsFromSchema } from './schema.js';

/**
 * Environment variable holding the table name (its ARN, for a table of another account, or of a literal
 * account while the function's is known only at deploy), set on
 * every attached function.
 *
 * @example
 * ```ts
 * // in the handler
 * const store = new DynamoDBStore({ tableName: process.env.IDEMPOTENCY_TABLE! });
 * ```
 */
export const IDEMPOTENCY_TABLE_ENV = 'IDEMPOTENCY_TABLE';
/**
 * Environment variable holding the record retention in seconds (the table's, or the function's own
 * from `attachFunction`), set on every attached function, so the handler keeps records exactly as
 * long as the synth-time checks assumed. `new DynamoDBStore()` reads it; a handler's own
 * `expiresAfterSeconds` option would bypass the checks.
 *
 * @example
 * ```ts
 * // in the handler: records kept for IDEMPOTENCY_EXPIRES_AFTER_SECONDS
 * const store = new DynamoDBStore();
 * ```
 */
export const IDEMPOTENCY_EXPIRES_AFTER_SECONDS_ENV = 'IDEMPOTENCY_EXPIRES_AFTER_SECONDS';

/**
 * The only item actions the record protocol performs: claim = PutItem, complete = UpdateItem,
 * release = DeleteItem. It never reads before it writes (a refused write returns the old item),
 * so no GetItem (a refusal that comes back without the item, and atomic mode's read of a record, read it with an
 * UpdateItem that changes nothing), and never Scan or Query.
 */
const ITEM_ACTIONS = ['dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem'];
/** What DynamoDB needs of a caller to encrypt and decrypt items under a customer managed key. */
const KEY_ACTIONS = ['kms:Decrypt', 'kms:DescribeKey', 'kms:Encrypt', 'kms:ReEncrypt*', 'kms:GenerateDataKey*'];

/**
 * Grants `grantee` the key actions. In the key's account, in the grantee's policy alone (which the
 * key policy's trust of the account honours): `IKey.grant` names a grantee of another Region in the
 * key policy, and a key's stack naming the function's role while the function's stack reads the
 * table is a dependency cycle; for a key imported into another Region's stack it grants every key.
 *
 * A grantee of another account needs both halves (KMS: "Allowing users in other accounts to use a
 * KMS key"). In the key policy, `Resource: "*"` is the documented form and means this key alone.
 * In the grantee's own policy it would mean every key whose policy trusts the grantee's account,
 * which `IKey.grant` writes there for a key of this app, whose ARN the other account's stack cannot
 * read: that half names the keys of the key's account and Region instead (every Region, for a key
 * stack whose Region is known only at deploy), of which only those whose key policy allows the
 * grantee (this one) can be used. An imported key's literal ARN can be read: that half names it, and
 * the key's owner adds the other; for an ARN known only at deploy (`Key.fromLookup`'s), that half
 * names the keys of its account and Region, as for a key of this app.
 *
 * The key's ARN cannot be read across environments either when one of the two accounts is known
 * only at deploy (a stack that gives a Region alone, say), where `IKey.grant` writes `*` in the
 * grantee's policy too. The key's account is then written as the key stack's, a pseudo parameter
 * that the grantee's stack reads as its own account, as CDK reads the table's ARN there: the keys
 * of the account the table's grant names. Two stacks without an account deploy to one (CDK's
 * convention): the grantee's policy alone, as in the key's account. A literal account and one known
 * only at deploy may differ: both halves, as for another account.
 */
function grantKey(key: IKey, grantee: IGrantable): void {
  // An alias's ARN in a policy's Resource covers the alias, not the use of its key: grant on the key
  // it names or, when the app cannot read which (`Alias.fromAliasName`), on the keys of its account
  // and Region that carry the alias.
  const alias = aliasOf(key);
  if (alias !== undefined) {
    if (alias.target !== undefined) {
      grantKey(alias.target, grantee);
      return;
    }
    const keys = Stack.of(key).formatArn({ service: 'kms', resource: 'key', resourceName: '*' });
    Grant.addToPrincipal({
      grantee,
      actions: KEY_ACTIONS,
      resourceArns: [keys],
      conditions: { 'ForAnyValue:StringEquals': { 'kms:ResourceAliases': alias.name } },
    });
    return;
  }
  // The account the role is in (an imported role's, from its ARN), not the stack's that uses it.
  const account = [grantee.grantPrincipal, grantee].map((c) => (c as Partial<IResource>).env?.account).find((a) => a !== undefined);
  const sameAccount = account === undefined ? TokenComparison.BOTH_UNRESOLVED : Token.compareStrings(account, key.env.account);
  if (sameAccount === TokenComparison.SAME) {
    Grant.addToPrincipal({ grantee, actions: KEY_ACTIONS, resourceArns: [key.keyArn] });
    return;
  }
  // The stack whose policy a role of this app gets, and whether it can read the key's ARN: `IKey.grant`'s test.
  const granteeStack = principalIsOwnedResource(grantee.grantPrincipal) ? Stack.of(grantee.grantPrincipal) : undefined;
  const keyStack = Stack.of(key);
  const unreadable = isKeyOfApp(key) && granteeStack !== undefined && (granteeStack.account !== keyStack.account || granteeStack.region !== keyStack.region);
  if (sameAccount !== TokenComparison.DIFFERENT && !unreadable) {
    key.grant(grantee, ...KEY_ACTIONS);
    return;
  }
  // A Region known only at deploy is the key stack's, which the grantee's stack cannot name.
  const region = Token.isUnresolved(key.env.region) ? '*' : key.env.region;
  const keysOfItsAccount = Arn.format({ partition: Aws.PARTITION, service: 'kms', region, account: key.env.account, resource: 'key', resourceName: '*' });
  if (account === key.env.account) {
    // The one token of stacks without an account.
    Grant.addToPrincipal({ grantee, actions: KEY_ACTIONS, resourceArns: [keysOfItsAccount] });
  } else if (isKeyOfApp(key)) {
    // KMS refuses a key policy that names a role not created yet, as in a stack deployed after the key's: the account then, as `IKey.grant` does.
    const dependent = granteeStack !== undefined && granteeStack !== keyStack && granteeStack.dependencies.includes(keyStack);
    const resourcePolicyPrincipal = dependent ? new AccountPrincipal(granteeStack.account) : undefined;
    Grant.addToPrincipalAndResource({
      grantee,
      actions: KEY_ACTIONS,
      resource: key,
      resourceArns: [keysOfItsAccount],
      resourceSelfArns: ['*'],
      resourcePolicyPrincipal,
    });
  } else {
    // An imported key: its owner adds the key policy's half.
    Grant.addToPrincipal({ grantee, actions: KEY_ACTIONS, resourceArns: [Token.isUnresolved(key.keyArn) ? keysOfItsAccount : key.keyArn] });
  }
}

/**
 * Grants `grantee` the item actions on `table`. For a grantee of another account, the grant adds a
 * statement to a table's resource-based policy too, where the table is `*`: `TableV2.grant` names it
 * by its own ARN there instead, a table that refers to itself, which CloudFormation refuses as a
 * circular dependency. (`Table.grant` writes `*`; item actions do not apply to indexes.)
 */
function grantItems(table: ITable, grantee: IGrantable): Grant {
  if (!(table instanceof TableV2)) return table.grant(grantee, ...ITEM_ACTIONS);
  return Grant.addToPrincipalOrResource({ grantee, actions: ITEM_ACTIONS, resourceArns: [table.tableArn], resourceSelfArns: ['*'], resource: table });
}

/**
 * The function `fn` stands for: a `SingletonFunction` is a handle on the one function of its uuid in
 * its stack, which holds the environment, timeout and settings the checks read, and which every
 * handle with that uuid shares (so shares one table).
 */
function functionOf(fn: LambdaFunction | SingletonFunction): LambdaFunction {
  const name = (fn as Partial<SingletonFunction>).constructName;
  if (fn.node.defaultChild !== undefined || typeof name !== 'string') return fn as LambdaFunction;
  const found = Stack.of(fn).node.tryFindChild(name) as Partial<LambdaFunction> | undefined;
  return typeof found?.addEnvironment === 'function' ? (found as LambdaFunction) : (fn as LambdaFunction);
}

/** Whether two strings are known to be equal: the same token, or the same literal. */
const sameString = (a: string, b: string): boolean => a === b || Token.compareStrings(a, b) === TokenComparison.SAME;

/** A number known at synth that is not a whole number: CloudFormation refuses it at deploy (NaN is written as null). */
const notWhole = (value: unknown): boolean => value !== undefined && !Token.isUnresolved(value) && !Number.isInteger(value);

/**
 * Refuses `props` that `SqsEventSource` would take and the deployment would not: a count that is not
 * a whole number, and a `batchSize` over 10 with a batching window of 0 seconds, which Lambda
 * refuses. CDK checks the ranges; props it does not know pass on to it, as a newer aws-cdk-lib may
 * know them.
 */
function checkSqsProps(props: IdempotentSqsConsumerProps): void {
  const fail = (message: string): never => {
    throw new TypeError(`IdempotencyTable.attachSqsConsumer: ${message}`);
  };
  if (props === null || typeof props !== 'object' || Array.isArray(props)) fail('`props` must be an object of SqsEventSource props, or left out.');
  const { reportBatchItemFailures, ...rest } = props as SqsEventSourceProps;
  if (reportBatchItemFailures === false) fail('`reportBatchItemFailures` is always on: failed items must be retried, not deleted.');
  const { batchSize, maxBatchingWindow, maxConcurrency } = rest;
  if (notWhole(batchSize)) fail(`\`batchSize\` must be a whole number of messages (got ${String(batchSize)}).`);
  if (notWhole(maxConcurrency)) fail(`\`maxConcurrency\` must be a whole number of concurrent functions (got ${String(maxConcurrency)}).`);
  if (batchSize !== undefined && !Token.isUnresolved(batchSize) && batchSize > 10 && maxBatchingWindow !== undefined && !maxBatchingWindow.isUnresolved()) {
    if (maxBatchingWindow.toMilliseconds() < 1000) {
      fail(
        `\`batchSize\` ${batchSize} (over 10) needs a \`maxBatchingWindow\` of at least 1 second, or Lambda refuses the event source at deploy (got ${maxBatchingWindow.toHumanString()}).`,
      );
    }
  }
}

/**
 * Refuses a second event source of `queue` on `fn` (its unqualified self; an alias or a version is
 * another consumer), before anything is wired: Lambda refuses a second mapping of one queue to one
 * function at deploy, and CDK a second `SqsEventSource` of it with a clash of construct ids that
 * names neither. Not idempotent: a second call's `props` (batch size, filters…) could not apply.
 * `byConstruct`: the queue was wired by `attachSqsConsumer`.
 */
function refuseSecondMapping(fn: LambdaFunction, queue: IQueue, byConstruct: boolean): void {
  const mapping = byConstruct
    ? undefined
    : mappingsOf(fn).find((m) => sameString(m.functionName, fn.functionName) && m.eventSourceArn !== undefined && sameString(m.eventSourceArn, queue.queueArn));
  if (!byConstruct && mapping === undefined) return;
  const how = byConstruct
    ? 'by an earlier attachSqsConsumer call: give all its settings to that one call'
    : `by the event source ${mapping?.node.scope?.node.path}, added without attachSqsConsumer: remove that one (attachSqsConsumer adds its own, with \`reportBatchItemFailures\`)`;
  throw new Error(
    `IdempotencyTable.attachSqsConsumer: the queue ${queue.node.path} already feeds ${fn.node.path}, ${how}. Lambda maps a queue to a function once.`,
  );
}

/**
 * Refuses to attach `fn` whose environment already names another retention or table than attaching
 * sets: `addEnvironment` would replace it without a word, and a retention set by hand (for a queue
 * the checks cannot see, say) become the table's, possibly shorter, so late retries would run again.
 */
function refusePresetEnvironment(fn: LambdaFunction, table: ITable, tableVariable: string, seconds: number, own: boolean): void {
  const retention = environmentValue(fn, IDEMPOTENCY_EXPIRES_AFTER_SECONDS_ENV);
  if (retention !== undefined && retention !== String(seconds)) {
    const asOption = typeof retention === 'string' && /^[1-9][0-9]*$/.test(retention) ? `Duration.seconds(${retention})` : '…';
    throw new TypeError(
      `IdempotencyTable.attachFunction: ${fn.node.path} already has ${IDEMPOTENCY_EXPIRES_AFTER_SECONDS_ENV}=${JSON.stringify(retention)} in its environment, which attaching would replace with ${own ? 'the `expiresAfter` given' : "the table's retention"} (${formatSeconds(seconds)}): give it as \`attachFunction(fn, { expiresAfter: ${asOption} })\` and remove it from the environment.`,
    );
  }
  const preset = environmentValue(fn, IDEMPOTENCY_TABLE_ENV);
  if (preset === undefined) return;
  const [changed] = checkEnvironmentTable(fn, IDEMPOTENCY_TABLE_ENV, table, tableVariable);
  if (changed === undefined) return;
  const value = JSON.stringify(preset);
  const name: unknown = (table.node.defaultChild as { tableName?: unknown } | undefined)?.tableName ?? table.tableName;
  const named = typeof name === 'string' && !Token.isUnresolved(name) ? ` (${name})` : '';
  throw new TypeError(
    `IdempotencyTable.attachFunction: ${fn.node.path} already has ${IDEMPOTENCY_TABLE_ENV}=${value} in its environment, which attaching would replace with the table ${table.node.path}${named}: for records in that other table, attach the function to it (\`IdempotencyTable.fromTable(scope, id, table).attachFunction(fn)\`); a table the handler uses for its own work needs a variable of another name.`,
  );
}

/** Whether `stack` is nested, at any depth, in `parent`. */
function nestedIn(stack: Stack, parent: Stack): boolean {
  for (let outer = stack.nestedStackParent; outer !== undefined; outer = outer.nestedStackParent) if (outer === parent) return true;
  return false;
}

/** The table each function is attached to: one function has one retention. */
const attachedTables = new WeakMap<LambdaFunction, IdempotencyTableBase>();

/** Props of a new {@link IdempotencyTable}. */
export interface IdempotencyTableProps {
  /**
   * Name of the table.
   * @default - a name generated by CloudFormation
   */
  readonly tableName?: string;
  /**
   * How long a completed record is kept (the TTL the library writes). Duplicates that arrive later
   * run again, so it must outlive every retry of the callers; the synth-time checks compare it with
   * the queues, stream sources and async-invoke settings of the functions attached to this table
   * (of those attached with an `expiresAfter` of their own, with that one). A whole number of
   * seconds, 1 or more, known at synth time.
   * @default Duration.hours(24)
   */
  readonly expiresAfter?: Duration;
  /**
   * A customer managed KMS key for the table; attached functions get the key grants they need.
   * @default - encrypted with an AWS owned key
   */
  readonly encryptionKey?: IKey;
  /**
   * What happens to the table when it leaves the stack: `RETAIN`, `RETAIN_ON_UPDATE_OR_DELETE` or
   * `DESTROY` (CloudFormation cannot snapshot a DynamoDB table).
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
  /**
   * Whether DynamoDB refuses to delete the table (from the console, the API or CloudFormation) until
   * the protection is turned off: losing the records lets every retry run again.
   * @default true, unless `removalPolicy` is `RemovalPolicy.DESTROY`
   */
  readonly deletionProtection?: boolean;
  /**
   * Whether point-in-time recovery is enabled.
   * @default true
   */
  readonly pointInTimeRecovery?: boolean;
}

/** Options of {@link IdempotencyTable.fromTable}. */
export interface ExistingIdempotencyTableProps {
  /**
   * How long a completed record is kept, as for a new table: attached functions get it, and the
   * synth-time checks compare it with their retry horizons.
   * @default Duration.hours(24)
   */
  readonly expiresAfter?: Duration;
  /**
   * The table's customer managed KMS key, whose grants attached functions get: for a table that
   * does not know it (`Table.fromTableName`); another key than the one a table knows is refused.
   * @default - the table's own `encryptionKey`, if it has one
   */
  readonly encryptionKey?: IKey;
}

/** Options of {@link IdempotencyTableBase.attachFunction}. */
export interface AttachFunctionOptions {
  /**
   * How long this function's records are kept, when not as long as the table's `expiresAfter`: the
   * function gets it as `IDEMPOTENCY_EXPIRES_AFTER_SECONDS`, and the synth-time checks compare it
   * with the function's retry horizons. Set a function's own retention here rather than as the
   * handler's `expiresAfterSeconds` option, which the checks cannot see. Fixed by the function's
   * first attachment.
   * @default the table's `expiresAfter`
   */
  readonly expiresAfter?: Duration;
}

/**
 * Every option and its check: a misspelt or foreign one (a `Table` prop the construct sets itself,
 * such as `timeToLiveAttribute`) is refused, not ignored.
 */
/** A KMS key construct, not its ARN: the construct grants through it, and CDK would fail deep inside on a string. Not `instanceof`, as for `expiresAfter`. */
const isKey: OptionCheck = (value) =>
  typeof (value as Partial<IKey> | null)?.grantEncryptDecrypt === 'function'
    ? undefined
    : `must be a KMS key construct (an IKey: new Key(…), or Key.fromKeyArn(scope, id, arn) for an existing one) (got ${typeof value === 'string' ? JSON.stringify(value) : String(value)})`;

const PROP_CHECKS: Record<keyof IdempotencyTableProps, OptionCheck> = {
  tableName: (value) =>
    Token.isUnresolved(value) || (typeof value === 'string' && TABLE_NAME.test(value))
      ? undefined
      : `must be 3 to 255 letters, digits, '_', '-' or '.' (got ${JSON.stringify(value)})`,
  // Not `instanceof`: an app may load another copy of aws-cdk-lib than this module does.
  expiresAfter: (value) =>
    typeof (value as Partial<Duration> | null)?.toSeconds === 'function'
      ? undefined
      : `must be a Duration, such as Duration.hours(24) (got ${JSON.stringify(value)})`,
  encryptionKey: isKey,
  removalPolicy: (value) =>
    value === RemovalPolicy.RETAIN || value === RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE || value === RemovalPolicy.DESTROY
      ? undefined
      : `must be RETAIN, RETAIN_ON_UPDATE_OR_DELETE or DESTROY: CloudFormation cannot snapshot a DynamoDB table (got ${JSON.stringify(value)})`,
  deletionProtection: isBoolean,
  pointInTimeRecovery: isBoolean,
};

const EXISTING_PROP_CHECKS: Record<keyof ExistingIdempotencyTableProps, OptionCheck> = {
  expiresAfter: PROP_CHECKS.expiresAfter,
  encryptionKey: isKey,
};

const ATTACH_CHECKS: Record<keyof AttachFunctionOptions, OptionCheck> = { expiresAfter: PROP_CHECKS.expiresAfter };

/** A retention known at synth time, in whole seconds. */
function retentionSeconds(where: string, expiresAfter: Duration = Duration.hours(24)): number {
  const seconds = expiresAfter.toSeconds({ integral: false });
  if (Token.isUnresolved(seconds)) {
    throw new TypeError(`${where}: \`expiresAfter\` must be known at synth time: it is checked against retry horizons.`);
  }
  if (!Number.isInteger(seconds) || seconds < 1) {
    throw new TypeError(`${where}: \`expiresAfter\` must be a whole number of seconds, 1 or more (got ${seconds}).`);
  }
  if (seconds > MAX_ENVIRONMENT_RETENTION_SECONDS) {
    throw new TypeError(
      `${where}: \`expiresAfter\` must be at most ${MAX_ENVIRONMENT_RETENTION_SECONDS} seconds (about 31 million years), the longest retention the store reads from ${IDEMPOTENCY_EXPIRES_AFTER_SECONDS_ENV} (got ${seconds}).`,
    );
  }
  return seconds;
}

/** Errors fail the synth; warnings carry their id, to acknowledge them with `Annotations.acknowledgeWarning`. */
function report(scope: IConstruct, findings: readonly Finding[]): void {
  for (const finding of findings) {
    if (finding.level === 'error') Annotations.of(scope).addError(`[${finding.id}] ${finding.message}`);
    else Annotations.of(scope).addWarningV2(finding.id, finding.message);
  }
}

/** Options of {@link IdempotencyTable.attachSqsConsumer}: those of `SqsEventSource`, which always reports batch item failures. */
export type IdempotentSqsConsumerProps = Omit<SqsEventSourceProps, 'reportBatchItemFailures'>;

/**
 * What every idempotency table construct does with its table: grant functions the record
 * protocol's item actions, set their environment, wire SQS consumers and check retry horizons at
 * synth time. {@link IdempotencyTable} creates its table; {@link IdempotencyTable.fromTable} uses
 * one that exists.
 *
 * @example
 * ```ts
 * // Either kind: a new table or an existing one.
 * const attachAll = (records: IdempotencyTableBase, functions: LambdaFunction[]) => functions.forEach((fn) => records.attachFunction(fn));
 * ```
 */
export abstract class IdempotencyTableBase extends Construct {
  /** The DynamoDB table. */
  public abstract readonly table: ITable;
  /** The record retention in seconds, as attached functions receive it unless attached with one of their own. */
  public readonly expiresAfterSeconds: number;
  /** The customer managed key, when there is one. */
  public readonly encryptionKey?: IKey;

  /**
   * Each attached function's grant, retention in seconds (the table's, or its own from
   * {@link attachFunction}) and the `IDEMPOTENCY_TABLE` it was given.
   */
  private readonly attached = new Map<LambdaFunction, { readonly grant: Grant; readonly retentionSeconds: number; readonly tableVariable: string }>();
  private readonly queues = new Map<LambdaFunction, IQueue[]>();
  /** What {@link addMonitoring} watches: a function attached after it is held to the same refusal. */
  private monitored: ReadonlyArray<IFunction | string> = [];

  protected constructor(scope: Construct, id: string, expiresAfterSeconds: number, encryptionKey: IKey | undefined) {
    super(scope, id);
    this.expiresAfterSeconds = expiresAfterSeconds;
    this.encryptionKey = encryptionKey;
    // Checked once the whole app is built and every aspect has run (an aspect visits the tree in
    // order, so one of the app's own could still change a construct defined after this one), so
    // settings made after attaching are seen too. The findings are annotations, not a thrown error.
    this.node.addValidation({
      validate: () => {
        this.check();
        return [];
      },
    });
  }

  /**
   * Grants `grantee` the item actions of the record protocol (PutItem, UpdateItem, DeleteItem on
   * this table only) and, with a customer managed key, the key actions DynamoDB needs. A role whose
   * policy the app cannot change (imported with `mutable: false` or from another account), given
   * directly or as an imported function's, gets the warning `lambda-idempotency:roleNotGranted`
   * naming what its owner must grant.
   */
  public grantRecordAccess(grantee: IGrantable): Grant {
    const grant = this.grant(grantee);
    const role = grantee.grantPrincipal;
    const named = Construct.isConstruct(grantee) ? grantee : this;
    const subject = Object.is(role, grantee) ? `The role ${named.node.path}` : `The role of ${named.node.path}`;
    report(named, checkRole(role, subject, this.table, ITEM_ACTIONS, this.encryptionKey ? KEY_ACTIONS : []));
    return grant;
  }

  /** The grants of {@link grantRecordAccess}, whose role attaching checks at synth. */
  private grant(grantee: IGrantable): Grant {
    const grant = grantItems(this.table, grantee);
    if (this.encryptionKey) grantKey(this.encryptionKey, grantee);
    return grant;
  }

  /**
   * Lets `fn` keep idempotency records here: grants it {@link grantRecordAccess} and sets its
   * environment `IDEMPOTENCY_TABLE` (the table name; its ARN for a table of another account, or of a
   * literal account while the function's account is known only at deploy) and
   * `IDEMPOTENCY_EXPIRES_AFTER_SECONDS` (the retention, which `new DynamoDBStore()` reads), so the
   * handler and the synth-time checks agree. In a Region where a `TableV2` of the app has a replica,
   * `fn` also gets the item actions on that replica (and its key), which its store writes to. A
   * function whose records are kept for another time than the table's `expiresAfter` says so with
   * `options.expiresAfter`. `fn` is the function
   * itself (a `SingletonFunction` stands for the one function of its uuid), not an alias or a version (whose event sources and settings are checked with it): those
   * are refused with a `TypeError`, and so is an imported function, whose environment cannot be set
   * here: give its role {@link grantRecordAccess} (an imported function without one has no policy to grant).
   * A function whose environment already holds another `IDEMPOTENCY_EXPIRES_AFTER_SECONDS` or
   * `IDEMPOTENCY_TABLE` is refused with a `TypeError` too, rather than have it replaced in silence.
   *
   * @example
   * ```ts
   * idempotency.attachFunction(apiFunction, { expiresAfter: Duration.hours(1) });
   * ```
   */
  public attachFunction(handle: LambdaFunction | SingletonFunction, options: AttachFunctionOptions = {}): Grant {
    // Not `instanceof`: an app may load another copy of aws-cdk-lib than this module does.
    if (typeof (handle as Partial<LambdaFunction> | undefined)?.addEnvironment !== 'function') {
      throw new TypeError(
        'IdempotencyTable.attachFunction: `fn` must be a lambda.Function defined in this app, whose environment can be set: for an alias or a version, attach the function itself (the event sources and async-invoke settings of its aliases and versions are checked with it); for an imported function, give its role to grantRecordAccess (the role itself, or the function imported with fromFunctionAttributes({ functionArn, role })) and set its environment where it is defined.',
      );
    }
    checkOptions('IdempotencyTable.attachFunction', options, ATTACH_CHECKS);
    const fn = functionOf(handle);
    const own = options.expiresAfter === undefined ? undefined : retentionSeconds('IdempotencyTable.attachFunction', options.expiresAfter);
    const attached = attachedTables.get(fn);
    if (attached !== undefined && attached !== this) {
      throw new Error(`IdempotencyTable: ${fn.node.path} is already attached to ${attached.node.path}; a function keeps its records in one table.`);
    }
    const existing = this.attached.get(fn);
    if (existing) {
      if (own !== undefined && own !== existing.retentionSeconds) {
        throw new TypeError(
          `IdempotencyTable.attachFunction: ${fn.node.path} is already attached, with records kept ${formatSeconds(existing.retentionSeconds)}; give its \`expiresAfter\` in its first attachment.`,
        );
      }
      return existing.grant;
    }
    const seconds = own ?? this.expiresAfterSeconds;
    // A table of another account or Region (known, or possible), with no replica in the function's, is addressed by its ARN: its name would mean one of the function's own.
    const tableVariable = namedByArn(fn, this.table) ? this.table.tableArn : this.table.tableName;
    refusePresetEnvironment(fn, this.table, tableVariable, seconds, own !== undefined);
    this.refuseCycles(this.monitored, { fn, tableVariable });
    attachedTables.set(fn, this);
    fn.addEnvironment(IDEMPOTENCY_TABLE_ENV, tableVariable);
    fn.addEnvironment(IDEMPOTENCY_EXPIRES_AFTER_SECONDS_ENV, String(seconds));
    const grant = this.grant(fn);
    const replica = localReplica(fn, this.table);
    if (replica) {
      replica.grant(fn, ...ITEM_ACTIONS);
      if (replica.encryptionKey) grantKey(replica.encryptionKey, fn);
    }
    this.attached.set(fn, { grant, retentionSeconds: seconds, tableVariable });
    return grant;
  }

  /**
   * Wires `queue` to `fn` (attaching `fn` to this table): adds an `SqsEventSource` with
   * `reportBatchItemFailures: true`, which the batch helper's `batchItemFailures` need, and checks
   * at synth time that records outlive the queue's redeliveries and that its visibility timeout
   * leaves room for the function's retries. A queue that already feeds `fn` (wired by an earlier
   * call, or by hand) is refused with an `Error` that names it: Lambda maps a queue to a function
   * once, and a second call's `props` could not apply.
   *
   * @example
   * ```ts
   * idempotency.attachSqsConsumer(consumerFunction, queue, { batchSize: 10, maxBatchingWindow: Duration.seconds(5) });
   * ```
   */
  public attachSqsConsumer(fn: LambdaFunction | SingletonFunction, queue: IQueue, props: IdempotentSqsConsumerProps = {}): SqsEventSource {
    checkSqsProps(props);
    const target = functionOf(fn);
    refuseSecondMapping(target, queue, this.queues.get(target)?.includes(queue) ?? false);
    this.attachFunction(fn);
    const source = new SqsEventSource(queue, { ...props, reportBatchItemFailures: true });
    fn.addEventSource(source);
    this.queues.set(target, [...(this.queues.get(target) ?? []), queue]);
    return source;
  }

  /**
   * Adds a CloudWatch dashboard of the library's metrics for `functions` (which must enable
   * `observability: cloudWatchLines()`) and alarms on store failures, superseded attempts and
   * bookkeeping failures, optionally notifying `alarmTopic`. Once per table.
   *
   * @example
   * ```ts
   * idempotency.addMonitoring({ functions: [apiFunction, 'payments-consumer'], alarmTopic: new Topic(this, 'Alarms') });
   * ```
   */
  public addMonitoring(props: IdempotencyMonitoringProps): IdempotencyMonitoring {
    if (this.node.tryFindChild('Monitoring') !== undefined) {
      throw new Error('IdempotencyTable.addMonitoring: this table already has its monitoring; list every function in one call.');
    }
    this.refuseCycles(Array.isArray(props?.functions) ? props.functions : []);
    const monitoring = new IdempotencyMonitoring(this, 'Monitoring', this.table, props);
    this.monitored = props.functions;
    return monitoring;
  }

  /**
   * Refuses a watched function of another stack whose name only that stack knows, when that stack
   * reads this table's name from this stack (a function of it is attached): this stack's alarms would
   * read the watched function's name from it, a cycle CDK refuses at synth in words that name
   * neither the monitoring nor the way out. Checked by {@link addMonitoring} for the functions it
   * lists, and by {@link attachFunction} for `attaching`, a function about to be attached with the
   * `IDEMPOTENCY_TABLE` it would get, against those monitoring already watches. A stack nested in
   * this one is no cycle: it reads the table's name as a parameter, and this stack its function's
   * name as an output of it.
   */
  private refuseCycles(functions: ReadonlyArray<IFunction | string>, attaching?: { readonly fn: LambdaFunction; readonly tableVariable: string }): void {
    const here = Stack.of(this);
    if (Stack.of(this.table) !== here) return;
    // The function of another stack, attached or being attached, through which that stack reads this table's name.
    const readers = new Map<Stack, LambdaFunction>();
    const entries = attaching === undefined ? [...this.attached].map(([fn, { tableVariable }]) => ({ fn, tableVariable })) : [attaching];
    for (const { fn, tableVariable } of entries) {
      const stack = Stack.of(fn);
      if (stack !== here && !nestedIn(stack, here) && Token.isUnresolved(tableVariable) && !readers.has(stack)) readers.set(stack, fn);
    }
    for (const listed of functions) {
      if (!isLambdaFunction(listed) || !Token.isUnresolved(watchedName(listed))) continue;
      const target = (listed as { readonly lambda?: IFunction }).lambda ?? listed;
      if (typeof (target as Partial<LambdaFunction>).addEnvironment !== 'function') continue;
      const fn = functionOf(target as LambdaFunction);
      const reader = readers.get(Stack.of(fn));
      if (reader === undefined) continue;
      const cycle = `its generated name in this stack's alarms would make each stack depend on the other. Give it a \`functionName\`, give its records a \`name\` and list that, or monitor it from its own stack (new IdempotencyMonitoring(stack, id, table, { functions })).`;
      const stack = Stack.of(fn).node.path;
      throw new TypeError(
        attaching === undefined
          ? `IdempotencyTable.addMonitoring: the function ${fn.node.path} is in the stack ${stack}, which reads this table's name from the stack ${here.node.path}${reader === fn ? '' : ` (for ${reader.node.path})`}: ${cycle}`
          : `IdempotencyTable.attachFunction: attaching ${reader.node.path} makes its stack ${stack} read this table's name from the stack ${here.node.path}, whose monitoring watches the function ${fn.node.path} of ${stack}: ${cycle}`,
      );
    }
  }

  /** What is wrong with the table itself, reported on this construct. @internal */
  protected tableFindings(): Finding[] {
    return [];
  }

  private check(): void {
    report(this, this.tableFindings());
    for (const [fn, { retentionSeconds: retention, tableVariable }] of this.attached) {
      report(fn, [
        ...checkEnvironmentTable(fn, IDEMPOTENCY_TABLE_ENV, this.table, tableVariable),
        ...checkEnvironmentRetention(fn, IDEMPOTENCY_EXPIRES_AFTER_SECONDS_ENV, retention),
        ...checkTableReach(fn, this.table),
        ...checkRole(fn.role, `The role of ${fn.node.path}`, this.table, ITEM_ACTIONS, this.encryptionKey ? KEY_ACTIONS : []),
        ...checkFunction(fn, retention),
        ...checkDurable(fn, retention),
        ...checkStreams(fn, retention),
        ...checkUnknownQueues(fn),
        ...checkPipes(fn, retention),
        ...[...new Set([...(this.queues.get(fn) ?? []), ...queuesFeeding(fn)])].flatMap((queue) => checkQueue(fn, queue, retention)),
      ]);
    }
  }
}

/**
 * The DynamoDB table of idempotency records: partition key and TTL attribute derived from the
 * library's table schema (`id` / `expiration`), on-demand billing, point-in-time recovery, deletion
 * protection, retained when it leaves the stack.
 * Attach functions to it to grant them exactly the item actions the library uses and to set their
 * environment; wire SQS consumers through it to get the event source right and have their retry
 * horizons checked at synth time. A table that already exists (one made for Powertools, say) is
 * used through {@link IdempotencyTable.fromTable}.
 *
 * @example
 * ```ts
 * const idempotency = new IdempotencyTable(this, 'Idempotency', { expiresAfter: Duration.days(1) });
 * idempotency.attachFunction(paymentFunction);
 * idempotency.attachSqsConsumer(consumerFunction, queue, { batchSize: 10 });
 * ```
 */
export class IdempotencyTable extends IdempotencyTableBase {
  /** The DynamoDB table. */
  public readonly table: Table;

  /**
   * Uses an existing table for idempotency records, with everything a new one gives its functions:
   * grants, environment, SQS wiring and synth-time checks. The table is not changed. A table
   * defined in this app is checked against the record protocol: a sort key or a partition key that
   * is not a string fails the synth; another partition key or TTL attribute name, or no TTL, is a
   * warning that names the store option to set. Replicas in several Regions without multi-Region
   * strong consistency are a warning too: concurrent claims in two Regions would both win. An
   * imported table (`Table.fromTableName`) must have a string partition key alone, `id` unless the
   * store's `attributes` say otherwise.
   *
   * @example
   * ```ts
   * const records = IdempotencyTable.fromTable(this, 'Idempotency', Table.fromTableName(this, 'Powertools', 'idempotency'), {
   *   expiresAfter: Duration.hours(1),
   * });
   * records.attachFunction(paymentFunction);
   * ```
   */
  public static fromTable(scope: Construct, id: string, table: ITable, props: ExistingIdempotencyTableProps = {}): IdempotencyTableBase {
    checkOptions('IdempotencyTable.fromTable', props, EXISTING_PROP_CHECKS);
    if (typeof (table as Partial<ITable> | null)?.grant !== 'function' || typeof table.tableName !== 'string') {
      throw new TypeError('IdempotencyTable.fromTable: `table` must be a DynamoDB table construct (a Table, or one from Table.fromTableName).');
    }
    const own = table.encryptionKey;
    // Another key than the one the table is encrypted with would get the grants, and every write be refused.
    if (props.encryptionKey && own && props.encryptionKey !== own && Token.compareStrings(props.encryptionKey.keyArn, own.keyArn) !== TokenComparison.SAME) {
      throw new TypeError(
        `IdempotencyTable.fromTable: \`encryptionKey\` is not the key the table is encrypted with (${own.node.path}); leave it out, the table's own key is used.`,
      );
    }
    return new ExistingIdempotencyTable(scope, id, table, retentionSeconds('IdempotencyTable.fromTable', props.expiresAfter), props.encryptionKey);
  }

  constructor(scope: Construct, id: string, props: IdempotencyTableProps = {}) {
    checkOptions('IdempotencyTable', props, PROP_CHECKS);
    super(scope, id, retentionSeconds('IdempotencyTable', props.expiresAfter), props.encryptionKey);
    this.table = new Table(this, 'Table', {
      ...tablePropsFromSchema(idempotencyTableSchema),
      tableName: props.tableName,
      billingMode: BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: props.pointInTimeRecovery ?? true },
      ...(props.encryptionKey ? { encryption: TableEncryption.CUSTOMER_MANAGED, encryptionKey: props.encryptionKey } : { encryption: TableEncryption.DEFAULT }),
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
      // A protected table would make the deletion that DESTROY asks for fail.
      deletionProtection: props.deletionProtection ?? props.removalPolicy !== RemovalPolicy.DESTROY,
    });
  }
}

/** An existing table used for idempotency records (see {@link IdempotencyTable.fromTable}). */
class ExistingIdempotencyTable extends IdempotencyTableBase {
  public readonly table: ITable;

  constructor(scope: Construct, id: string, table: ITable, expiresAfterSeconds: number, encryptionKey: IKey | undefined) {
    super(scope, id, expiresAfterSeconds, encryptionKey ?? table.encryptionKey);
    this.table = table;
  }

  protected override tableFindings(): Finding[] {
    return checkTable(this.table);
  }
}
