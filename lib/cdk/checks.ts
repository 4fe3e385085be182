/**
 * Synth-time checks for the misconfigurations that make an idempotent consumer run twice: a record
 * must outlive every redelivery of the event it guards. @internal
 */
import { Arn, ArnFormat, CfnResource, type ResourceEnvironment, Stack, Token, TokenComparison } from 'aws-cdk-lib';
import { CfnGlobalTable, CfnTable, type ITable, Table, TableV2 } from 'aws-cdk-lib/aws-dynamodb';
import { CfnStream, type IStream, Stream, StreamConsumer } from 'aws-cdk-lib/aws-kinesis';
import { CfnKey, type IAlias, type IKey } from 'aws-cdk-lib/aws-kms';
import { CfnEventInvokeConfig, CfnEventSourceMapping, CfnFunction, type Function as LambdaFunction, type Version } from 'aws-cdk-lib/aws-lambda';
import { CfnPipe } from 'aws-cdk-lib/aws-pipes';
import { CfnQueue, type IQueue, QueueBase } from 'aws-cdk-lib/aws-sqs';
import type { IConstruct } from 'constructs';
import { idempotencyTableSchema } from '../table-schema.js';

/** One problem found on a wired function. */
export interface Finding {
  readonly level: 'error' | 'warning';
  /** Stable id, usable with `Annotations.acknowledgeWarning`. */
  readonly id: string;
  readonly message: string;
}

// AWS defaults, used when the construct leaves a property unset.
const DEFAULT_QUEUE_RETENTION = 345_600; // 4 days
const DEFAULT_VISIBILITY_TIMEOUT = 30;
const DEFAULT_FUNCTION_TIMEOUT = 3;
const DEFAULT_ASYNC_EVENT_AGE = 21_600; // 6 hours
const DEFAULT_ASYNC_RETRIES = 2;
const DYNAMODB_STREAM_RETENTION = 86_400; // 24 h, fixed
const DEFAULT_KINESIS_RETENTION_HOURS = 24;
/** How long an event source mapping lets a durable execution run, waits included, before Lambda ends it. */
const DURABLE_EVENT_SOURCE_LIMIT = 900; // 15 min
/** What an event source mapping's `MaximumRetryAttempts` and `MaximumRecordAgeInSeconds` mean when unset, or set to -1: no limit. */
const UNLIMITED = -1;

/** "4 days", "6 h", "5 min", "45 s". @internal */
export function formatSeconds(seconds: number): string {
  if (seconds >= 86_400 && seconds % 86_400 === 0) return `${seconds / 86_400} day${seconds === 86_400 ? '' : 's'}`;
  if (seconds >= 3_600 && seconds % 3_600 === 0) return `${seconds / 3_600} h`;
  if (seconds >= 60 && seconds % 60 === 0) return `${seconds / 60} min`;
  return `${seconds} s`;
}

/** Whether a value is a string known at synth: written in the app, not a token resolved at deploy. */
const isLiteral = (value: unknown): value is string => typeof value === 'string' && !Token.isUnresolved(value);

/** A number set on an L1 property, its AWS default when unset, `undefined` when only known at deploy time. */
function known(value: unknown, fallback: number): number | undefined {
  if (value === undefined) return fallback;
  return typeof value === 'number' && !Token.isUnresolved(value) ? value : undefined;
}

/**
 * The value CloudFormation gets for `property` of `cfn`: `value`, the L1 property, unless an escape
 * hatch (`addPropertyOverride`, `addOverride`, `addPropertyDeletionOverride`) changed it, when it is
 * the override, resolved (`undefined` when deleted). A queue's retention raised by an override is
 * the one that redelivers messages, whatever its L2 props said.
 */
function setting(cfn: CfnResource, property: string, value: unknown): unknown {
  const properties = synthesizedProperties(cfn);
  if (properties === undefined) return value;
  const synthesized = properties[property];
  return JSON.stringify(Stack.of(cfn).resolve(value)) === JSON.stringify(synthesized) ? value : synthesized;
}

/**
 * The properties of `cfn` as the template has them (CloudFormation's names), resolved, overrides
 * merged in; `undefined` when this version of `aws-cdk-lib` cannot render them (the checks then read
 * the L1 properties, without overrides).
 */
function synthesizedProperties(cfn: CfnResource): Record<string, unknown> | undefined {
  // CfnResource renders the resource, overrides included, only for the template (an internal method).
  const render = (cfn as unknown as { _toCloudFormation?: unknown })._toCloudFormation;
  if (typeof render !== 'function') return undefined;
  const template: unknown = render.call(cfn);
  const resources = (Stack.of(cfn).resolve(template) as { Resources?: Record<string, { Properties?: Record<string, unknown> }> } | undefined)?.Resources;
  return Object.values(resources ?? {})[0]?.Properties ?? {};
}

/** The maximum concurrency of an SQS event source, as CloudFormation gets it; `undefined` when it has none. */
function maximumConcurrencyOf(mapping: CfnEventSourceMapping): unknown {
  const synthesized = synthesizedProperties(mapping);
  if (synthesized !== undefined) return (synthesized.ScalingConfig as { MaximumConcurrency?: unknown } | undefined)?.MaximumConcurrency;
  return (Stack.of(mapping).resolve(mapping.scalingConfig) as { maximumConcurrency?: unknown } | undefined)?.maximumConcurrency;
}

/** The function timeout in seconds; `undefined` when known only at deploy time. */
function functionTimeout(fn: LambdaFunction): number | undefined {
  const cfn = fn.node.defaultChild;
  const seconds = cfn instanceof CfnFunction ? known(setting(cfn, 'Timeout', cfn.timeout), DEFAULT_FUNCTION_TIMEOUT) : fn.timeout?.toSeconds();
  return seconds === undefined || Token.isUnresolved(seconds) ? undefined : seconds;
}

/** A part of a reference known only at deploy time (`AWS::Region` in an environment-agnostic stack). */
const UNKNOWN = '\u0000';

/**
 * A part of a reference that names a resource (a `Ref`, an attribute, an import of another stack's
 * output): its template form, without colons, so that it stays one part of an ARN.
 */
const opaque = (value: unknown): string => `\u0001${JSON.stringify(value).replaceAll(':', '\u0002')}\u0001`;

/**
 * A reference as CloudFormation gets it, as text, its joins done; what only a deployment knows (a
 * pseudo parameter) is {@link UNKNOWN}, a resource's name or attribute {@link opaque}.
 */
function rendered(value: unknown): string {
  if (typeof value === 'string') return value;
  const intrinsic = value as { Ref?: unknown; 'Fn::Join'?: [unknown, unknown[]] } | null;
  if (typeof intrinsic?.Ref === 'string' && intrinsic.Ref.startsWith('AWS::')) return UNKNOWN;
  const join = intrinsic?.['Fn::Join'];
  if (Array.isArray(join) && typeof join[0] === 'string' && Array.isArray(join[1])) return join[1].map(rendered).join(join[0]);
  return opaque(value);
}

/**
 * How the name and the ARN of `fn` read in the template of `stack`, rendered: in another stack,
 * those it imports from the function's stack (the same logical id in a stack that imports nothing of
 * it is another resource), and a name written in the app.
 */
function referencesIn(fn: LambdaFunction, stack: Stack): { readonly names: readonly string[]; readonly arn: string | undefined } {
  const home = Stack.of(fn);
  const read = (value: string): string | undefined => {
    const there = stack.resolve(value);
    return stack === home || JSON.stringify(there) !== JSON.stringify(home.resolve(value)) ? rendered(there) : undefined;
  };
  const cfn = fn.node.defaultChild;
  const literal = cfn instanceof CfnFunction ? cfn.functionName : undefined;
  const names = [isLiteral(literal) ? literal : undefined, read(fn.functionName)].filter((name) => name !== undefined);
  return { names, arn: read(fn.functionArn) };
}

