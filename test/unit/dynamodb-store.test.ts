import { randomBytes } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import {
  type AttributeValue,
  ConditionalCheckFailedException,
  DeleteItemCommand,
  DynamoDBClient,
  PutItemCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { jest } from '@jest/globals';
import { DEFAULT_ATTRIBUTE_NAMES, DynamoDBStore } from '../../lib/index.js';
import { serviceError, useMockedDynamoDB } from '../support/mocked-dynamodb.js';

const { ddb, client, store } = useMockedDynamoDB();

const NOW = 1_700_000_000_500; // epoch ms
const KEY = 'charge#abc';

function refused(item?: Record<string, AttributeValue>): ConditionalCheckFailedException {
  return new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {}, ...(item ? { Item: item } : {}) });
}

const completedItem = (response: AttributeValue): Record<string, AttributeValue> => ({
  id: { S: KEY },
  status: { S: 'COMPLETED' },
  expiration: { N: '1700086400' },
  owner: { S: 'other' },
  fingerprint: { S: 'fp' },
  response,
});

const updateInput = (n = 0) => ddb.commandCalls(UpdateItemCommand)[n]!.args[0].input;

/**
 * How `request` (sent at `started`, by a fake clock that a loaded machine cannot make late) is
 * refused, and whether it settled before `started + 120` ms.
 */
async function onFakeTimers(request: (started: number) => Promise<unknown>): Promise<{ error: unknown; within: boolean }> {
  jest.useFakeTimers();
  try {
    const started = performance.now();
    let settledAt = Number.POSITIVE_INFINITY;
    const settled = request(started)
      .then(
        () => ({ error: undefined }),
        (error: unknown) => ({ error }),
      )
      .finally(() => (settledAt = performance.now()));
    await jest.advanceTimersByTimeAsync(1_000);
    return { ...(await settled), within: settledAt - started < 120 };
  } finally {
    jest.useRealTimers();
  }
}

