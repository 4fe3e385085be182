import { DynamoDBClient, DynamoDBServiceException } from '@aws-sdk/client-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { DynamoDBStore } from '../../lib/index.js';

/**
 * A store on table `idem` whose DynamoDB client is mocked (aws-sdk-client-mock), for the answers a
 * real server cannot give on demand. The mock forgets its answers and calls before each test, and
 * is restored after the file.
 */
export function useMockedDynamoDB() {
  const ddb = mockClient(DynamoDBClient);
  const client = new DynamoDBClient({ region: 'local', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
  const store = new DynamoDBStore({ tableName: 'idem', client });
  beforeEach(() => ddb.reset());
  afterAll(() => ddb.restore());
  return { ddb, client, store };
}

/** An error as DynamoDB answers it, e.g. a `ValidationException` (a client fault) or an `InternalServerError`. */
export const serviceError = (name: string, message: string, fault: 'client' | 'server' = 'client'): DynamoDBServiceException =>
  new DynamoDBServiceException({ name, $fault: fault, message, $metadata: {} });