/**
 * Whether `reference`, the function a mapping or an async-invoke config of `scope` names, is the
 * name `fn` is deployed under (`functionName`, written in the app or generated), alone or in an
 * ARN, full or partial, with a qualifier or not, of its account and Region, or its ARN: a function
 * imported by its name or ARN (`Function.fromFunctionName`, `Function.fromFunctionArn`), in its
 * stack or another, is the same function.
 */
function namesFunction(fn: LambdaFunction, scope: IConstruct, reference: unknown): boolean {
  if (reference === fn.functionName) return false;
  const stack = Stack.of(scope);
  const own = referencesIn(fn, stack);
  const resolved = stack.resolve(reference) as { 'Fn::Select'?: [unknown, { 'Fn::Split'?: [unknown, unknown] }] } | null;
  // An imported function's name is selected from its ARN, whose account and Region say which function it is.
  const [index, of] = resolved?.['Fn::Select'] ?? [];
  const text = rendered(index === 6 && of?.['Fn::Split']?.[0] === ':' ? of['Fn::Split'][1] : resolved);
  if (own.arn !== undefined && (text === own.arn || text.startsWith(`${own.arn}:`))) return true;
  // name[:qualifier], account:function:name[:qualifier], arn:partition:lambda:region:account:function:name[:qualifier]
  const parts = text.split(':');
  const [region, account, named] =
    parts[0] === 'arn'
      ? parts[2] === 'lambda' && parts[5] === 'function'
        ? [parts[3], parts[4], parts[6]]
        : []
      : parts[1] === 'function'
        ? [undefined, parts[0], parts[2]]
        : [undefined, undefined, parts[0]];
  const other = (mine: string, theirs: string | undefined) =>
    theirs !== undefined && theirs !== UNKNOWN && Token.compareStrings(mine, theirs) === TokenComparison.DIFFERENT;
  return named !== undefined && own.names.includes(named) && !other(fn.env.region, region) && !other(fn.env.account, account);
}

/**
 * The event source mappings of the app that invoke `fn`: its own (`attachSqsConsumer`,
 * `fn.addEventSource`), those of its versions and aliases (which run its code with its
 * environment), and those made in another scope with `fn` as their target, or its name. @internal
 */
export function mappingsOf(fn: LambdaFunction): CfnEventSourceMapping[] {
  const all = fn.node.root.node.findAll();
  const targets = handlesOf(fn, all);
  return all.filter(
    (c): c is CfnEventSourceMapping => c instanceof CfnEventSourceMapping && (targets.has(c.functionName) || namesFunction(fn, c, c.functionName)),
  );
}

/**
 * The names and ARNs of the app's handles on `fn` that run its code with its environment: its own,
 * and those of every qualified handle whose `lambda` it is: its versions and aliases, made in the app
 * or imported with it (`Version.fromVersionAttributes`, `Alias.fromAliasAttributes`), and its
 * `latestVersion` (`$LATEST`): not all of them of a class CDK exports. `all`: the app's constructs,
 * which the caller reads once for its own search too.
 */
function handlesOf(fn: LambdaFunction, all: readonly IConstruct[]): Set<string> {
  const targets = new Set<string>([fn.functionName, fn.functionArn]);
  for (const c of all) {
    const handle = c as Partial<Version>;
    if (c === fn || handle.lambda !== fn || typeof handle.functionName !== 'string' || typeof handle.functionArn !== 'string') continue;
    targets.add(handle.functionName);
    targets.add(handle.functionArn);
  }
  return targets;
}

/**
 * The queues of the app that feed `fn` through an event source mapping, however it was added
 * (`attachSqsConsumer`, `addEventSource` on the function or one of its aliases): their redelivery
 * horizon matters all the same.
 */
export function queuesFeeding(fn: LambdaFunction): Array<IQueue | CfnQueue> {
  const sources = [...mappingsOf(fn).map((mapping) => mapping.eventSourceArn), ...pipesInto(fn).map((pipe) => pipe.source)];
  if (sources.length === 0) return [];
  return definedQueues(fn).filter((queue) => sources.includes(arnOf(queue)));
}

/** The EventBridge pipes of the app whose target is `fn`, or one of its versions or aliases. @internal */
export function pipesInto(fn: LambdaFunction): CfnPipe[] {
  const all = fn.node.root.node.findAll();
  const targets = handlesOf(fn, all);
  return all.filter((c): c is CfnPipe => c instanceof CfnPipe && (targets.has(c.target) || namesFunction(fn, c, c.target)));
}

/**
 * The EventBridge pipes into `fn` whose source cannot be checked here: a queue of another stack or
 * account, a stream (whose retries a pipe bounds with settings of its own); and those that invoke
 * it asynchronously (`FIRE_AND_FORGET`), which never read the batch's failures. A pipe from a queue
 * of the app has that queue checked as an event source mapping's is ({@link queuesFeeding}).
 */
export function checkPipes(fn: LambdaFunction, retentionSeconds: number): Finding[] {
  const defined = new Set(definedQueues(fn).map(arnOf));
  return pipesInto(fn).flatMap((pipe): Finding[] => {
    const findings: Finding[] = [];
    const where = `The EventBridge pipe ${pipe.node.path} into ${fn.node.path}`;
    if (!defined.has(pipe.source)) {
      findings.push({
        level: 'warning',
        id: 'lambda-idempotency:pipeNotChecked',
        message: `${where} reads a source not defined in this app as a queue (a stream, or a queue of another stack), so how long it can deliver a record again is not checked: make sure idempotency records (kept ${formatSeconds(retentionSeconds)}) outlive it.`,
      });
    }
    const parameters: unknown = Stack.of(pipe).resolve(pipe.targetParameters);
    const invocation = (parameters as { lambdaFunctionParameters?: { invocationType?: unknown } } | undefined)?.lambdaFunctionParameters?.invocationType;
    if (invocation === 'FIRE_AND_FORGET') {
      findings.push({
        level: 'warning',
        id: 'lambda-idempotency:pipeFireAndForget',
        message: `${where} invokes it asynchronously (FIRE_AND_FORGET), so the pipe never reads the batch's failures: a failed record is neither delivered again nor kept. Use REQUEST_RESPONSE.`,
      });
    }
    return findings;
  });
}

/** The queues defined in the app: each `Queue`, and each `CfnQueue` made without one (an L1 queue). */
function definedQueues(fn: LambdaFunction): Array<QueueBase | CfnQueue> {
  return fn.node.root.node
    .findAll()
    .filter((c): c is QueueBase | CfnQueue => c instanceof QueueBase || (c instanceof CfnQueue && !(c.node.scope instanceof QueueBase)));
}

const arnOf = (queue: IQueue | CfnQueue): string => (queue instanceof CfnQueue ? queue.attrArn : queue.queueArn);

/**
 * What a mapping reads: a stream (Kinesis, DynamoDB Streams) has a starting position, an SQS queue
 * none; Kafka, Amazon MQ and DocumentDB name topics, broker queues or a collection, and the batch
 * helper refuses their events.
 */
function sourceKind(mapping: CfnEventSourceMapping): 'stream' | 'queue' | 'other' {
  if (mapping.topics !== undefined || mapping.queues !== undefined || mapping.documentDbEventSourceConfig !== undefined) return 'other';
  return mapping.startingPosition === undefined ? 'queue' : 'stream';
}

/**
 * The queue event sources of `fn` whose queue is no construct of this app (a mapping given an ARN
 * of another stack or account): there is nothing to check them against, which is said, not passed.
 */
