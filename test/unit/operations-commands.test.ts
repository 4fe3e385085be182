/** The exact DynamoDB requests behind `DynamoDBStore.inspect` and `.forget`, with custom attribute names. */
import { ConditionalCheckFailedException, DeleteItemCommand, DynamoDBClient, GetItemCommand } from '@aws-sdk/client-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { DynamoDBStore } from '../../lib/index.js';
import { serviceError } from '../support/mocked-dynamodb.js';

const ddb = mockClient(DynamoDBClient);
const client = new DynamoDBClient({ region: 'local', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
const store = new DynamoDBStore({ tableName: 'idem', client, attributes: { key: 'pk', status: 'state', response: 'body' } });
beforeEach(() => ddb.reset());
afterAll(() => ddb.restore());

const refused = () => new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} });

test('inspect is one strongly consistent GetItem and reads sizes of what is stored', async () => {
  ddb.on(GetItemCommand).resolves({
    Item: {
      pk: { S: 'n#h' },
      state: { S: 'COMPLETED' },
      expiration: { N: '1700086400' },
      owner: { S: 'o' },
      body: { B: new Uint8Array(7) },
      responseOmitted: { BOOL: false },
    },
  });
  expect(await store.inspect('n#h')).toStrictEqual({
    key: 'n#h',
    status: 'COMPLETED',
    expiresAt: 1_700_086_400,
    hasFingerprint: false,
    responseBytes: 7,
    responseOmitted: false,
  });
  expect(ddb.calls()).toHaveLength(1);
  expect(ddb.commandCalls(GetItemCommand)[0]!.args[0].input).toStrictEqual({ TableName: 'idem', Key: { pk: { S: 'n#h' } }, ConsistentRead: true });
});

test('forget is one conditional DeleteItem: on existence, or on the status asked for; a refusal returns the item, so that a retried delete that finds none knows it applied', async () => {
  ddb.on(DeleteItemCommand).resolvesOnce({}).rejectsOnce(refused());
  expect(await store.forget('n#h')).toBe(true);
  expect(await store.forget('n#h', 'INPROGRESS')).toBe(false);
  const inputs = ddb.commandCalls(DeleteItemCommand).map((call) => call.args[0].input);
  expect(inputs).toStrictEqual([
    {
      TableName: 'idem',
      Key: { pk: { S: 'n#h' } },
      ConditionExpression: 'attribute_exists(#id)',
      ExpressionAttributeNames: { '#id': 'pk' },
      ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
    },
    {
      TableName: 'idem',
      Key: { pk: { S: 'n#h' } },
      ConditionExpression: '#status = :status',
      ExpressionAttributeNames: { '#status': 'state' },
      ExpressionAttributeValues: { ':status': { S: 'INPROGRESS' } },
      ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
    },
  ]);
});

test('forget by lease is one DeleteItem conditioned on INPROGRESS and that exact lease end', async () => {
  ddb.on(DeleteItemCommand).resolves({});
  expect(await store.forget('n#h', undefined, 1_700_000_001_000)).toBe(true);
  expect(await store.forget('n#h', 'COMPLETED', 1_700_000_001_000)).toBe(false);
  expect(ddb.commandCalls(DeleteItemCommand).map((call) => call.args[0].input)).toStrictEqual([
    {
      TableName: 'idem',
      Key: { pk: { S: 'n#h' } },
      ConditionExpression: '#status = :status AND #lease = :lease',
      ExpressionAttributeNames: { '#status': 'state', '#lease': 'leaseUntil' },
      ExpressionAttributeValues: { ':status': { S: 'INPROGRESS' }, ':lease': { N: '1700000001000' } },
      ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
    },
  ]);
});

test('forget passes on errors other than a refused condition', async () => {
  ddb.on(DeleteItemCommand).rejects(serviceError('AccessDeniedException', 'not authorized to perform dynamodb:DeleteItem'));
  await expect(store.forget('n#h')).rejects.toThrow('dynamodb:DeleteItem');
});