describe('claim', () => {
  test('is one conditional PutItem of an INPROGRESS record, returning the old item on failure', async () => {
    ddb.on(PutItemCommand).resolves({});
    const result = await store.claim({ key: KEY, owner: 'o-1', leaseUntil: NOW + 60_000, expiresAt: 1_700_086_400, now: NOW, fingerprint: 'fp' });
    expect(result).toStrictEqual({ claimed: true });
    expect(ddb.calls()).toHaveLength(1);
    expect(ddb.commandCalls(PutItemCommand)[0]!.args[0].input).toStrictEqual({
      TableName: 'idem',
      Item: {
        id: { S: KEY },
        status: { S: 'INPROGRESS' },
        expiration: { N: '1700086400' },
        leaseUntil: { N: '1700000060500' },
        owner: { S: 'o-1' },
        fingerprint: { S: 'fp' },
      },
      ConditionExpression: 'attribute_not_exists(#id) OR #exp < :nowSeconds OR (#status = :inprogress AND #lease < :nowMillis)',
      ExpressionAttributeNames: { '#id': 'id', '#exp': 'expiration', '#status': 'status', '#lease': 'leaseUntil' },
      ExpressionAttributeValues: {
        ':nowSeconds': { N: '1700000000' },
        ':nowMillis': { N: '1700000000500' },
        ':inprogress': { S: 'INPROGRESS' },
      },
      ReturnValues: 'ALL_OLD',
      ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
    });
  });

  test('writes no fingerprint attribute when the request has none', async () => {
    ddb.on(PutItemCommand).resolves({});
    await store.claim({ key: KEY, owner: 'o-1', leaseUntil: NOW + 1, expiresAt: 1, now: NOW });
    expect(Object.keys(ddb.commandCalls(PutItemCommand)[0]!.args[0].input.Item!).sort()).toEqual(['expiration', 'id', 'leaseUntil', 'owner', 'status']);
  });

  test('a refused claim unmarshals the raw old item (S response) into a record', async () => {
    ddb.on(PutItemCommand).rejects(refused(completedItem({ S: '{"ok":1}' })));
    const result = await store.claim({ key: KEY, owner: 'o-1', leaseUntil: NOW + 1, expiresAt: 1, now: NOW });
    expect(result).toStrictEqual({
      claimed: false,
      record: { key: KEY, status: 'COMPLETED', owner: 'other', expiresAt: 1_700_086_400, fingerprint: 'fp', response: '{"ok":1}' },
    });
  });

  test('a refused claim gunzips a B response and keeps the lease of an INPROGRESS record', async () => {
    const json = JSON.stringify({ big: 'x'.repeat(50_000) });
    ddb
      .on(PutItemCommand)
      .rejectsOnce(refused(completedItem({ B: new Uint8Array(gzipSync(json)) })))
      .rejectsOnce(refused({ id: { S: KEY }, status: { S: 'INPROGRESS' }, expiration: { N: '10' }, leaseUntil: { N: '12345' }, owner: { S: 'o-9' } }));
    const completed = await store.claim({ key: KEY, owner: 'o-1', leaseUntil: NOW + 1, expiresAt: 1, now: NOW });
    expect(completed.claimed === false && completed.record.response).toBe(json);

    const inProgress = await store.claim({ key: KEY, owner: 'o-1', leaseUntil: NOW + 1, expiresAt: 1, now: NOW });
    expect(inProgress).toStrictEqual({ claimed: false, record: { key: KEY, status: 'INPROGRESS', owner: 'o-9', expiresAt: 10, leaseUntil: 12345 } });
  });

  test('a refused claim carries responseOmitted', async () => {
    const { response: _none, ...item } = completedItem({ S: '' });
    ddb.on(PutItemCommand).rejects(refused({ ...item, responseOmitted: { BOOL: true } }));
    const result = await store.claim({ key: KEY, owner: 'o-1', leaseUntil: NOW + 1, expiresAt: 1, now: NOW });
    expect(result.claimed === false && result.record).toStrictEqual({
      key: KEY,
      status: 'COMPLETED',
      owner: 'other',
      expiresAt: 1_700_086_400,
      fingerprint: 'fp',
      responseOmitted: true,
    });
  });

  test('other errors and a malformed item are thrown', async () => {
    const throttled = serviceError('ProvisionedThroughputExceededException', 'slow down');
    ddb
      .on(PutItemCommand)
      .rejectsOnce(throttled)
      .rejectsOnce(refused({ id: { S: KEY }, status: { S: 'WEIRD' }, expiration: { N: '1' } }));
    const request = { key: KEY, owner: 'o-1', leaseUntil: NOW + 1, expiresAt: 1, now: NOW };
    await expect(store.claim(request)).rejects.toBe(throttled);
    await expect(store.claim(request)).rejects.toThrow(/malformed/);
  });

  test('a refusal that came without the item (a front end dropped ALL_OLD) reads it with one UpdateItem that changes nothing', async () => {
    const holder = { id: { S: KEY }, status: { S: 'INPROGRESS' }, owner: { S: 'o-0' }, leaseUntil: { N: String(NOW + 5_000) }, expiration: { N: '9' } };
    ddb.on(PutItemCommand).rejectsOnce(refused());
    ddb.on(UpdateItemCommand).resolvesOnce({ Attributes: holder });
    const request = { key: KEY, owner: 'o-1', leaseUntil: NOW + 1, expiresAt: 9, now: NOW };
    expect(await store.claim(request)).toEqual({
      claimed: false,
      record: { key: KEY, status: 'INPROGRESS', owner: 'o-0', leaseUntil: NOW + 5_000, expiresAt: 9 },
    });
    expect(updateInput()).toStrictEqual({
      TableName: 'idem',
      Key: { id: { S: KEY } },
      ConditionExpression: 'attribute_exists(#id)',
      ExpressionAttributeNames: { '#id': 'id' },
      ReturnValues: 'ALL_NEW',
    });
  });

  test('a refusal without the item, whose item is gone when read (released meanwhile), sends the claim again, once', async () => {
    ddb.on(PutItemCommand).rejectsOnce(refused()).resolvesOnce({}).rejectsOnce(refused()).rejectsOnce(refused());
    ddb.on(UpdateItemCommand).rejects(refused());
    const request = { key: KEY, owner: 'o-1', leaseUntil: NOW + 1, expiresAt: 9, now: NOW };
    expect(await store.claim(request)).toEqual({ claimed: true });
    await expect(store.claim(request)).rejects.toBeInstanceOf(ConditionalCheckFailedException);
    expect(ddb.commandCalls(PutItemCommand)).toHaveLength(4);
  });
});

test("a refusal by an item without an expiration gives it the claim's (or its lease end, if later) with one UpdateItem conditioned on it still missing", async () => {
  ddb.on(PutItemCommand).rejectsOnce(refused({ id: { S: KEY }, status: { S: 'INPROGRESS' }, owner: { S: 'o-0' }, leaseUntil: { N: String(NOW + 5_000_000) } }));
  const adopted = { id: { S: KEY }, status: { S: 'INPROGRESS' }, owner: { S: 'o-0' }, leaseUntil: { N: String(NOW + 5_000_000) }, expiration: { N: '1' } };
  ddb.on(UpdateItemCommand).resolvesOnce({ Attributes: adopted });
  const request = { key: KEY, owner: 'o-1', leaseUntil: NOW + 1, expiresAt: Math.floor(NOW / 1000) + 60, now: NOW };
  expect(await store.claim(request)).toEqual({
    claimed: false,
    record: { key: KEY, status: 'INPROGRESS', owner: 'o-0', leaseUntil: NOW + 5_000_000, expiresAt: 1 },
  });
  expect(ddb.commandCalls(UpdateItemCommand)[0]!.args[0].input).toEqual({
    TableName: 'idem',
    Key: { id: { S: KEY } },
    UpdateExpression: 'SET #exp = :exp',
    ConditionExpression: 'attribute_exists(#id) AND attribute_not_exists(#exp)',
    ExpressionAttributeNames: { '#id': 'id', '#exp': 'expiration' },
    ExpressionAttributeValues: { ':exp': { N: String(Math.ceil((NOW + 5_000_000) / 1000)) } },
    ReturnValues: 'ALL_NEW',
  });
});

