/**
 * How long `stuck` keeps asking for a page that DynamoDB throttles: after the SDK's own attempts, five
 * more times, waiting 1, 2, 4, 8 and 16 s, then it fails with the throttling error. The client is
 * mocked and the clock faked: a real table throttles only under load, and the waits add up to 31 s.
 */
import { ScanCommand } from '@aws-sdk/client-dynamodb';
import { jest } from '@jest/globals';
import { stuckRecords } from '../../lib/cli/stuck.js';
import { DEFAULT_ATTRIBUTE_NAMES } from '../../lib/dynamodb-store.js';
import { serviceError, useMockedDynamoDB } from '../support/mocked-dynamodb.js';

const { ddb, client } = useMockedDynamoDB();

beforeEach(() => jest.useFakeTimers());
afterEach(() => jest.useRealTimers());

/** Every summary the scan yields, or the error it ends with. */
async function scan(): Promise<string[]> {
  const keys: string[] = [];
  for await (const summary of stuckRecords({ client, tableName: 'idem', attributes: DEFAULT_ATTRIBUTE_NAMES, now: Date.now })) keys.push(summary.key);
  return keys;
}

test('a page throttled on every request is asked for five more times, 31 s in all, then the scan fails with the throttling error', async () => {
  ddb.on(ScanCommand).rejects(serviceError('ThrottlingException', 'Rate of requests exceeds the allowed throughput.'));
  const result = scan().then(
    (keys) => ({ keys }),
    (error: unknown) => ({ error }),
  );
  // The waits double: 1 + 2 + 4 + 8 s, and 15.999 s of the last one.
  await jest.advanceTimersByTimeAsync(30_999);
  expect(ddb.commandCalls(ScanCommand)).toHaveLength(5);
  await jest.advanceTimersByTimeAsync(1);
  expect(await result).toEqual({ error: expect.objectContaining({ name: 'ThrottlingException' }) });
  expect(ddb.commandCalls(ScanCommand)).toHaveLength(6);
});

test('a page throttled five times and then read goes on from that page: every match is listed once', async () => {
  const item = (id: string) => ({ id: { S: id }, status: { S: 'INPROGRESS' }, leaseUntil: { N: '1' }, expiration: { N: '4102444800' } });
  const throttled = serviceError('ProvisionedThroughputExceededException', 'The level of configured provisioned throughput for the table was exceeded.');
  ddb
    .on(ScanCommand)
    .resolvesOnce({ Items: [item('n#1')], LastEvaluatedKey: { id: { S: 'n#1' } } })
    .rejectsOnce(throttled)
    .rejectsOnce(throttled)
    .rejectsOnce(throttled)
    .rejectsOnce(throttled)
    .rejectsOnce(throttled)
    .resolvesOnce({ Items: [item('n#2')] });
  const result = scan();
  await jest.advanceTimersByTimeAsync(31_000);
  expect(await result).toEqual(['n#1', 'n#2']);
  const starts = ddb.commandCalls(ScanCommand).map((call) => call.args[0].input.ExclusiveStartKey);
  expect(starts).toEqual([undefined, ...Array(6).fill({ id: { S: 'n#1' } })]);
});

test("an attempt whose lease ends at the table's time of the answer still holds its record and is not listed; one whose lease ended a millisecond before is", async () => {
  // The filter had this machine's time; the answer dates the table's clock a second behind it.
  const times = [1_000_000, 999_000];
  const now = () => times.shift() ?? 999_000;
  const item = (id: string, leaseUntil: number) => ({
    id: { S: id },
    status: { S: 'INPROGRESS' },
    leaseUntil: { N: String(leaseUntil) },
    owner: { S: 'o' },
    expiration: { N: '4102444800' },
  });
  ddb.on(ScanCommand).resolvesOnce({ Items: [item('n#held', 999_000), item('n#ended', 998_999)] });
  const keys: string[] = [];
  for await (const summary of stuckRecords({ client, tableName: 'idem', attributes: DEFAULT_ATTRIBUTE_NAMES, now })) keys.push(summary.key);
  expect(keys).toEqual(['n#ended']);
  expect(ddb.commandCalls(ScanCommand)[0]!.args[0].input.ExpressionAttributeValues?.[':now']).toEqual({ N: '1000000' });
});
