/**
 * Run as a child process (`fork` with `--import tsx`): one Lambda process making idempotent calls on
 * a shared store (DynamoDB Local or redis-server), which the test kills, or holds and lets go on
 * later, at a gate between two steps of the record protocol. The parent drives it over IPC:
 * - `{ type: 'call', call }` runs one call of {@link CallSpec}; the process reports
 *   `{ type: 'gate', at }` when it reaches `call.gate` (and waits there for `{ type: 'go' }`, or its
 *   end), `{ type: 'ran' }` as the function starts, and `{ type: 'done', outcome }` as the call ends;
 * - `{ type: 'clock', t }` moves the process's clock (the `now` option), as time passes for a
 *   process frozen at a gate.
 * The function's effect is an `ADD runs 1` on the item `effect#<name>#<id>` of the business table:
 * sent by itself (`plain`), or as a `transaction()` write (`transaction`, `atomic`).
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import type { Context } from 'aws-lambda';
import { Redis } from 'ioredis';
import { DynamoDBStore, type IdempotencyStore, makeIdempotent, transaction } from '../../lib/index.js';
import { RedisStore } from '../../lib/redis/index.js';
import { CLAIM, COMPLETE, RELEASE } from '../../lib/redis/scripts.js';
import { localClient } from '../../tools/dynamodb-local.js';
import { lambdaContext } from './lambda.js';

/** A store request the process stops at: before it is sent, or once its answer came (applied, the answer not yet read). */
export type Gate = `${'claim' | 'complete' | 'release' | 'commit'}:${'before' | 'after'}` | 'function';

export interface CallSpec {
  readonly store: 'dynamodb' | 'redis';
  readonly endpoint: string;
  readonly redisUrl?: string;
  readonly tableName: string;
  readonly bizTable: string;
  readonly name: string;
  readonly id: string;
  readonly mode: 'plain' | 'transaction' | 'atomic';
  /** The function throws (an error that is not final: the key is released). */
  readonly fails?: boolean;
  readonly gate?: Gate;
  /** What the Lambda context reads as the time left, ms: the lease. */
  readonly remainingMillis: number;
  /** `waitForInProgressMillis`. */
  readonly waitMillis?: number;
}

export type Outcome = { readonly value: unknown } | { readonly error: { readonly name: string; readonly code?: string; readonly message: string } };

/** What a call ended with; `events`, its observability events, and `warnings`, the messages of its log lines, when any. */
export type Done = { type: 'done'; outcome: Outcome; events?: string[]; warnings?: string[] };

export type ToParent = { type: 'gate'; at: Gate } | { type: 'ran' } | Done;
export type ToChild = { type: 'call'; call: CallSpec; t: number } | { type: 'clock'; t: number } | { type: 'go' };

const send = (message: ToParent): void => void process.send!(message);
let clock = 0;
let go: () => void = () => undefined;

/** Stops at `at` when it is the call's gate (once), until the parent says go. */
async function pass(spec: CallSpec, at: Gate, passed: Set<Gate>): Promise<void> {
  if (spec.gate !== at || passed.has(at)) return;
  passed.add(at);
  const resumed = new Promise<void>((resolve) => (go = resolve));
  send({ type: 'gate', at });
  await resumed;
}

const DYNAMODB_STEPS: Record<string, 'claim' | 'complete' | 'release' | 'commit'> = {
  PutItemCommand: 'claim',
  UpdateItemCommand: 'complete',
  DeleteItemCommand: 'release',
  TransactWriteItemsCommand: 'commit',
};

/** A DynamoDB client whose requests stop at the call's gate (outside the SDK's retries: `after` is once the answer came). */
function gatedDynamoDB(spec: CallSpec, passed: Set<Gate>): DynamoDBClient {
  const client = localClient(spec.endpoint);
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const step = DYNAMODB_STEPS[context.commandName ?? ''];
      if (step !== undefined) await pass(spec, `${step}:before`, passed);
      try {
        return await next(args);
      } finally {
        if (step !== undefined) await pass(spec, `${step}:after`, passed);
      }
    },
    { step: 'initialize', name: 'crashGate' },
  );
  return client;
}

