/**
 * The handlers whose bundles the benchmark measures and the tests inspect, each written as a user
 * writes it, and bundled as a Lambda function ships: esbuild, minified ESM, the AWS SDK external
 * because the Node.js runtime provides it.
 * Development tooling.
 */
import { join } from 'node:path';
import { build, type Metafile } from 'esbuild';

/**
 * `bare`: middy alone; `ours`: the lean entry points (`lambda-idempotency/middy` and
 * `/dynamodb`); `main`: the same handler from the main entry; `powertools`: Powertools'
 * middleware and store; `full`: ours with encryption, observability, atomic mode, stored errors,
 * HTTP with server-issued keys, batch, `transaction()` with `transition()`, and `inspectRecord` /
 * `forgetRecord`.
 */
export type Variant = 'bare' | 'ours' | 'main' | 'powertools' | 'full';
export const VARIANTS: readonly Variant[] = ['bare', 'ours', 'main', 'powertools', 'full'];

const HANDLER = `async (event) => ({ statusCode: 201, body: JSON.stringify({ orderId: event.orderId, status: 'accepted' }) })`;

/** The source of each handler, importing this repository's `lib/` under `root`. */
export function handlerSource(variant: Variant, root: string): string {
  const lib = (path: string) => JSON.stringify(join(root, 'lib', path));
  const table = `process.env.IDEMPOTENCY_TABLE ?? 'idempotency'`;
  /** Our minimal handler, with the imports of an entry point. */
  const minimal = (imports: string) => `import middy from '@middy/core';
${imports}
const store = new DynamoDBStore({ tableName: ${table} });
export const handler = middy(${HANDLER}).use(idempotency({ store }));`;
  switch (variant) {
    case 'bare':
      return `import middy from '@middy/core';
export const handler = middy(${HANDLER});`;
    case 'ours':
      return minimal(`import { idempotency } from ${lib('middy/index.ts')};
import { DynamoDBStore } from ${lib('dynamodb/index.ts')};`);
    case 'main':
      return minimal(`import { DynamoDBStore, idempotency } from ${lib('index.ts')};`);
    case 'powertools':
      return `import middy from '@middy/core';
import { makeHandlerIdempotent } from '@aws-lambda-powertools/idempotency/middleware';
import { DynamoDBPersistenceLayer } from '@aws-lambda-powertools/idempotency/dynamodb';
const persistenceStore = new DynamoDBPersistenceLayer({ tableName: ${table} });
export const handler = middy(${HANDLER}).use(makeHandlerIdempotent({ persistenceStore }));`;
    case 'full':
      return `import middy from '@middy/core';
import { aesGcmEncryption, cloudWatchLines, DynamoDBStore, forgetRecord, httpIdempotency, idempotency, idempotentBatch, inspectRecord, issueIdempotencyKey, makeIdempotent, transaction, transition } from ${lib('index.ts')};
const keys = { k1: new Uint8Array(32) };
const encryption = aesGcmEncryption({ currentKey: () => ({ id: 'k1', key: keys.k1 }), keyById: (id) => keys[id] });
const store = new DynamoDBStore({ tableName: ${table}, encryption });
const observability = cloudWatchLines({ logs: true });
const isFinalError = (error) => error?.name === 'CardDeclined';
const secret = new Uint8Array(32);
const accept = async (order) => {
  transaction().put({ TableName: 'orders', Item: { id: order.orderId, status: 'accepted' } });
  transaction().update(transition({ TableName: 'carts', Key: { id: order.cartId }, from: 'OPEN', to: 'ORDERED' }));
  return { statusCode: 201, body: JSON.stringify({ orderId: order.orderId, status: 'accepted' }) };
};
export const handler = middy(accept).use(idempotency({ store, observability, isFinalError, key: (event) => event.orderId }));
export const atomicHandler = middy(accept).use(idempotency({ store, observability, atomic: true }));
export const httpHandler = middy(${HANDLER}).use(httpIdempotency({ store, observability, isFinalError, signedKeys: { secrets: [secret] } }));
export const issueKey = async () => ({ statusCode: 201, body: JSON.stringify({ key: issueIdempotencyKey({ secret }) }) });
export const batchHandler = idempotentBatch(accept, { store, observability, isFinalError });
export const acceptOnce = makeIdempotent(accept, { store, name: 'accept', observability });
export const releaseStuck = async ({ orderId }) => {
  const seen = await inspectRecord({ store, name: 'accept', key: orderId });
  return seen?.status === 'INPROGRESS' && forgetRecord({ store, name: 'accept', key: orderId, leaseUntil: seen.leaseUntil });
};`;
  }
}

/** Bundles a handler: its bytes, their text and esbuild's account of its inputs. */
export async function bundleHandler(
  variant: Variant,
  root: string,
): Promise<{ readonly bytes: Uint8Array; readonly text: string; readonly metafile: Metafile }> {
  const result = await build({
    stdin: { contents: handlerSource(variant, root), resolveDir: root, sourcefile: `${variant}-handler.ts`, loader: 'ts' },
    bundle: true,
    minify: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    external: ['@aws-sdk/*'],
    logLevel: 'silent',
    metafile: true,
    write: false,
  });
  const [output] = result.outputFiles;
  return { bytes: output!.contents, text: output!.text, metafile: result.metafile };
}