describe('complete', () => {
  const base = { key: KEY, owner: 'o-1', expiresAt: 1_700_086_400 };
  const names = { '#status': 'status', '#exp': 'expiration', '#lease': 'leaseUntil', '#owner': 'owner', '#response': 'response' };
  const values = {
    ':completed': { S: 'COMPLETED' },
    ':inprogress': { S: 'INPROGRESS' },
    ':owner': { S: 'o-1' },
    ':exp': { N: '1700086400' },
  };

  test('is one UpdateItem fenced by owner and INPROGRESS, removing the lease, with an S response', async () => {
    ddb.on(UpdateItemCommand).resolves({});
    expect(await store.complete({ ...base, response: '{"ok":true}' })).toStrictEqual({ completed: true, responseStored: true });
    expect(ddb.calls()).toHaveLength(1);
    expect(updateInput()).toStrictEqual({
      TableName: 'idem',
      Key: { id: { S: KEY } },
      UpdateExpression: 'SET #status = :completed, #exp = :exp, #response = :response REMOVE #lease',
      ConditionExpression: '#owner = :owner AND #status = :inprogress',
      ExpressionAttributeNames: names,
      ExpressionAttributeValues: { ...values, ':response': { S: '{"ok":true}' } },
      ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
    });
  });

  test('an undefined response removes the response attribute', async () => {
    ddb.on(UpdateItemCommand).resolves({});
    expect(await store.complete({ ...base, response: undefined })).toStrictEqual({ completed: true, responseStored: true });
    expect(updateInput()).toMatchObject({
      UpdateExpression: 'SET #status = :completed, #exp = :exp REMOVE #lease, #response',
      ExpressionAttributeNames: names,
      ExpressionAttributeValues: values,
    });
    expect(updateInput().ExpressionAttributeValues).not.toHaveProperty([':response']);
  });

  test('a large response is stored as gzip in a B attribute', async () => {
    ddb.on(UpdateItemCommand).resolves({});
    const json = JSON.stringify({ rows: Array.from({ length: 5000 }, (_, i) => ({ i, name: 'row' })) });
    expect(json.length).toBeGreaterThan(32 * 1024);
    expect(await store.complete({ ...base, response: json })).toStrictEqual({ completed: true, responseStored: true });
    const stored = updateInput().ExpressionAttributeValues![':response']!;
    expect(stored.S).toBeUndefined();
    expect(gunzipSync(stored.B!).toString('utf8')).toBe(json);
    expect(stored.B!.byteLength).toBeLessThan(json.length / 5);
  });

  test('compressAboveBytes moves the threshold', async () => {
    ddb.on(UpdateItemCommand).resolves({});
    const small = new DynamoDBStore({ tableName: 'idem', client, compressAboveBytes: 10 });
    await small.complete({ ...base, response: '"abcdefghijkl"' });
    expect(gunzipSync(updateInput().ExpressionAttributeValues![':response']!.B!).toString()).toBe('"abcdefghijkl"');
  });

  test('a response that does not fit even compressed completes the record without it (responseOmitted)', async () => {
    ddb.on(UpdateItemCommand).resolves({});
    const incompressible = JSON.stringify(randomBytes(450 * 1024).toString('base64'));
    expect(await store.complete({ ...base, response: incompressible })).toStrictEqual({ completed: true, responseStored: false });
    expect(ddb.calls()).toHaveLength(1);
    expect(updateInput()).toMatchObject({
      UpdateExpression: 'SET #status = :completed, #exp = :exp, #omitted = :omitted REMOVE #lease, #response',
      ConditionExpression: '#owner = :owner AND #status = :inprogress',
      ExpressionAttributeNames: { ...names, '#omitted': 'responseOmitted' },
      ExpressionAttributeValues: { ...values, ':omitted': { BOOL: true } },
    });
    expect(updateInput().ExpressionAttributeValues).not.toHaveProperty([':response']);
  });

  test('responseOmitted from the engine (unserialisable result) writes the flag and no response', async () => {
    ddb.on(UpdateItemCommand).resolves({});
    expect(await store.complete({ ...base, response: undefined, responseOmitted: true })).toStrictEqual({ completed: true, responseStored: false });
    expect(updateInput().UpdateExpression).toBe('SET #status = :completed, #exp = :exp, #omitted = :omitted REMOVE #lease, #response');
  });

  test('when DynamoDB refuses the item for its size, the record is completed again without the response', async () => {
    ddb.on(UpdateItemCommand).rejectsOnce(serviceError('ValidationException', 'Item size to update has exceeded the maximum allowed size')).resolves({});
    expect(await store.complete({ ...base, response: '{"a":1}' })).toStrictEqual({ completed: true, responseStored: false });
    expect(ddb.commandCalls(UpdateItemCommand)).toHaveLength(2);
    expect(updateInput(0).ExpressionAttributeValues![':response']).toStrictEqual({ S: '{"a":1}' });
    expect(updateInput(1)).toMatchObject({
      UpdateExpression: 'SET #status = :completed, #exp = :exp, #omitted = :omitted REMOVE #lease, #response',
      ConditionExpression: '#owner = :owner AND #status = :inprogress',
    });
    expect(updateInput(1).ExpressionAttributeValues).not.toHaveProperty([':response']);
  });

  test('another ValidationException is thrown, not retried', async () => {
    const error = serviceError('ValidationException', 'Invalid UpdateExpression');
    ddb.on(UpdateItemCommand).rejects(error);
    await expect(store.complete({ ...base, response: '1' })).rejects.toBe(error);
    expect(ddb.calls()).toHaveLength(1);
  });

  /** An error as the SDK throws it once its own attempts are spent. */
  const gaveUp = (name: string, extra: Record<string, unknown> = {}): Error =>
    Object.assign(new Error(`${name} (the SDK's attempts spent)`), { name, ...extra });

  test.each([
    ['throttled (ProvisionedThroughputExceededException)', serviceError('ProvisionedThroughputExceededException', 'throughput exceeded')],
    ['throttled (ThrottlingException)', serviceError('ThrottlingException', 'rate exceeded')],
    ['throttled (RequestLimitExceeded)', serviceError('RequestLimitExceeded', 'account limit')],
    ['a 500 (InternalServerError)', serviceError('InternalServerError', 'internal', 'server')],
    ['a 503 (ServiceUnavailable)', serviceError('ServiceUnavailable', 'unavailable', 'server')],
    ['a 5xx named by its status alone', gaveUp('UnknownError', { $metadata: { httpStatusCode: 502 } })],
    ['an error the SDK marks retryable', gaveUp('ReplicatedWriteConflictException', { $retryable: {} })],
    ['a connection reset', gaveUp('Error', { code: 'ECONNRESET' })],
    ['a request timeout', gaveUp('TimeoutError')],
  ])('a completion the SDK gave up on, %s, is sent again until DynamoDB takes it', async (_what, error) => {
    ddb.on(UpdateItemCommand).rejectsOnce(error).rejectsOnce(error).resolves({});
    expect(await store.complete({ ...base, response: '1' })).toStrictEqual({ completed: true, responseStored: true });
    expect(ddb.commandCalls(UpdateItemCommand)).toHaveLength(3);
    expect(updateInput(2)).toStrictEqual(updateInput(0));
  });

  test("a resend that meets the call's own COMPLETED record (the lost attempt applied) returns it, its outcome decoded", async () => {
    const own = { ...completedItem({ S: '1' }), owner: { S: 'o-1' } };
    ddb.on(UpdateItemCommand).rejectsOnce(gaveUp('TimeoutError')).rejectsOnce(refused(own));
    expect(await store.complete({ ...base, response: '1' })).toStrictEqual({
      completed: false,
      record: { key: KEY, status: 'COMPLETED', owner: 'o-1', expiresAt: 1_700_086_400, fingerprint: 'fp', response: '1' },
    });
    expect(ddb.commandCalls(UpdateItemCommand)).toHaveLength(2);
  });

  test.each([
    serviceError('AccessDeniedException', 'not authorized to perform: dynamodb:UpdateItem'),
    serviceError('ResourceNotFoundException', 'Requested resource not found'),
    serviceError('ValidationException', 'Item size has exceeded the maximum allowed size'),
  ])('a completion refused for a cause that does not pass ($name) is not sent again', async (error) => {
    ddb.on(UpdateItemCommand).rejects(error);
    await expect(store.complete({ ...base, response: undefined })).rejects.toBe(error);
    expect(ddb.commandCalls(UpdateItemCommand)).toHaveLength(1);
  });

  test('no resend starts after `resendBy`, when the call must answer', async () => {
    const throttled = serviceError('ThrottlingException', 'rate exceeded');
    ddb.on(UpdateItemCommand).rejects(throttled);
    // Pauses of 50 and 100 ms: the second would end past the bound.
    expect(await onFakeTimers((started) => store.complete({ ...base, response: '1', resendBy: started + 120 }))).toEqual({ error: throttled, within: true });
    expect(ddb.commandCalls(UpdateItemCommand)).toHaveLength(2);
  });

  test('without `resendBy`, no resend starts 5 s after the first send: pauses of 50 ms doubling to 1 s', async () => {
    jest.useFakeTimers();
    try {
      const throttled = serviceError('ProvisionedThroughputExceededException', 'throughput exceeded');
      ddb.on(UpdateItemCommand).rejects(throttled);
      const sentAt: number[] = [];
      const started = performance.now();
      ddb.on(UpdateItemCommand).callsFake(() => {
        sentAt.push(performance.now() - started);
        return Promise.reject(throttled);
      });
      const completion = store.complete({ ...base, response: '1' });
      const settled = expect(completion).rejects.toBe(throttled);
      await jest.advanceTimersByTimeAsync(10_000);
      await settled;
      expect(sentAt.map(Math.round)).toEqual([0, 50, 150, 350, 750, 1550, 2550, 3550, 4550]);
    } finally {
      jest.useRealTimers();
    }
  });

  test('a refused completion returns the current record by its state alone: its stored response is not decoded', async () => {
    const json = JSON.stringify({ z: 'y'.repeat(40_000) });
    ddb
      .on(UpdateItemCommand)
      .rejectsOnce(refused(completedItem({ B: new Uint8Array(gzipSync(json)) })))
      .rejectsOnce(refused(completedItem({ B: Uint8Array.of(1, 2, 3) }))) // not gzip: decoding it would throw
      .rejectsOnce(refused())
      // The read of the item that refused the completion without it: there is none.
      .rejectsOnce(refused());
    const current = { key: KEY, status: 'COMPLETED', owner: 'other', expiresAt: 1_700_086_400, fingerprint: 'fp' };
    expect(await store.complete({ ...base, response: '1' })).toStrictEqual({ completed: false, record: current });
    expect(await store.complete({ ...base, response: '1' })).toStrictEqual({ completed: false, record: current });
    expect(await store.complete({ ...base, response: '1' })).toStrictEqual({ completed: false, record: undefined });
  });
});

