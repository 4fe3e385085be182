import { startDynamoDBLocal } from '../../tools/dynamodb-local.ts';

/** One DynamoDB Local for the whole run; workers find it through DYNAMODB_ENDPOINT. */
export default async function globalSetup(): Promise<void> {
  const local = await startDynamoDBLocal();
  process.env.DYNAMODB_ENDPOINT = local.endpoint;
  (globalThis as { __dynamodbLocal__?: typeof local }).__dynamodbLocal__ = local;
}