export function checkUnknownQueues(fn: LambdaFunction): Finding[] {
  const defined = new Set(definedQueues(fn).map(arnOf));
  return mappingsOf(fn)
    .filter((mapping) => {
      const source = mapping.eventSourceArn;
      if (sourceKind(mapping) !== 'queue' || typeof source !== 'string' || defined.has(source)) return false;
      return Token.isUnresolved(source) || (source.startsWith('arn:') && Arn.split(source, ArnFormat.NO_RESOURCE_NAME).service === 'sqs');
    })
    .map((mapping) => ({
      level: 'warning',
      id: 'lambda-idempotency:queueNotChecked',
      message: `The event source ${mapping.node.path} of ${fn.node.path} reads a queue not defined in this app, so its redelivery horizon cannot be checked: make sure idempotency records outlive its retention period, or maxReceiveCount × visibility timeout with a dead-letter queue.`,
    }));
}

/** Checks one queue that feeds `fn`: a `Queue`, imported or not, or a `CfnQueue`. */
export function checkQueue(fn: LambdaFunction, queue: IQueue | CfnQueue, retentionSeconds: number): Finding[] {
  const cfn = queue instanceof CfnQueue ? queue : queue.node.defaultChild;
  const where = `queue ${queue.node.path}`;
  if (!(cfn instanceof CfnQueue)) {
    return [
      {
        level: 'warning',
        id: 'lambda-idempotency:queueNotChecked',
        message: `${where} is imported, so its redelivery horizon cannot be checked: make sure idempotency records (kept ${formatSeconds(retentionSeconds)}) outlive its retention period, or maxReceiveCount × visibility timeout with a dead-letter queue.`,
      },
    ];
  }
  const retention = known(setting(cfn, 'MessageRetentionPeriod', cfn.messageRetentionPeriod), DEFAULT_QUEUE_RETENTION);
  const visibility = known(setting(cfn, 'VisibilityTimeout', cfn.visibilityTimeout), DEFAULT_VISIBILITY_TIMEOUT);
  // The redrive policy CloudFormation gets: the L2's dead-letter queue, or one set on the CfnQueue.
  const redrive: unknown = Stack.of(queue).resolve(setting(cfn, 'RedrivePolicy', cfn.redrivePolicy));
  const maxReceiveCount = redrive === undefined ? undefined : known((redrive as { maxReceiveCount?: unknown } | null)?.maxReceiveCount, Number.NaN);
  if (retention === undefined || visibility === undefined || (redrive !== undefined && (maxReceiveCount === undefined || Number.isNaN(maxReceiveCount)))) {
    return [
      {
        level: 'warning',
        id: 'lambda-idempotency:queueNotChecked',
        message: `${where} has a retention period, visibility timeout or redrive policy known only at deploy time, so its redelivery horizon cannot be checked against the record retention (${formatSeconds(retentionSeconds)}).`,
      },
    ];
  }
  const findings: Finding[] = [];
  const receives = maxReceiveCount === undefined ? Infinity : maxReceiveCount * visibility;
  const horizon = Math.min(retention, receives);
  if (retentionSeconds < horizon) {
    const why =
      horizon === receives
        ? `up to ${maxReceiveCount} receives × ${formatSeconds(visibility)} visibility timeout before its dead-letter queue takes it`
        : `its retention period${maxReceiveCount === undefined ? ', as it has no dead-letter queue' : ''}`;
    // A queue with a dead-letter queue already: fewer receives within the retention, if one fits.
    const fewest = Math.floor(retentionSeconds / visibility);
    const otherWay =
      maxReceiveCount === undefined
        ? ', or give the queue a dead-letter queue (maxReceiveCount × visibility timeout within the retention)'
        : fewest >= 1 && fewest < maxReceiveCount
          ? `, or lower the queue's maxReceiveCount to ${fewest} or less`
          : '';
    findings.push({
      level: 'error',
      id: 'lambda-idempotency:retentionShorterThanRedelivery',
      message: `Idempotency records are kept ${formatSeconds(retentionSeconds)}, but ${where} can deliver a message again for ${formatSeconds(horizon)} (${why}); a redelivery after its record expired runs the handler twice. Raise the retention (\`expiresAfter\`) to at least ${formatSeconds(horizon)}${otherWay}.`,
    });
  } else if (maxReceiveCount === undefined) {
    findings.push({
      level: 'warning',
      id: 'lambda-idempotency:queueWithoutDeadLetterQueue',
      message: `${where} has no dead-letter queue: a message that keeps failing is received again until its retention period (${formatSeconds(retention)}) ends, then deleted without a trace. Give it a \`deadLetterQueue\` (its \`maxReceiveCount\` × the visibility timeout within the record retention).`,
    });
  } else if (retentionSeconds < retention) {
    // Lambda stops receiving at the event source's maximum concurrency, and receives nothing while the
    // event source is disabled or the pipe stopped: the backlog waits unreceived, so a message back in
    // the queue after a failed attempt is received again any time before its retention period ends,
    // not one visibility timeout later.
    const source = arnOf(queue);
    const paused = [
      ...mappingsOf(fn)
        .filter((mapping) => mapping.eventSourceArn === source)
        .map((mapping) => {
          const through = `the event source ${mapping.node.path}, which`;
          if (setting(mapping, 'Enabled', mapping.enabled) === false)
            return `${through} is disabled and leaves every message waiting in the queue until it is enabled`;
          if (maximumConcurrencyOf(mapping) !== undefined)
            return `${through} has a maximum concurrency and leaves messages waiting in the queue without being received`;
          return undefined;
        }),
      ...pipesInto(fn)
        .filter((pipe) => pipe.source === source && setting(pipe, 'DesiredState', pipe.desiredState) === 'STOPPED')
        .map((pipe) => `the pipe ${pipe.node.path}, which is stopped and leaves every message waiting in the queue until it is started`),
    ].find((through) => through !== undefined);
    if (paused !== undefined) {
      findings.push({
        level: 'warning',
        id: 'lambda-idempotency:backlogOutlivesRecords',
        message: `${where} feeds ${fn.node.path} through ${paused}: a message back in the queue after an attempt that already completed its record, or a producer's resend, can be received any time within the queue's retention period (${formatSeconds(retention)}), not only within ${maxReceiveCount} receives × ${formatSeconds(visibility)}, while idempotency records are kept ${formatSeconds(retentionSeconds)}. Raise the retention (\`expiresAfter\`) to at least ${formatSeconds(retention)}, or shorten the queue's retention period.`,
      });
    }
  }
  const timeout = functionTimeout(fn);
  if (timeout === undefined) {
    findings.push({
      level: 'warning',
      id: 'lambda-idempotency:queueNotChecked',
      message: `${where} cannot have its visibility timeout (${formatSeconds(visibility)}) checked against the function timeout of ${fn.node.path}, which is known only at deploy time: make it at least 6 × the function timeout.`,
    });
    return findings;
  }
  // Lambda receives a batch's first message, then gathers the rest for up to the batching window before invoking.
  const windows = mappingsOf(fn)
    .filter((mapping) => mapping.eventSourceArn === arnOf(queue))
    .map((mapping) => known(setting(mapping, 'MaximumBatchingWindowInSeconds', mapping.maximumBatchingWindowInSeconds), 0));
  if (windows.includes(undefined)) {
    findings.push({
      level: 'warning',
      id: 'lambda-idempotency:queueNotChecked',
      message: `${where} feeds ${fn.node.path} through an event source whose batching window is known only at deploy time, so its visibility timeout (${formatSeconds(visibility)}) is checked without it: make it at least 6 × the function timeout plus the batching window.`,
    });
  }
  const window = Math.max(0, ...windows.map((seconds) => seconds ?? 0));
  const windowed = window > 0 ? ` plus the batching window (${formatSeconds(window)})` : '';
  // An event source waits for a durable function's whole execution, waits included, which Lambda ends at 15 min.
  const durable = durableConfigOf(fn);
  const execution = durable === undefined ? undefined : Math.min(durable.timeout ?? DURABLE_EVENT_SOURCE_LIMIT, DURABLE_EVENT_SOURCE_LIMIT);
  const recommended = Math.max(6 * timeout, execution ?? 0) + window;
  const basis = recommended > 6 * timeout + window ? 'the durable execution' : '6 × the function timeout';
  if (visibility < timeout) {
    findings.push({
      level: 'error',
      id: 'lambda-idempotency:visibilityBelowTimeout',
      message: `${where} has a visibility timeout of ${formatSeconds(visibility)}, shorter than the function timeout (${formatSeconds(timeout)}): Lambda refuses the event source, and a message would reappear while it is still being processed. Set it to at least ${formatSeconds(recommended)} (${basis}${windowed}).`,
    });
  } else if (execution !== undefined && visibility < execution + window) {
    const lasts = execution === durable?.timeout ? `its \`executionTimeout\`` : 'when an event source invokes it, Lambda ends it then';
    findings.push({
      level: 'warning',
      id: 'lambda-idempotency:visibilityBelowDurableExecution',
      message: `${where} has a visibility timeout of ${formatSeconds(visibility)}, but ${fn.node.path} is a durable function: its event source waits for the whole durable execution, which may last ${formatSeconds(execution)} (${lasts})${windowed}: a message reappears while its execution still runs, and another execution with its key is rejected as in progress until the message lands in the dead-letter queue. Set it to at least ${formatSeconds(recommended)}.`,
    });
  } else if (visibility < recommended) {
    findings.push({
      level: 'warning',
      id: 'lambda-idempotency:visibilityBelowSixTimeouts',
      message: `${where} has a visibility timeout of ${formatSeconds(visibility)}, less than 6 × the function timeout (${formatSeconds(timeout)})${windowed} that AWS recommends: a message retried by Lambda can reappear while its first attempt still holds the record, and be rejected as in progress until it lands in the dead-letter queue. Set it to at least ${formatSeconds(recommended)}.`,
    });
  }
  return findings;
}