describe('release', () => {
  test('is one DeleteItem fenced by owner and INPROGRESS', async () => {
    ddb.on(DeleteItemCommand).resolves({});
    expect(await store.release({ key: KEY, owner: 'o-1' })).toStrictEqual({ released: true });
    expect(ddb.calls()).toHaveLength(1);
    expect(ddb.commandCalls(DeleteItemCommand)[0]!.args[0].input).toStrictEqual({
      TableName: 'idem',
      Key: { id: { S: KEY } },
      ConditionExpression: '#owner = :owner AND #status = :inprogress',
      ExpressionAttributeNames: { '#owner': 'owner', '#status': 'status' },
      ExpressionAttributeValues: { ':owner': { S: 'o-1' }, ':inprogress': { S: 'INPROGRESS' } },
      ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
    });
  });

  test('a refused release returns the other holder’s record, or none; other errors are thrown', async () => {
    const boom = new Error('socket hang up');
    ddb
      .on(DeleteItemCommand)
      .rejectsOnce(refused({ id: { S: KEY }, status: { S: 'INPROGRESS' }, expiration: { N: '9' }, leaseUntil: { N: '99' }, owner: { S: 'o-2' } }))
      .rejectsOnce(refused())
      .rejectsOnce(refused())
      .rejectsOnce(boom);
    // The refusals that came without the item read it: none, then a takeover's.
    ddb
      .on(UpdateItemCommand)
      .rejectsOnce(refused())
      .resolvesOnce({ Attributes: { id: { S: KEY }, status: { S: 'INPROGRESS' }, expiration: { N: '9' }, leaseUntil: { N: '99' }, owner: { S: 'o-3' } } });
    expect(await store.release({ key: KEY, owner: 'o-1' })).toStrictEqual({
      released: false,
      record: { key: KEY, status: 'INPROGRESS', owner: 'o-2', expiresAt: 9, leaseUntil: 99 },
    });
    expect(await store.release({ key: KEY, owner: 'o-1' })).toStrictEqual({ released: false, record: undefined });
    expect(await store.release({ key: KEY, owner: 'o-1' })).toStrictEqual({
      released: false,
      record: { key: KEY, status: 'INPROGRESS', owner: 'o-3', expiresAt: 9, leaseUntil: 99 },
    });
    await expect(store.release({ key: KEY, owner: 'o-1' })).rejects.toBe(boom);
  });

  const throttled = () => serviceError('ProvisionedThroughputExceededException', 'throughput exceeded');

  test('a release the SDK gave up on, throttled twice, is sent again until DynamoDB takes it: the key is free at once', async () => {
    ddb
      .on(DeleteItemCommand)
      .rejectsOnce(throttled())
      .rejectsOnce(serviceError('InternalServerError', 'internal', 'server'))
      .resolves({});
    expect(await store.release({ key: KEY, owner: 'o-1' })).toStrictEqual({ released: true });
    expect(ddb.commandCalls(DeleteItemCommand)).toHaveLength(3);
    expect(ddb.commandCalls(DeleteItemCommand)[2]!.args[0].input).toStrictEqual(ddb.commandCalls(DeleteItemCommand)[0]!.args[0].input);
  });

  test("a resend whose lost send applied finds no item (released), or the call's own COMPLETED record (the commit it settles applied)", async () => {
    const lost = Object.assign(new Error("TimeoutError (the SDK's attempts spent)"), { name: 'TimeoutError' });
    const own = { ...completedItem({ S: '1' }), owner: { S: 'o-1' } };
    ddb.on(DeleteItemCommand).rejectsOnce(lost).rejectsOnce(refused()).rejectsOnce(lost).rejectsOnce(refused(own));
    ddb.on(UpdateItemCommand).rejects(refused());
    expect(await store.release({ key: KEY, owner: 'o-1' })).toStrictEqual({ released: false, record: undefined });
    expect(await store.release({ key: KEY, owner: 'o-1' })).toStrictEqual({
      released: false,
      record: { key: KEY, status: 'COMPLETED', owner: 'o-1', expiresAt: 1_700_086_400, fingerprint: 'fp' },
    });
    expect(ddb.commandCalls(DeleteItemCommand)).toHaveLength(4);
  });

  test.each([
    serviceError('AccessDeniedException', 'not authorized to perform: dynamodb:DeleteItem'),
    serviceError('ResourceNotFoundException', 'Requested resource not found'),
  ])('a release refused for a cause that does not pass ($name) is not sent again', async (error) => {
    ddb.on(DeleteItemCommand).rejects(error);
    await expect(store.release({ key: KEY, owner: 'o-1' })).rejects.toBe(error);
    expect(ddb.commandCalls(DeleteItemCommand)).toHaveLength(1);
  });

  test('no resend of a release starts after `resendBy`, when the call must answer', async () => {
    const error = throttled();
    ddb.on(DeleteItemCommand).rejects(error);
    // Pauses of 50 and 100 ms: the second would end past the bound.
    expect(await onFakeTimers((started) => store.release({ key: KEY, owner: 'o-1', resendBy: started + 120 }))).toEqual({ error, within: true });
    expect(ddb.commandCalls(DeleteItemCommand)).toHaveLength(2);
  });
});

