/**
 * The record ids and fingerprints each entry point writes for known inputs, as literals. Stored
 * records are found by these values: a change to any of them (the namespace separator, the
 * tenant's prefix, the shape of the HTTP key, what a batch hashes, the fingerprint's hash) orphans
 * every record already written, and a retry then runs again. `key-properties.test.ts` pins
 * `hashKey` itself. Inputs are written out here, not built by test helpers that may change.
 */
import middy from '@middy/core';
import {
  type ClaimRequest,
  type ClaimResult,
  type CompleteResult,
  httpIdempotency,
  type IdempotencyStore,
  idempotency,
  idempotentBatch,
  makeIdempotent,
  type ReleaseResult,
  recordIdOf,
} from '../../lib/index.js';
import { lambdaContext } from '../../lib/testing/index.js';

/** A store that grants every claim and records what was asked. */
function recordingStore(): IdempotencyStore & { readonly claims: ClaimRequest[] } {
  const claims: ClaimRequest[] = [];
  return {
    claims,
    claim: async (request): Promise<ClaimResult> => {
      claims.push(request);
      return { claimed: true };
    },
    complete: async (): Promise<CompleteResult> => ({ completed: true, responseStored: true }),
    release: async (): Promise<ReleaseResult> => ({ released: true }),
  };
}

const claimed = (store: { readonly claims: ClaimRequest[] }) => store.claims.map(({ key, fingerprint }) => ({ key, fingerprint }));

test('makeIdempotent: a selected key, the whole input, a tenant and a fingerprint', async () => {
  const store = recordingStore();
  const charge = makeIdempotent(async (_payment: { paymentId: string; amount: number }, _context?: unknown) => 'ok', {
    store,
    name: 'charge',
    key: (payment) => payment.paymentId,
    fingerprint: (payment) => ({ amount: payment.amount }),
  });
  await charge({ paymentId: 'p-1', amount: 100 });
  await charge({ paymentId: 'p-1', amount: 100 }, lambdaContext({ tenantId: 'tenant-a' }));
  const whole = makeIdempotent(async (_input: unknown) => 'ok', { store, name: 'whole' });
  await whole({ b: [1, 'x'], a: { c: true } });
  expect(claimed(store)).toEqual([
    // SHA-256 of '"p-1"'; the fingerprint: of '{"amount":100}'.
    { key: 'charge#rOjYNkQcwH28IrvhhmTTKo0aZ-fAP2e4UYHfqwINRYM', fingerprint: 'TUu-Wcaq0iRCzeGZpqil8DRAX814-1qBwk7ySd4cRfE' },
    // Of '\u0000tenant:8:tenant-a\u0000"p-1"'.
    { key: 'charge#NtmwXSguijfN6gRTwfAEBdOH6LKAek6REFAx5a-n6U0', fingerprint: 'TUu-Wcaq0iRCzeGZpqil8DRAX814-1qBwk7ySd4cRfE' },
    // Of '{"a":{"c":true},"b":[1,"x"]}'.
    { key: 'whole#emt4WRr4NdGNTaqBq92uWPl_5mTHSKFJdMNrk7TEZk4', fingerprint: undefined },
  ]);
  expect(recordIdOf({ name: 'charge', key: 'p-1' })).toBe(store.claims[0]!.key);
  expect(recordIdOf({ name: 'charge', key: 'p-1', tenant: 'tenant-a' })).toBe(store.claims[1]!.key);
  expect(recordIdOf({ name: 'whole', key: { a: { c: true }, b: [1, 'x'] } })).toBe(store.claims[2]!.key);
});

test('the middleware without `name`: the whole event, under the function name', async () => {
  const store = recordingStore();
  const handler = middy(async () => 'ok').use(idempotency({ store }));
  await handler({ orderId: 'o-1', amount: 5 }, lambdaContext({ functionName: 'orders-fn' }));
  // Of '{"amount":5,"orderId":"o-1"}'.
  expect(claimed(store)).toEqual([{ key: 'orders-fn#iR20VCxZw7IjLHiLST6xHO9v4BQbMYNzS9oQYSLU7j0', fingerprint: undefined }]);
});