/**
 * How long a Kinesis stream of this app (a `Stream`, or a `CfnStream` of its own) keeps a record;
 * `undefined` for an imported one or a retention set by a token.
 */
function kinesisRetention(stream: IStream | CfnStream): { seconds: number; where: string } | undefined {
  const cfn = stream instanceof CfnStream ? stream : stream.node.defaultChild;
  const hours = cfn instanceof CfnStream ? known(setting(cfn, 'RetentionPeriodHours', cfn.retentionPeriodHours), DEFAULT_KINESIS_RETENTION_HOURS) : undefined;
  return hours === undefined ? undefined : { seconds: hours * 3_600, where: `Kinesis stream ${stream.node.path}` };
}

/**
 * How long the stream behind an event source keeps a record, in seconds, with the construct that
 * says so: a DynamoDB stream 24 h, a Kinesis stream of this app (read directly or through an
 * enhanced fan-out consumer, an L2 construct or its L1 resource) its retention period; `undefined` for a stream whose retention is not
 * known here (imported, or set by a token).
 */
function streamRetention(fn: LambdaFunction, source: unknown): { seconds: number; where: string } | undefined {
  if (typeof source !== 'string') return undefined;
  if (!Token.isUnresolved(source)) {
    const service = source.startsWith('arn:') ? Arn.split(source, ArnFormat.SLASH_RESOURCE_NAME).service : undefined;
    return service === 'dynamodb' ? { seconds: DYNAMODB_STREAM_RETENTION, where: `DynamoDB stream ${source}` } : undefined;
  }
  for (const c of fn.node.root.node.findAll()) {
    // A table or stream defined with its L1 resource is named by its attribute.
    if ((c as { tableStreamArn?: unknown }).tableStreamArn === source || ((c instanceof CfnTable || c instanceof CfnGlobalTable) && c.attrStreamArn === source))
      return { seconds: DYNAMODB_STREAM_RETENTION, where: `the stream of table ${c.node.path}` };
    if ((c instanceof Stream && c.streamArn === source) || (c instanceof CfnStream && c.attrArn === source)) return kinesisRetention(c);
    if (c instanceof StreamConsumer && c.streamConsumerArn === source) return kinesisRetention(c.stream);
  }
  return undefined;
}

/**
 * A stream source skips a batch whose retries have ended (`retryAttempts`, `maxRecordAge`) and
 * moves on: without an on-failure destination, its records are gone, and nothing says which.
 */
function checkOnFailure(fn: LambdaFunction, mapping: CfnEventSourceMapping): Finding[] {
  const config = mapping.destinationConfig;
  // A destination known only at deploy time counts as one.
  const onFailure = Token.isUnresolved(config) ? config : (config as CfnEventSourceMapping.DestinationConfigProperty | undefined)?.onFailure;
  const destination = Token.isUnresolved(onFailure) ? onFailure : (onFailure as CfnEventSourceMapping.OnFailureProperty | undefined)?.destination;
  if (destination !== undefined) return checkDroppedRetries(fn, mapping);
  return [
    {
      level: 'warning',
      id: 'lambda-idempotency:streamWithoutOnFailure',
      message: `The event source ${mapping.node.path} of ${fn.node.path} has no on-failure destination: a batch still failing when its retries end (\`retryAttempts\`, \`maxRecordAge\`) is skipped, and its failed records are lost without a trace. Give it \`onFailure\` (an \`SqsDlq\`, \`SnsDlq\` or \`S3OnFailureDestination\`), and a \`maxRecordAge\` so that retries end before the stream drops the records.`,
    },
  ];
}

/**
 * A stream source with an on-failure destination whose retries end only when the stream drops the
 * records (unlimited `retryAttempts`, no `maxRecordAge` below the stream's retention): a failing batch
 * holds up its shard until then, and the records the stream drops are gone, destination or not.
 * Settings known only at deploy time say nothing.
 */
function checkDroppedRetries(fn: LambdaFunction, mapping: CfnEventSourceMapping): Finding[] {
  if (known(setting(mapping, 'MaximumRetryAttempts', mapping.maximumRetryAttempts), UNLIMITED) !== UNLIMITED) return [];
  const age = known(setting(mapping, 'MaximumRecordAgeInSeconds', mapping.maximumRecordAgeInSeconds), UNLIMITED);
  const stream = streamRetention(fn, mapping.eventSourceArn);
  if (age === undefined || (age !== UNLIMITED && (stream === undefined || age < stream.seconds))) return [];
  const until = stream === undefined ? 'the stream drops its records' : `${stream.where} drops its records (${formatSeconds(stream.seconds)})`;
  return [
    {
      level: 'warning',
      id: 'lambda-idempotency:streamRetriesUntilDropped',
      message: `The event source ${mapping.node.path} of ${fn.node.path} retries a failing batch until ${until}: the batch holds up its shard until then, and records the stream drops never reach the on-failure destination. Set \`retryAttempts\`, and a \`maxRecordAge\` below the stream's retention.`,
    },
  ];
}

/**
 * A stream source that starts at the oldest record (`TRIM_HORIZON`) or at a timestamp
 * (`AT_TIMESTAMP`) reads the stream from there again whenever CloudFormation creates its mapping
 * again (a new logical id, another starting position or stream): the records the function already
 * ran come back, up to `maxRecordAge` or as long as the stream keeps them. Checked for a source
 * without retries, whose retries raise nothing else; one with retries is held to that horizon already.
 */