describe('custom attribute names', () => {
  const custom = new DynamoDBStore({
    tableName: 'idem',
    client,
    attributes: { key: 'pk', status: 'st', expiration: 'ttl', leaseUntil: 'lease', owner: 'who', fingerprint: 'fpr', response: 'res', responseOmitted: 'omit' },
  });

  test('are used in every command and when reading a refused item', async () => {
    ddb.on(PutItemCommand).rejects(refused({ pk: { S: KEY }, st: { S: 'COMPLETED' }, ttl: { N: '5' }, who: { S: 'o-2' }, fpr: { S: 'f' }, res: { S: '2' } }));
    ddb.on(UpdateItemCommand).resolves({});
    ddb.on(DeleteItemCommand).resolves({});
    const claim = await custom.claim({ key: KEY, owner: 'o-1', leaseUntil: 7, expiresAt: 8, now: 6, fingerprint: 'f' });
    expect(claim).toStrictEqual({ claimed: false, record: { key: KEY, status: 'COMPLETED', owner: 'o-2', expiresAt: 5, fingerprint: 'f', response: '2' } });
    expect(ddb.commandCalls(PutItemCommand)[0]!.args[0].input).toMatchObject({
      Item: { pk: { S: KEY }, st: { S: 'INPROGRESS' }, ttl: { N: '8' }, lease: { N: '7' }, who: { S: 'o-1' }, fpr: { S: 'f' } },
      ExpressionAttributeNames: { '#id': 'pk', '#exp': 'ttl', '#status': 'st', '#lease': 'lease' },
    });

    await custom.complete({ key: KEY, owner: 'o-1', expiresAt: 8, response: undefined, responseOmitted: true });
    expect(updateInput()).toMatchObject({
      Key: { pk: { S: KEY } },
      ExpressionAttributeNames: { '#status': 'st', '#exp': 'ttl', '#lease': 'lease', '#owner': 'who', '#response': 'res', '#omitted': 'omit' },
    });

    await custom.release({ key: KEY, owner: 'o-1' });
    expect(ddb.commandCalls(DeleteItemCommand)[0]!.args[0].input).toMatchObject({
      Key: { pk: { S: KEY } },
      ExpressionAttributeNames: { '#owner': 'who', '#status': 'st' },
    });
  });
});

