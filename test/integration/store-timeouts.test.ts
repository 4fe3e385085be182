/**
 * The client `DynamoDBStore` builds when given none, in front of a DynamoDB Local that stops
 * answering (a loopback proxy that keeps connections open and forwards nothing: a VPC without a
 * route to DynamoDB, a connection dropped silently). The SDK sets no timeouts of its own, so each
 * request is bounded by the store: the call answers instead of waiting for the Lambda timeout. The
 * client is configured, as in Lambda, by the environment: endpoint, Region, credentials, and one
 * attempt per request so that a test waits for one timeout only.
 */
import { jest } from '@jest/globals';
import { DynamoDBStore, makeIdempotent } from '../../lib/index.js';
import { endpoint, readItem, recordId, useFreshTable } from '../support/dynamodb.js';
import { rejection } from '../support/rejections.js';
import { TcpProxy } from '../support/tcp-proxy.js';

const { client: inspect, tableName } = useFreshTable({ prefix: 'timeouts' });
let proxy: TcpProxy;
const ENVIRONMENT = ['AWS_ENDPOINT_URL_DYNAMODB', 'AWS_REGION', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_MAX_ATTEMPTS'];
const saved = Object.fromEntries(ENVIRONMENT.map((name) => [name, process.env[name]]));

beforeAll(async () => {
  proxy = await TcpProxy.start(Number(new URL(endpoint()).port));
  Object.assign(process.env, {
    AWS_ENDPOINT_URL_DYNAMODB: `http://127.0.0.1:${proxy.port}`,
    AWS_REGION: 'local',
    AWS_ACCESS_KEY_ID: 'local',
    AWS_SECRET_ACCESS_KEY: 'local',
    AWS_MAX_ATTEMPTS: '1',
  });
});
afterEach(() => proxy.restore());
afterAll(async () => {
  await proxy.cut();
  for (const [name, value] of Object.entries(saved)) value === undefined ? delete process.env[name] : (process.env[name] = value);
});

// Without the bound, each of these waits until Jest gives up on it.
jest.setTimeout(15_000);

test('a claim DynamoDB never answers: STORE_FAILURE (TimeoutError), the function did not run', async () => {
  let runs = 0;
  const once = makeIdempotent(async (id: string) => ({ id, run: ++runs }), { store: new DynamoDBStore({ tableName }), name: 'claim-hangs' });
  proxy.stall();
  const error = await rejection(once('k'));
  expect(error.message).toBe('STORE_FAILURE: The idempotency store failed (TimeoutError); the function did not run.');
  expect(runs).toBe(0);
});

test('a completion DynamoDB never answers: the caller gets its result, with a warning, instead of a Lambda timeout', async () => {
  let runs = 0;
  const logger = { warn: jest.fn<(message: string) => void>() };
  const once = makeIdempotent(
    async (id: string) => {
      proxy.stall(); // after the claim: the completion is the request that hangs
      return { id, run: ++runs };
    },
    { store: new DynamoDBStore({ tableName }), name: 'completion-hangs', logger },
  );
  expect(await once('k')).toEqual({ id: 'k', run: 1 });
  expect(logger.warn).toHaveBeenCalledWith(expect.stringContaining('"error":"TimeoutError"'));
  expect(await readItem(inspect, tableName, recordId('completion-hangs', 'k'))).toMatchObject({ status: { S: 'INPROGRESS' } });
});