function checkReplay(
  fn: LambdaFunction,
  mapping: CfnEventSourceMapping,
  retentionSeconds: number,
  horizon: number,
  stream: { seconds: number; where: string } | undefined,
): Finding[] {
  const position = setting(mapping, 'StartingPosition', mapping.startingPosition);
  if ((position !== 'TRIM_HORIZON' && position !== 'AT_TIMESTAMP') || horizon <= retentionSeconds) return [];
  const span =
    horizon === Infinity
      ? 'for as long as the stream keeps them (not known here)'
      : `for ${formatSeconds(horizon)} (${horizon === stream?.seconds ? `as long as ${stream.where} keeps them` : 'its `maxRecordAge`'})`;
  return [
    {
      level: 'warning',
      id: 'lambda-idempotency:streamReplayOutlivesRecords',
      message: `The event source ${mapping.node.path} of ${fn.node.path} starts at ${position}: when its mapping is created again (a new logical id, another starting position or stream), it reads back records the function already ran, ${span}, while idempotency records are kept ${formatSeconds(retentionSeconds)}, so the older ones run the handler twice. Set \`maxRecordAge\` to at most the retention, or start at LATEST.`,
    },
  ];
}

/**
 * Checks the stream event sources (Kinesis, DynamoDB Streams) of `fn`: a batch that fails is
 * retried from its failed record on, so the records after it, already completed, come back with
 * it, until the batch succeeds, its retries run out or its records are older than `maxRecordAge`
 * or than the stream keeps them. With unlimited retries (the default), only an age limit or the
 * stream's retention bounds that in time: records must outlive it.
 */
export function checkStreams(fn: LambdaFunction, retentionSeconds: number): Finding[] {
  const findings: Finding[] = [];
  for (const mapping of mappingsOf(fn)) {
    if (sourceKind(mapping) !== 'stream') continue;
    findings.push(...checkOnFailure(fn, mapping));
    const retries = known(setting(mapping, 'MaximumRetryAttempts', mapping.maximumRetryAttempts), UNLIMITED);
    const age = known(setting(mapping, 'MaximumRecordAgeInSeconds', mapping.maximumRecordAgeInSeconds), UNLIMITED);
    const stream = streamRetention(fn, mapping.eventSourceArn);
    // Retries end at the age limit or when the stream drops the record, whichever comes first; an
    // age known only at deploy time may be any, so only the stream's retention bounds them here.
    const horizon = Math.min(age === undefined || age === UNLIMITED ? Infinity : age, stream?.seconds ?? Infinity);
    if (retries === 0) {
      if (age !== undefined) findings.push(...checkReplay(fn, mapping, retentionSeconds, horizon, stream));
      continue;
    }
    if (horizon <= retentionSeconds) continue;
    // Neither no limit nor a number: the deployed value may be within the retention, or far beyond it.
    const deployTime = [age === undefined ? '`maxRecordAge`' : [], retries === undefined ? '`retryAttempts`' : []].flat();
    if (deployTime.length > 0) {
      findings.push({
        level: 'warning',
        id: 'lambda-idempotency:streamNotChecked',
        message: `The event source ${mapping.node.path} of ${fn.node.path} has ${deployTime.join(' and ')} known only at deploy time, so its retries cannot be checked against the record retention (kept ${formatSeconds(retentionSeconds)}): make sure \`maxRecordAge\` is at most the retention, or \`retryAttempts\` 0.`,
      });
      continue;
    }
    if (horizon === Infinity) {
      findings.push({
        level: 'warning',
        id: 'lambda-idempotency:streamNotChecked',
        message: `The event source ${mapping.node.path} of ${fn.node.path} retries batches for a time not known at synth time (it sets no \`maxRecordAge\`, and the stream's retention is not known here), so it cannot be checked against the record retention (${formatSeconds(retentionSeconds)}): set \`maxRecordAge\` to at most the retention.`,
      });
      continue;
    }
    const why =
      horizon === stream?.seconds ? `${age === UNLIMITED ? 'with no `maxRecordAge`, ' : ''}for as long as ${stream.where} keeps it` : 'its `maxRecordAge`';
    findings.push({
      level: 'error',
      id: 'lambda-idempotency:retentionShorterThanStreamRetries',
      message: `Idempotency records are kept ${formatSeconds(retentionSeconds)}, but the event source ${mapping.node.path} of ${fn.node.path} can retry a batch, and with it the records after a failed one, for ${formatSeconds(horizon)} (${why}); a record retried after its idempotency record expired runs the handler twice. Set \`maxRecordAge\` to at most ${formatSeconds(retentionSeconds)}, or raise the retention (\`expiresAfter\`) to at least ${formatSeconds(horizon)}.`,
    });
  }
  return findings;
}

/**
 * The `durableConfig` of a durable function, as CloudFormation gets it: its `executionTimeout` in
 * seconds, `undefined` when known only at deploy time; `undefined` for a function that is not durable.
 */
function durableConfigOf(fn: LambdaFunction): { readonly timeout: number | undefined } | undefined {
  const cfn = fn.node.defaultChild;
  if (!(cfn instanceof CfnFunction)) return undefined;
  const config: unknown = Stack.of(fn).resolve(setting(cfn, 'DurableConfig', cfn.durableConfig));
  if (config === undefined || config === null) return undefined;
  // A number, or what a token resolves to (a `Ref`): known only at deploy time.
  const given = member(config, 'executionTimeout', 'ExecutionTimeout');
  return { timeout: typeof given === 'number' && !Token.isUnresolved(given) ? given : undefined };
}

/**
 * A durable function (`durableConfig`) holds its key for the durable lease, the handler's
 * `durableLeaseSeconds`, by default the retention it reads from the environment: an execution that
 * runs or stays suspended past it loses the key, and another execution with that key (a client's
 * retry, a redelivery) takes the record over and runs its steps again. Its `executionTimeout` bounds
 * how long one may last. A warning, not an error: the handler may set `durableLeaseSeconds`, which
 * the checks cannot see.
 */
export function checkDurable(fn: LambdaFunction, retentionSeconds: number): Finding[] {
  const durable = durableConfigOf(fn);
  if (durable === undefined) return [];
  const { timeout } = durable;
  if (timeout !== undefined && timeout <= retentionSeconds) return [];
  const lasts =
    timeout === undefined
      ? 'whose executions may last for an `executionTimeout` known only at deploy time'
      : `whose executions may last ${formatSeconds(timeout)} (its \`durableConfig\`'s \`executionTimeout\`)`;
  const atLeast = timeout === undefined ? 'the execution timeout' : formatSeconds(timeout);
  return [
    {
      level: 'warning',
      id: 'lambda-idempotency:durableExecutionOutlivesLease',
      message: `${fn.node.path} is a durable function ${lasts}, while its records are kept ${formatSeconds(retentionSeconds)}, the lease of a durable execution's record unless the handler sets \`durableLeaseSeconds\`: an execution running or suspended past it loses its key, and another execution with that key runs its steps again. Give its idempotent calls \`durableLeaseSeconds\` of at least ${atLeast}, or raise the retention (\`expiresAfter\`) to at least ${atLeast}.`,
    },
  ];
}

/**
 * Checks every function attached to the table: asynchronous-invocation retries against the record
 * retention, and batch event sources that do not report item failures.
 */