describe('options', () => {
  const construct = (options: unknown) => () => new DynamoDBStore(options as never);
  const saved = { table: process.env.IDEMPOTENCY_TABLE, retention: process.env.IDEMPOTENCY_EXPIRES_AFTER_SECONDS };
  const restore = (name: string, value: string | undefined) => (value === undefined ? delete process.env[name] : (process.env[name] = value));
  beforeEach(() => {
    delete process.env.IDEMPOTENCY_TABLE;
    delete process.env.IDEMPOTENCY_EXPIRES_AFTER_SECONDS;
  });
  afterAll(() => {
    restore('IDEMPOTENCY_TABLE', saved.table);
    restore('IDEMPOTENCY_EXPIRES_AFTER_SECONDS', saved.retention);
  });

  test.each([
    ['null options', null, /options must be an object/],
    ['an unknown option', { tableName: 'idem', table: 'x' }, /unknown option `table`/],
    ['no options and no IDEMPOTENCY_TABLE', undefined, /`tableName` is required: pass it, or set IDEMPOTENCY_TABLE/],
    ['no tableName and no IDEMPOTENCY_TABLE', {}, /`tableName` is required: pass it, or set IDEMPOTENCY_TABLE/],
    ['a tableName longer than DynamoDB allows', { tableName: 'x'.repeat(256) }, /`tableName`/],
    [
      'an ARN longer than DynamoDB takes',
      { tableName: `arn:aws:dynamodb:eu-west-1:222222222222:table/${'x'.repeat(1024)}` },
      /`tableName` must be the name .* or its ARN/,
    ],
    ['a retention of 0', { tableName: 'idem', expiresAfterSeconds: 0 }, /`expiresAfterSeconds` must be a whole number of seconds, 1 or more/],
    ['a fractional retention', { tableName: 'idem', expiresAfterSeconds: 1.5 }, /`expiresAfterSeconds`/],
    ['a retention that is not a number', { tableName: 'idem', expiresAfterSeconds: '60' }, /`expiresAfterSeconds`/],
    ['an empty tableName', { tableName: '' }, /`tableName`/],
    ['a tableName that is not a string', { tableName: 42 }, /`tableName`/],
    ['a client without send', { tableName: 'idem', client: {} }, /`client`/],
    ['a negative compressAboveBytes', { tableName: 'idem', compressAboveBytes: -1 }, /`compressAboveBytes`/],
    ['a compressAboveBytes past what an item holds', { tableName: 'idem', compressAboveBytes: 400 * 1024 + 1 }, /`compressAboveBytes`/],
    ['an unknown attribute', { tableName: 'idem', attributes: { ttl: 'x' } }, /unknown option `ttl`/],
    ['an empty attribute name', { tableName: 'idem', attributes: { status: '' } }, /`status` must be a non-empty string/],
    [
      'duplicate attribute names',
      { tableName: 'idem', attributes: { status: 'owner' } },
      /every attribute name must be different: `status` and `owner` are both named "owner"/,
    ],
    [
      'an attribute renamed onto the key',
      { tableName: 'idem', attributes: { response: 'id' } },
      /every attribute name must be different: `key` and `response` are both named "id"/,
    ],
    // DynamoDB refuses such a name on every request (a ValidationException each call): said here, quoted, whitespace and all.
    [
      'a tableName with a trailing space',
      { tableName: 'idem ' },
      "`tableName` must be the name of a DynamoDB table (3 to 255 letters, digits, '_', '-' or '.') or its ARN, arn:aws:dynamodb:<region>:<account>:table/<name> (got \"idem \")",
    ],
    ['a tableName with a space inside', { tableName: 'my table' }, /`tableName` must be the name of a DynamoDB table .* \(got "my table"\)/],
    ['a tableName with a path', { tableName: 'prod/idempotency' }, /`tableName` must be the name of a DynamoDB table/],
    [
      "the ARN of a table's stream",
      { tableName: 'arn:aws:dynamodb:eu-west-1:222222222222:table/idem/stream/2026-01-01T00:00:00.000' },
      /`tableName` must be the name of a DynamoDB table .* or its ARN, arn:aws:dynamodb:<region>:<account>:table\/<name> \(got/,
    ],
    ["the ARN of a table's index", { tableName: 'arn:aws:dynamodb:eu-west-1:222222222222:table/idem/index/by-status' }, /`tableName`/],
    ['an ARN of another service', { tableName: 'arn:aws:s3:::idempotency' }, /`tableName`/],
    ['a tableName shorter than DynamoDB allows', { tableName: 'id' }, /`tableName` must be the name of a DynamoDB table \(3 to 255/],
    ['an ARN whose account is not 12 digits', { tableName: 'arn:aws:dynamodb:eu-west-1:2222:table/idem' }, /`tableName`/],
    ['the ARN of a DynamoDB resource that is not a table', { tableName: 'arn:aws:dynamodb:eu-west-1:222222222222:backup/idem' }, /`tableName`/],
  ])('%s is a TypeError', (_what, options, message) => {
    expect(construct(options)).toThrow(TypeError);
    expect(construct(options)).toThrow(message);
  });

  test('the defaults are exposed', () => {
    expect(store.tableName).toBe('idem');
    expect(store.attributes.key).toBe('id');
    expect(store.attributes.expiration).toBe('expiration');
    expect(store.expiresAfterSeconds).toBeUndefined();
  });

  test("a table's ARN (a table of another account) is taken up to the 1,024 characters DynamoDB takes, beyond the 255 of a name", () => {
    const arn = `arn:aws:dynamodb:eu-west-1:222222222222:table/${'t'.repeat(255)}`;
    expect(arn.length).toBeGreaterThan(255);
    expect(new DynamoDBStore({ tableName: arn, client }).tableName).toBe(arn);
    process.env.IDEMPOTENCY_TABLE = arn;
    expect(new DynamoDBStore({ client }).tableName).toBe(arn);
  });

  test("a table given by its ARN in another Region: the client the store builds sends to the ARN's Region; a client given is used as it is", async () => {
    const regionOf = (built: DynamoDBStore) => (built as unknown as { client: DynamoDBClient }).client.config.region();
    const saved = process.env.AWS_REGION;
    process.env.AWS_REGION = 'us-east-1';
    try {
      expect(await regionOf(new DynamoDBStore({ tableName: 'arn:aws:dynamodb:eu-west-2:222222222222:table/idem' }))).toBe('eu-west-2');
      process.env.IDEMPOTENCY_TABLE = 'arn:aws:dynamodb:ap-south-1:222222222222:table/idem';
      expect(await regionOf(new DynamoDBStore())).toBe('ap-south-1');
      expect(await regionOf(new DynamoDBStore({ tableName: 'idem' }))).toBe('us-east-1');
      const own = new DynamoDBClient({ region: 'us-east-1' });
      expect(await regionOf(new DynamoDBStore({ tableName: 'arn:aws:dynamodb:eu-west-2:222222222222:table/idem', client: own }))).toBe('us-east-1');
    } finally {
      restore('AWS_REGION', saved);
    }
  });

  test('without `tableName`, the table is IDEMPOTENCY_TABLE; an explicit `tableName` wins', () => {
    process.env.IDEMPOTENCY_TABLE = 'orders-idempotency';
    expect(new DynamoDBStore().tableName).toBe('orders-idempotency');
    expect(new DynamoDBStore({ client }).tableName).toBe('orders-idempotency');
    expect(new DynamoDBStore({ tableName: 'explicit', client }).tableName).toBe('explicit');
  });

  test.each(['', 'idem\n', ' idem'])('an IDEMPOTENCY_TABLE of %j names no table: a TypeError naming the variable', (value) => {
    process.env.IDEMPOTENCY_TABLE = value;
    expect(construct({ client })).toThrow(TypeError);
    expect(construct({ client })).toThrow(`IDEMPOTENCY_TABLE must be the name of a DynamoDB table (3 to 255 letters, digits, '_', '-' or '.') or its ARN`);
  });

  test('table names DynamoDB takes are taken: letters, digits, _ - . and ARNs of every partition', () => {
    for (const tableName of [
      'idem',
      'Orders_Idempotency-v2.prod',
      'arn:aws-cn:dynamodb:cn-north-1:222222222222:table/idem',
      'arn:aws-us-gov:dynamodb:us-gov-west-1:222222222222:table/idem',
    ]) {
      expect(new DynamoDBStore({ tableName, client }).tableName).toBe(tableName);
    }
  });

  test('an attribute name left undefined (from an unset variable, say) is the default name, as an option left undefined is', () => {
    const attributes = { key: process.env.NO_SUCH_VARIABLE, expiration: 'ttl', fingerprint: undefined };
    expect(new DynamoDBStore({ tableName: 'idem', client, attributes }).attributes).toEqual({ ...DEFAULT_ATTRIBUTE_NAMES, expiration: 'ttl' });
  });

  test('the retention is IDEMPOTENCY_EXPIRES_AFTER_SECONDS when set; the `expiresAfterSeconds` option wins', () => {
    process.env.IDEMPOTENCY_EXPIRES_AFTER_SECONDS = '345600';
    expect(new DynamoDBStore({ tableName: 'idem', client }).expiresAfterSeconds).toBe(345_600);
    expect(new DynamoDBStore({ tableName: 'idem', client, expiresAfterSeconds: 60 }).expiresAfterSeconds).toBe(60);
    delete process.env.IDEMPOTENCY_EXPIRES_AFTER_SECONDS;
    expect(new DynamoDBStore({ tableName: 'idem', client, expiresAfterSeconds: 60 }).expiresAfterSeconds).toBe(60);
  });

  test.each(['', 'abc', '0', '-60', '1.5', '1e5', ' 60', '0x10', '9999999999999999'])(
    'IDEMPOTENCY_EXPIRES_AFTER_SECONDS=%j is a TypeError at construction',
    (value) => {
      process.env.IDEMPOTENCY_EXPIRES_AFTER_SECONDS = value;
      expect(construct({ tableName: 'idem', client })).toThrow(TypeError);
      expect(construct({ tableName: 'idem', client })).toThrow(/IDEMPOTENCY_EXPIRES_AFTER_SECONDS must be a whole number of seconds, 1 or more/);
    },
  );
});