test('httpIdempotency: header key, method, route and caller; the fingerprint of method, path, query and body', async () => {
  const store = recordingStore();
  const handler = middy(async () => ({ statusCode: 201, body: 'created' })).use(httpIdempotency({ store, name: 'payments-api' }));
  const event = {
    httpMethod: 'POST',
    resource: '/payments',
    path: '/payments',
    headers: { 'Idempotency-Key': 'k-1' },
    multiValueHeaders: { 'Idempotency-Key': ['k-1'] },
    queryStringParameters: null,
    multiValueQueryStringParameters: null,
    body: '{"amount":100,"currency":"EUR"}',
    isBase64Encoded: false,
    requestContext: { httpMethod: 'POST', resourcePath: '/payments' },
  };
  await handler(event as never, lambdaContext({ functionName: 'payments-fn' }));
  expect(claimed(store)).toEqual([
    // Of '{"caller":null,"key":"k-1","method":"POST","route":"/payments"}'.
    { key: 'payments-api#0jQ0G_oCJEDDUZLzSfl3L7zFg2WSMK3FsL3BpJe0PuE', fingerprint: 'QBGVxUJhxprCpzM7Pspcbpi40FgQhqVWIKkcRAbYksA' },
  ]);
  expect(recordIdOf({ name: 'payments-api', http: { key: 'k-1', method: 'POST', route: '/payments' } })).toBe(store.claims[0]!.key);
});

test('idempotentBatch: an SQS message by its body, a Kinesis record by its data, a DynamoDB Streams change by its eventID', async () => {
  const store = recordingStore();
  const context = lambdaContext({ functionName: 'consumer-fn' });
  await idempotentBatch(async () => undefined, { store, name: 'orders-consumer' })(
    {
      Records: [
        {
          messageId: 'm-1',
          receiptHandle: 'r-1',
          body: '{"orderId":"o-1","amount":12345678901234567890}',
          attributes: {},
          messageAttributes: {},
          md5OfBody: '',
          eventSource: 'aws:sqs',
          eventSourceARN: 'arn:aws:sqs:eu-west-1:123456789012:orders',
          awsRegion: 'eu-west-1',
        },
      ],
    } as never,
    context,
  );
  await idempotentBatch(async () => undefined, { store, name: 'orders-kinesis' })(
    {
      Records: [
        {
          kinesis: {
            kinesisSchemaVersion: '1.0',
            partitionKey: 'o-2',
            sequenceNumber: '49590338271490256608559692538361571095921575989136588898',
            data: Buffer.from('{"orderId":"o-2","amount":12345678901234567890}').toString('base64'),
            approximateArrivalTimestamp: 1736942400,
          },
          eventSource: 'aws:kinesis',
          eventVersion: '1.0',
          eventID: 'shardId-000000000006:49590338271490256608559692538361571095921575989136588898',
          eventName: 'aws:kinesis:record',
          invokeIdentityArn: 'arn:aws:iam::123456789012:role/consumer',
          awsRegion: 'eu-west-1',
          eventSourceARN: 'arn:aws:kinesis:eu-west-1:123456789012:stream/orders',
        },
      ],
    } as never,
    context,
  );
  await idempotentBatch(async () => undefined, { store, name: 'orders-stream' })(
    {
      Records: [
        {
          eventID: 'e-1',
          eventName: 'INSERT',
          eventSource: 'aws:dynamodb',
          eventSourceARN: 'arn:aws:dynamodb:eu-west-1:123456789012:table/orders/stream/2026-01-01T00:00:00.000',
          awsRegion: 'eu-west-1',
          dynamodb: { Keys: { id: { S: 'o-1' } }, NewImage: { id: { S: 'o-1' }, total: { N: '10' } }, SequenceNumber: '1', StreamViewType: 'NEW_IMAGE' },
        },
      ],
    } as never,
    context,
  );
  expect(claimed(store)).toEqual([
    // Of '{"amount":"12345678901234567890","orderId":"o-1"}': the body parsed with its 64-bit number exact.
    { key: 'orders-consumer#E48gLxqiAfb7ZvpC-GXH3KALpnroyGlC7ne3JE9gebg', fingerprint: undefined },
    // Of '{"amount":"12345678901234567890","orderId":"o-2"}': the data decoded from base64, parsed as the SQS body is.
    { key: 'orders-kinesis#YEXI6QumVZ0op06wxQPiu2Q3dl_TOzLt2-UJJMf7zBQ', fingerprint: undefined },
    // Of '"e-1"'.
    { key: 'orders-stream#-bqIKqtVQUATScIoGZtUPTmGe5PDt0bnGI64XcqupKs', fingerprint: undefined },
  ]);
  expect(recordIdOf({ name: 'orders-stream', key: 'e-1' })).toBe(store.claims[2]!.key);
});