export function checkFunction(fn: LambdaFunction, retentionSeconds: number): Finding[] {
  const findings: Finding[] = [];
  // The function's own settings apply to unqualified invocations (also those made on its
  // `latestVersion`); each alias or version has its own.
  const all = fn.node.root.node.findAll();
  const targets = handlesOf(fn, all);
  const invokeConfigs = all.filter(
    (c): c is CfnEventInvokeConfig => c instanceof CfnEventInvokeConfig && (targets.has(c.functionName) || namesFunction(fn, c, c.functionName)),
  );
  // An alias's or a version's settings leave unqualified invocations (`$LATEST`) at the defaults.
  const unqualified = invokeConfigs.some((c) => c.qualifier === '$LATEST');
  if (!unqualified && retentionSeconds < DEFAULT_ASYNC_EVENT_AGE) {
    const which =
      invokeConfigs.length === 0
        ? 'an asynchronous invocation'
        : 'an unqualified asynchronous invocation (its aliases and versions have settings of their own)';
    findings.push({
      level: 'warning',
      id: 'lambda-idempotency:asyncRetriesUnchecked',
      message: `Idempotency records are kept ${formatSeconds(retentionSeconds)}, but ${which} of ${fn.node.path} is retried for up to ${formatSeconds(DEFAULT_ASYNC_EVENT_AGE)} by default. If it is invoked asynchronously, call \`configureAsyncInvoke({ maxEventAge })\` with at most the retention, or raise the retention.`,
    });
  }
  for (const invokeConfig of invokeConfigs) {
    const age = known(setting(invokeConfig, 'MaximumEventAgeInSeconds', invokeConfig.maximumEventAgeInSeconds), DEFAULT_ASYNC_EVENT_AGE);
    const retries = known(setting(invokeConfig, 'MaximumRetryAttempts', invokeConfig.maximumRetryAttempts), DEFAULT_ASYNC_RETRIES);
    const qualified = invokeConfig.node.scope?.node.scope === fn ? fn.node.path : `${fn.node.path} (through ${invokeConfig.node.scope?.node.scope?.node.path})`;
    if (age !== undefined && age <= retentionSeconds) continue;
    // Without retries, an event still comes back until `maxEventAge`: Lambda requeues one it could
    // not run (throttled, a system error), and its eventually consistent queue can deliver one twice.
    if (retries === 0 && age !== undefined) {
      findings.push({
        level: 'warning',
        id: 'lambda-idempotency:asyncRedeliveryOutlivesRecords',
        message: `${qualified} has no async-invoke retries, but keeps an event for up to ${formatSeconds(age)} (\`maxEventAge\`), longer than idempotency records are kept (${formatSeconds(retentionSeconds)}): Lambda still runs a throttled event again until then, and its queue can deliver an event twice, so a late copy runs the handler again. Set \`maxEventAge\` to at most the retention.`,
      });
      continue;
    }
    if (age === undefined || retries === undefined) {
      findings.push({
        level: 'warning',
        id: 'lambda-idempotency:asyncRetriesUnchecked',
        message: `${qualified} has asynchronous-invocation settings (\`maxEventAge\`, \`retryAttempts\`) known only at deploy time, so its retries cannot be checked against the record retention (kept ${formatSeconds(retentionSeconds)}): make sure \`maxEventAge\` is at most the retention.`,
      });
      continue;
    }
    findings.push({
      level: 'error',
      id: 'lambda-idempotency:asyncRetriesOutliveRecords',
      message: `${qualified} retries asynchronous events for up to ${formatSeconds(age)}, longer than idempotency records are kept (${formatSeconds(retentionSeconds)}); a late retry runs the handler twice. Lower \`maxEventAge\` or raise the retention (\`expiresAfter\`).`,
    });
  }
  for (const mapping of mappingsOf(fn)) {
    // Kafka, Amazon MQ and DocumentDB sources have no per-item failure reporting.
    if (sourceKind(mapping) === 'other') continue;
    const types = setting(mapping, 'FunctionResponseTypes', mapping.functionResponseTypes);
    // Known only at deploy time: a token, or an override's intrinsic function.
    if (Token.isUnresolved(types) || (typeof types === 'object' && types !== null && !Array.isArray(types))) continue;
    if (!Array.isArray(types) || !types.includes('ReportBatchItemFailures')) {
      findings.push({
        level: 'error',
        id: 'lambda-idempotency:noBatchItemFailures',
        message: `The event source ${mapping.node.path} of ${fn.node.path} does not report batch item failures: the batch helper returns failed items as \`batchItemFailures\`, which Lambda ignores without \`reportBatchItemFailures: true\`, so a batch with failed records would count as processed: a queue deletes them, a stream moves past them. Wire it with \`IdempotencyTable.attachSqsConsumer\` or set \`reportBatchItemFailures: true\`. A handler that fails by throwing the whole batch, without the batch helper, loses nothing by it: set \`reportBatchItemFailures: true\` too (Lambda still retries a batch the handler throws, and takes one whose handler returns nothing as done).`,
      });
    }
  }
  return findings;
}

/** The value of `variable` in the environment of `fn`, resolved as the template will have it. @internal */
export function environmentValue(fn: LambdaFunction, variable: string): unknown {
  const cfn = fn.node.defaultChild;
  if (!(cfn instanceof CfnFunction)) return undefined;
  const synthesized = synthesizedProperties(cfn);
  if (synthesized === undefined) return (Stack.of(fn).resolve(cfn.environment) as { variables?: Record<string, unknown> } | undefined)?.variables?.[variable];
  return (synthesized.Environment as { Variables?: Record<string, unknown> } | undefined)?.Variables?.[variable];
}

/**
 * Whether the function still gets the retention it was attached with: one put in its environment
 * afterwards (`addEnvironment`) is what the store uses, while the checks compared retries with the
 * other. `variable` is the environment variable the construct set.
 */
export function checkEnvironmentRetention(fn: LambdaFunction, variable: string, retentionSeconds: number): Finding[] {
  const value = environmentValue(fn, variable);
  if (value === String(retentionSeconds)) return [];
  return [
    {
      level: 'error',
      id: 'lambda-idempotency:environmentRetentionChanged',
      message: `${fn.node.path} has ${variable}=${JSON.stringify(value)} in its environment, set after it was attached: its store keeps records that long, but its retries were checked against ${formatSeconds(retentionSeconds)}. Give its retention to \`attachFunction(fn, { expiresAfter })\` instead.`,
    },
  ];
}

/** A table's name as written in the app (`tableName`, or the name it was imported by), when it is known at synth. */
function literalTableName(table: ITable): string | undefined {
  const cfn = table.node.defaultChild;
  const name: unknown = cfn instanceof CfnTable || cfn instanceof CfnGlobalTable ? cfn.tableName : table.tableName;
  return isLiteral(name) ? name : undefined;
}

/**
 * Whether the function still names the table it was attached to: a table put in its environment
 * afterwards (`addEnvironment`) is the one its store writes to, which attaching granted it nothing
 * on, so every call would fail (closed) with AccessDenied. `attachedValue` is what the construct
 * set: the table's name, or its ARN for a table of another account. The table's ARN names the same
 * table, and so does its literal name when the construct set the name.
 */
export function checkEnvironmentTable(fn: LambdaFunction, variable: string, table: ITable, attachedValue: string): Finding[] {
  const stack = Stack.of(fn);
  const value = environmentValue(fn, variable);
  const name = literalTableName(table);
  const same = [attachedValue, table.tableArn, ...(name !== undefined && attachedValue !== table.tableArn ? [name] : [])];
  if (same.some((candidate) => JSON.stringify(stack.resolve(candidate)) === JSON.stringify(value))) return [];
  const attached = `${table.node.path}${name === undefined ? '' : ` (${name})`}`;
  return [
    {
      level: 'error',
      id: 'lambda-idempotency:environmentTableChanged',
      message: `${fn.node.path} has ${variable}=${JSON.stringify(value)} in its environment, set after it was attached to the table ${attached}: its store would keep records in that other table, on which attaching granted it nothing, so every call would fail with AccessDenied, and its retries were checked against the attached table's retention. Remove the \`addEnvironment('${variable}', …)\` call; for records in the other table, attach the function to that table instead (\`IdempotencyTable.fromTable(scope, id, table).attachFunction(fn)\`); a table the handler uses for its own work needs a variable of another name.`,
    },
  ];
}

/**
 * Where a table is: an imported table's `env` is the importing stack's, so a literal ARN says
 * better. @internal
 */