const REDIS_STEPS = new Map([CLAIM, COMPLETE, RELEASE].map((script, i) => [script.sha, (['claim', 'complete', 'release'] as const)[i]!]));

/** An ioredis client whose record scripts stop at the call's gate. */
function gatedRedis(spec: CallSpec, passed: Set<Gate>): Redis {
  const client = new Redis(spec.redisUrl!, { maxRetriesPerRequest: 0, enableOfflineQueue: true });
  const call = client.call.bind(client) as (...args: string[]) => Promise<unknown>;
  const sources = new Map([CLAIM, COMPLETE, RELEASE].map((script) => [script.source, script.sha]));
  Object.assign(client, {
    call: async (command: string, ...args: string[]) => {
      const step = REDIS_STEPS.get((command.toUpperCase() === 'EVAL' ? sources.get(args[0]!) : args[0]) ?? '');
      if (step !== undefined) await pass(spec, `${step}:before`, passed);
      const reply = await call(command, ...args).then(
        (value) => ({ value }),
        (error: unknown) => ({ error }),
      );
      // A script the server did not know ran nothing: the store sends it again by its source.
      if (step !== undefined && !String((reply as { error?: unknown }).error).includes('NOSCRIPT')) await pass(spec, `${step}:after`, passed);
      if ('error' in reply) throw reply.error;
      return reply.value;
    },
  });
  return client;
}

async function run(spec: CallSpec): Promise<Done> {
  const passed = new Set<Gate>();
  const events: string[] = [];
  const warnings: string[] = [];
  const effects = localClient(spec.endpoint);
  let store: IdempotencyStore;
  let close: () => void;
  if (spec.store === 'dynamodb') {
    const client = gatedDynamoDB(spec, passed);
    store = new DynamoDBStore({ tableName: spec.tableName, client });
    close = () => client.destroy();
  } else {
    const client = gatedRedis(spec, passed);
    store = new RedisStore({ client, keyPrefix: `${spec.tableName}:` });
    close = () => client.disconnect();
  }
  const effect = {
    TableName: spec.bizTable,
    Key: { id: `effect#${spec.name}#${spec.id}` },
    UpdateExpression: 'ADD runs :one',
    ExpressionAttributeValues: { ':one': 1 },
  };
  const fn = makeIdempotent(
    async (_input: { id: string }, _context: Context) => {
      send({ type: 'ran' });
      await pass(spec, 'function', passed);
      if (spec.mode === 'plain') {
        await effects.send(new UpdateItemCommand({ ...effect, Key: { id: { S: effect.Key.id } }, ExpressionAttributeValues: { ':one': { N: '1' } } }));
      } else {
        transaction().update(effect);
      }
      if (spec.fails) throw new Error('the function failed');
      return { ranBy: process.pid };
    },
    {
      store,
      name: spec.name,
      key: (input) => input.id,
      now: () => clock,
      logger: { warn: (line: string) => void warnings.push((JSON.parse(line) as { message: string }).message) },
      observability: (event) => void events.push(event),
      ...(spec.mode === 'atomic' ? { atomic: true } : {}),
      ...(spec.waitMillis === undefined ? {} : { waitForInProgressMillis: spec.waitMillis }),
    },
  );
  const done = (outcome: Outcome): Done => ({
    type: 'done',
    outcome,
    ...(events.length === 0 ? {} : { events }),
    ...(warnings.length === 0 ? {} : { warnings }),
  });
  try {
    return done({ value: await fn({ id: spec.id }, lambdaContext(spec.name, spec.remainingMillis)) });
  } catch (error) {
    const { name, code, message } = error as { name: string; code?: string; message: string };
    return done({ error: { name, message, ...(code === undefined ? {} : { code }) } });
  } finally {
    close();
    effects.destroy();
  }
}

process.on('message', (message: ToChild) => {
  if (message.type === 'clock') clock = message.t;
  else if (message.type === 'go') go();
  else {
    clock = message.t;
    void run(message.call).then(send);
  }
});
