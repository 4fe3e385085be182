/**
 * Run as a child process (`node --import tsx`): a duplicate that waits, against DynamoDB Local, in
 * a process that does nothing else, while the attempt holding its key never ends. WAIT=process:
 * the holder is another process (`waitForInProgressMillis`, 400 ms, against a 60 s lease);
 * WAIT=flight: it is an in-process leader (single-flight) with a 1 s lease. Prints one JSON line: what the call ended with, or
 * `emptyLoop` when the event loop emptied first, the moment the Lambda Node.js runtime answers the
 * invocation `null` (its `beforeExit` listener posts a null response).
 * Reads DYNAMODB_ENDPOINT, TABLE_NAME and WAIT.
 */
import { DynamoDBStore, type IdempotencyError, makeIdempotent } from '../../lib/index.js';
import { localClient } from '../../tools/dynamodb-local.js';

const client = localClient(process.env.DYNAMODB_ENDPOINT!);
const store = new DynamoDBStore({ tableName: process.env.TABLE_NAME!, client });
let reported = false;
const report = (outcome: string): void => {
  if (reported) return;
  reported = true;
  console.log(JSON.stringify({ outcome }));
  client.destroy();
};
process.on('beforeExit', () => report('emptyLoop'));

let holding!: () => void;
const held = new Promise<void>((resolve) => (holding = resolve));
let runs = 0;
const fn = async (_: string): Promise<string> => {
  if (++runs > 1) return 'ran';
  holding();
  return new Promise<never>(() => undefined); // the holder never ends, and holds nothing open
};
// The other process's lease outlasts the wait however slow the machine, so the wait ends at its bound.
const options = { store, name: 'event-loop', leaseSeconds: process.env.WAIT === 'process' ? 60 : 1 };
const holder = makeIdempotent(fn, options);
// Another wrapper of the same function is another process; the same wrapper shares its calls in flight.
const waiter = process.env.WAIT === 'process' ? makeIdempotent(fn, { ...options, waitForInProgressMillis: 400 }) : holder;
const key = `k-${process.pid}`;
void holder(key);
await held;
report(await waiter(key).then(String, (error: IdempotencyError) => error.code));