export function tableEnv(table: ITable): ResourceEnvironment {
  if (Token.isUnresolved(table.tableArn)) return table.env;
  const { account, region } = Arn.split(table.tableArn, ArnFormat.SLASH_RESOURCE_NAME);
  return { account: account ?? table.env.account, region: region ?? table.env.region };
}

/**
 * Whether `fn` names `table` by its ARN rather than its name: a name means a table of the caller's
 * own account and Region (a store made without a `client` takes the Region from an ARN), so the ARN,
 * unless the two are known to share an account, and a Region or a replica there. A function whose
 * account or Region is known only at deploy may be deployed elsewhere than a table of a literal one
 * (imported by its ARN, or of a stack that gives one). @internal
 */
export function namedByArn(fn: LambdaFunction, table: ITable): boolean {
  const where = tableEnv(table);
  const apart = (mine: string, its: string): boolean => {
    const same = Token.compareStrings(mine, its);
    return same === TokenComparison.DIFFERENT || (same === TokenComparison.ONE_UNRESOLVED && isLiteral(its));
  };
  return apart(fn.env.account, where.account) || (apart(fn.env.region, where.region) && !replicaIn(fn, table));
}

/** Whether `table` is known to be in another region, or another account, than `fn`. @internal */
export function elsewhere(fn: LambdaFunction, table: ITable): { readonly region: boolean; readonly account: boolean } {
  const where = tableEnv(table);
  return {
    region: Token.compareStrings(fn.env.region, where.region) === TokenComparison.DIFFERENT,
    account: Token.compareStrings(fn.env.account, where.account) === TokenComparison.DIFFERENT,
  };
}

/** Where a table defined in this app keeps its replicas, and whether they are strongly consistent. @internal */
export interface TableReplicas {
  /** The primary Region (the stack's, a token in an environment-agnostic stack) first. */
  readonly regions: readonly string[];
  readonly strong: boolean;
}

/**
 * The replicas of a `TableV2` (its `CfnGlobalTable`) or of a `Table` with `replicationRegions` (one
 * `Custom::DynamoDBReplica` child per Region, always eventually consistent); `undefined` for an
 * imported table or a consistency known only at deploy time. @internal
 */
export function tableReplicas(table: ITable): TableReplicas | undefined {
  const cfn = table.node.defaultChild;
  const stack = Stack.of(table);
  if (cfn instanceof CfnGlobalTable) {
    const replicas: unknown = stack.resolve(cfn.replicas);
    if (!Array.isArray(replicas) || Token.isUnresolved(cfn.multiRegionConsistency)) return undefined;
    // The primary replica's Region resolves to `{ Ref: 'AWS::Region' }` when the stack has none.
    const others = replicas.map((replica: CfnGlobalTable.ReplicaSpecificationProperty) => replica.region).filter((region) => typeof region === 'string');
    return { regions: [...new Set([stack.region, ...others])], strong: cfn.multiRegionConsistency === 'STRONG' };
  }
  if (cfn instanceof CfnTable) {
    const others = table.node
      .findAll()
      .filter((c): c is CfnResource => c instanceof CfnResource && c.cfnResourceType === 'Custom::DynamoDBReplica')
      // CfnResource has no public reader of its properties; the replica's Region is one of them.
      .map((c) => (c as unknown as { readonly _cfnProperties?: { readonly Region?: unknown } })._cfnProperties?.Region)
      .filter((region) => typeof region === 'string');
    return { regions: [stack.region, ...others], strong: false };
  }
  return undefined;
}

/**
 * The replica of a `TableV2` of this app in the Region of `fn`, when that is not the table's own:
 * a store made without a `client` writes there, under the replica's ARN and key. @internal
 */
export function localReplica(fn: LambdaFunction, table: ITable): ITable | undefined {
  const region = fn.env.region;
  if (!(table instanceof TableV2) || !elsewhere(fn, table).region || !tableReplicas(table)?.regions.includes(region)) return undefined;
  // `replica()` imports the replica under one id per Region: a second call (for another function, or
  // by the app itself) would clash with the first.
  return (table.node.tryFindChild(`ReplicaTable${region}`) as ITable | undefined) ?? table.replica(region);
}

/** Whether `table` (defined in this app) has a replica in the Region of `fn`. */
const replicaIn = (fn: LambdaFunction, table: ITable): boolean =>
  tableReplicas(table)?.regions.some((region) => Token.compareStrings(fn.env.region, region) === TokenComparison.SAME) ?? false;

/** A Region for a message: a token says nothing to a reader. */
const regionName = (region: string): string => (Token.isUnresolved(region) ? "the stack's Region" : region);

/**
 * Whether the app writes `key`'s policy: a `Key` (a `CfnKey` is its default child) or a key made
 * from a `CfnKey` with `Key.fromCfnKey` (a child of it), not one imported by its ARN. @internal
 */
export const isKeyOfApp = (key: IKey): boolean => CfnKey.isCfnKey(key.node.defaultChild) || CfnKey.isCfnKey(key.node.scope);

/**
 * When `key` is an alias, its name and the key it names (an `Alias` of the app, or one imported with
 * `Alias.fromAliasAttributes`), `target` left out when the app cannot read it (an alias imported by
 * its name alone, which throws). @internal
 */
export function aliasOf(key: IKey): { readonly name: string; readonly target?: IKey } | undefined {
  const name = (key as Partial<IAlias>).aliasName;
  if (typeof name !== 'string') return undefined;
  try {
    return { name, target: (key as IAlias).aliasTargetKey };
  } catch {
    return { name };
  }
}

/**
 * What a function of another account needs of `table` besides its role's own policy, and who adds it:
 * the grant adds the resource-based policy statement to a table defined in the app, and the key
 * policy statement to a key defined in it; an imported table's or key's owner must add them.
 */
function crossAccountAccess(table: ITable): string {
  const itemActions = "the function's role the item actions (PutItem, UpdateItem, DeleteItem) in the table's resource-based policy";
  if (!(table instanceof Table || table instanceof TableV2)) {
    return `the table's owner must also allow ${itemActions}, and, for a customer managed key, the key actions in the key's policy: this app cannot change an imported table's policies.`;
  }
  const key = table.encryptionKey;
  if (key === undefined)
    return `a table of another account must also allow ${itemActions}; attaching the function added that statement to the table: nothing to add.`;
  if (isKeyOfApp(key)) {
    return `a table of another account must also allow ${itemActions}, and the key actions in its customer managed key's policy; attaching the function added both statements: nothing to add.`;
  }
  return `a table of another account must also allow ${itemActions}, which attaching the function added to the table, and the key actions in its customer managed key's policy: the key is imported, so its owner must add that statement.`;
}

/**
 * Whether `fn` reaches `table` with what attaching gives it. A store's default client talks to the
 * function's own region, and a grant to a table of another account is only half of the access:
 * the table's resource-based policy must allow the function too. The grant adds that statement to a
 * table defined in the app (and to its key's policy); an imported table's owner must add it.
 */