test('typed arrays, a Buffer and a DataView in a key or a whole event', async () => {
  const float64 = new Float64Array([1.5, -0, 0.1, 1e21, -2.5e-7, 1e300]);
  const dataView = Object.assign(new DataView(new ArrayBuffer(2)), { tag: 'x' });
  const keys: Record<string, unknown> = {
    // Of '{"0":0,"1":1,"10":13,"2":2,…}': a typed array is written as an object of its index members.
    uint8: new Uint8Array([0, 1, 2, 255, 7, 8, 9, 10, 11, 12, 13]),
    int16: new Int16Array([-32768, 32767, -1, 0, 5]),
    // -0 is written as 0.
    float64,
    // Of '{"data":[104,195,169,108,108,111],"type":"Buffer"}', its toJSON.
    buffer: Buffer.from('héllo'),
    nested: { id: 'o-1', bytes: new Uint8Array(12).map((_, i) => i * 3), more: [new Uint16Array([65535]), new Float32Array([0.1, -0])] },
    // Members other than the indices are written too, in code-point order among them.
    named: Object.assign(new Uint8Array([4, 5]), { label: 'x', '01': 'y' }),
    // Only its enumerable members: `{"tag":"x"}`.
    dataView,
    // More members than one 64 KiB chunk of text holds.
    large: new Uint16Array(20_000).map((_, i) => i * 7),
  };
  expect(Object.fromEntries(Object.entries(keys).map(([name, key]) => [name, recordIdOf({ name: 'bytes', key })]))).toEqual({
    uint8: 'bytes#gzziQlN3Vj85jjdT4CzuxJQA3R6oq6H5WsNCUQVM_SA',
    int16: 'bytes#JVZkvLG5rZbvUfobUfgFFf5N_SNMU6VRRHcbZWmW8e0',
    float64: 'bytes#amdYFjIYBN0jMI9Xofx_Ir0dXTNRitESReEtK49fhrQ',
    buffer: 'bytes#gznYmUyz4gTazQTFmT7Z6aHzsyQEauRheDWEVQy-hgE',
    nested: 'bytes#9vq6i3oI-9g7vW38Gd_mo-21A26RQxExyNYiRzoUEFE',
    named: 'bytes#N0GUlW_26z0S_rFy7BZWQR8T3NszdEQm62njOUt4ZHk',
    dataView: 'bytes#6OUPYS_rkzL6AhA_QCpaRiIP-4JCE31Yjq2bz14iXko',
    large: 'bytes#vtkKP3ipHJqwSeaogqnTHxT-CaEzEsGWReNuC2s8XEQ',
  });
  const store = recordingStore();
  await makeIdempotent(async (_input: unknown) => 'ok', { store, name: 'whole' })({ id: 'o-1', signature: new Uint8Array([9, 8, 7]) });
  expect(claimed(store)).toEqual([{ key: 'whole#7sQF7ZK1CJtkJRZvBMJfaax2thifeyxbzohE3nwg8Z4', fingerprint: undefined }]);
});