export function checkTableReach(fn: LambdaFunction, table: ITable): Finding[] {
  const where = tableEnv(table);
  const other = elsewhere(fn, table);
  const findings: Finding[] = [];
  const replicas = tableReplicas(table);
  if (other.region && !replicaIn(fn, table)) {
    findings.push({
      level: 'warning',
      id: 'lambda-idempotency:tableInAnotherRegion',
      message: `The idempotency table is in ${where.region}, ${fn.node.path} in ${fn.env.region}: its IDEMPOTENCY_TABLE holds the table's ARN, so a DynamoDBStore made without a \`client\` sends its requests to ${where.region}, each crossing Regions; a \`client\` given to it must be one for ${where.region}.`,
    });
  } else if (other.region && !replicas?.strong) {
    // A strongly consistent replica sees every claim of the other Regions: the local one is safe.
    findings.push({
      level: 'warning',
      id: 'lambda-idempotency:tableInAnotherRegion',
      message: `${fn.node.path} is in ${fn.env.region}, where the idempotency table in ${where.region} has an eventually consistent replica: a claim in the replica does not see a claim made at the same time in another Region, so the handler can run twice. Give its DynamoDBStore, as every other function's, a \`client\` for ${where.region}.`,
    });
  }
  if (other.account) {
    findings.push({
      level: 'warning',
      id: 'lambda-idempotency:tableInAnotherAccount',
      message: `The idempotency table is in account ${where.account}, ${fn.node.path} in ${fn.env.account}: ${crossAccountAccess(table)}`,
    });
  }
  return findings;
}

/**
 * Whether `role` takes the grants. A role imported with `mutable: false` or from another account (or
 * made with `withoutPolicyUpdates()`) drops every statement added to its policy while telling the
 * grant it was added: its function deploys without the item actions, and every call fails with
 * AccessDenied (`STORE_FAILURE`). With `addGrantsToResources`, the table's resource policy takes the
 * item actions, but a customer managed key's grant, made in the role's policy, is dropped all the
 * same. `subject` names the role in the message: "The role of my/Function".
 */
export function checkRole(role: unknown, subject: string, table: IConstruct, itemActions: readonly string[], keyActions: readonly string[]): Finding[] {
  const immutable = role as { addGrantsToResources?: unknown; constructor: { PROPERTY_INJECTION_ID?: unknown } } | undefined;
  // Not `instanceof`: aws-cdk-lib does not export the class, and an app may load another copy of it.
  if (immutable?.constructor.PROPERTY_INJECTION_ID !== 'aws-cdk-lib.aws-iam.ImmutableRole') return [];
  const dropped = [
    ...(immutable.addGrantsToResources === true ? [] : [`${itemActions.join(', ')} on the table ${table.node.path}`]),
    ...(keyActions.length === 0 ? [] : [`${keyActions.join(', ')} on its customer managed key`]),
  ];
  if (dropped.length === 0) return [];
  return [
    {
      level: 'warning',
      id: 'lambda-idempotency:roleNotGranted',
      message: `${subject} is immutable (imported with \`mutable: false\` or from another account, or \`withoutPolicyUpdates()\`): the grants added nothing to its policy, so every call fails with AccessDenied (STORE_FAILURE) unless the role's owner grants it ${dropped.join(', and ')}. Acknowledge this warning once it has them.`,
    },
  ];
}

/**
 * A property read through {@link setting} is the L1's (camelCase members) when no override changed
 * it, the template's (PascalCase, resolved) when one did: these read either.
 */
type Members = Record<string, unknown> | null | undefined;
const member = (value: unknown, camel: string, pascal: string): unknown => (value as Members)?.[camel] ?? (value as Members)?.[pascal];
const asKeySchema = (key: unknown) => ({ attributeName: member(key, 'attributeName', 'AttributeName'), keyType: member(key, 'keyType', 'KeyType') });
const asAttributeDefinition = (definition: unknown) => ({
  attributeName: member(definition, 'attributeName', 'AttributeName'),
  attributeType: member(definition, 'attributeType', 'AttributeType'),
});
function asTimeToLive(ttl: unknown): { attributeName: unknown; enabled: unknown } | undefined {
  return ttl === undefined ? undefined : { attributeName: member(ttl, 'attributeName', 'AttributeName'), enabled: member(ttl, 'enabled', 'Enabled') };
}

/**
 * An existing table defined in this app, against the schema the store expects: a key the record
 * protocol cannot address (a sort key, a partition key that is not a string) is an error; another
 * partition key or TTL attribute name, or no TTL, a warning that names the store option matching
 * it. A `TableV2` keeps the same schema on its `CfnGlobalTable`. Replicas in several Regions without
 * multi-Region strong consistency are a warning: concurrent claims in two Regions both win. A replica
 * from `TableV2.replica(region)` is checked as its global table. An imported table
 * (`Table.fromTableName`), or a key schema, key name, key type or TTL attribute known only at deploy time,
 * says nothing: no finding.
 */
export function checkTable(table: ITable): Finding[] {
  // `TableV2.replica(region)` imports the replica as a child of its global table: check that table.
  if (table.node.defaultChild === undefined && table.node.scope instanceof TableV2) return checkTable(table.node.scope);
  const cfn = table.node.defaultChild;
  if (!(cfn instanceof CfnTable || cfn instanceof CfnGlobalTable)) return [];
  // As CloudFormation gets them: an escape hatch can add a sort key, or move or remove the TTL.
  const keySchema = setting(cfn, 'KeySchema', cfn.keySchema);
  if (!Array.isArray(keySchema)) return [];
  const keys = keySchema.map(asKeySchema);
  const attributeDefinitions = setting(cfn, 'AttributeDefinitions', cfn.attributeDefinitions);
  const definitions = Array.isArray(attributeDefinitions) ? attributeDefinitions.map(asAttributeDefinition) : [];
  const partition = keys.find((key) => key.keyType === 'HASH')?.attributeName;
  const type = definitions.find((definition) => definition.attributeName === partition)?.attributeType;
  const expected = idempotencyTableSchema;
  const findings: Finding[] = [];
  if (keys.some((key) => key.keyType === 'RANGE')) {
    findings.push({
      level: 'error',
      id: 'lambda-idempotency:tableHasSortKey',
      message: 'The table has a sort key: the store addresses a record by its partition key alone (a Powertools table with `sortKeyAttr` cannot be used).',
    });
  }
  if (typeof partition === 'string' && isLiteral(type) && type !== 'S') {
    findings.push({
      level: 'error',
      id: 'lambda-idempotency:partitionKeyNotString',
      message: `The partition key \`${partition}\` is of type ${type}: record ids are strings (S).`,
    });
  }
  if (isLiteral(partition) && partition !== expected.partitionKey.name) {
    findings.push({
      level: 'warning',
      id: 'lambda-idempotency:partitionKeyName',
      message: `The partition key is \`${partition}\`, not \`${expected.partitionKey.name}\`: give the store \`attributes: { key: '${partition}' }\`.`,
    });
  }
  const replicas = tableReplicas(table);
  if (replicas !== undefined && replicas.regions.length > 1 && !replicas.strong) {
    findings.push({
      level: 'warning',
      id: 'lambda-idempotency:eventuallyConsistentReplicas',
      message: `The table has eventually consistent replicas in ${replicas.regions.map(regionName).join(', ')}: a claim written in one Region does not see a claim made at the same time in another, so two functions can both run the handler; give every function's DynamoDBStore a \`client\` for one Region, or use a TableV2 with \`multiRegionConsistency: MultiRegionConsistency.STRONG\`.`,
    });
  }
  const ttl = asTimeToLive(setting(cfn, 'TimeToLiveSpecification', cfn.timeToLiveSpecification));
  if (ttl === undefined || ttl.enabled === false) {
    findings.push({
      level: 'warning',
      id: 'lambda-idempotency:noTimeToLive',
      message: `The table has no TTL: expired records stay (a claim still replaces them) and the table only grows. Enable TTL on \`${expected.timeToLiveAttribute}\`.`,
    });
  } else if (isLiteral(ttl.attributeName) && ttl.attributeName !== expected.timeToLiveAttribute) {
    findings.push({
      level: 'warning',
      id: 'lambda-idempotency:timeToLiveAttribute',
      message: `TTL is on \`${ttl.attributeName}\`, not \`${expected.timeToLiveAttribute}\`: give the store \`attributes: { expiration: '${ttl.attributeName}' }\`, or records never expire.`,
    });
  }
  return findings;
}
