/**
 * The grant and the store agree: every request `DynamoDBStore` sends to the idempotency table, on
 * every path of a call (miss, replay, release, final error, `transaction()` writes, atomic mode),
 * needs only the IAM actions `IdempotencyTable.attachFunction` grants, and each granted action is
 * used. Requests run against DynamoDB Local (which checks no IAM), so each one is mapped to the
 * actions AWS authorizes it by: a `TransactWriteItems` by the actions of its parts, per table.
 */
import type { TransactWriteItemsCommandInput } from '@aws-sdk/client-dynamodb';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { Code, Function as LambdaFunction, Runtime } from 'aws-cdk-lib/aws-lambda';
import { IdempotencyTable } from '../../lib/cdk/index.js';
import { makeIdempotent, transaction } from '../../lib/index.js';
import { testClient, useBusinessTable, useFreshTable } from '../support/dynamodb.js';

/** The store's own client: only the library's requests go through it. */
const storeClient = testClient();
const { client, tableName, store } = useFreshTable({ prefix: 'access', storeClient });
const businessTable = useBusinessTable(client);
afterAll(() => storeClient.destroy());

/** The IAM action that authorizes each request on one item, and each part of a transaction. */
const ITEM_ACTION: Record<string, string> = {
  PutItemCommand: 'dynamodb:PutItem',
  UpdateItemCommand: 'dynamodb:UpdateItem',
  DeleteItemCommand: 'dynamodb:DeleteItem',
  GetItemCommand: 'dynamodb:GetItem',
  Put: 'dynamodb:PutItem',
  Update: 'dynamodb:UpdateItem',
  Delete: 'dynamodb:DeleteItem',
  ConditionCheck: 'dynamodb:ConditionCheckItem',
};

/** The actions the idempotency table's requests needed, recorded on the store's client. */
const needed = new Set<string>();
storeClient.middlewareStack.add(
  (next, context) => async (args) => {
    const input = args.input as { TableName?: string } & Partial<TransactWriteItemsCommandInput>;
    const parts =
      context.commandName === 'TransactWriteItemsCommand'
        ? input.TransactItems!.flatMap((item) => Object.entries(item).map(([part, action]) => [part, (action as { TableName: string }).TableName] as const))
        : [[context.commandName!, input.TableName] as const];
    for (const [part, table] of parts) {
      if (table === tableName) needed.add(ITEM_ACTION[part] ?? `unmapped ${part}`);
    }
    return next(args);
  },
  { step: 'initialize', name: 'neededActions' },
);

/** The actions the construct grants an attached function on its table, from the synthesized policy. */
function grantedActions(): string[] {
  const stack = new Stack(new App(), 'Access');
  const table = new IdempotencyTable(stack, 'Idempotency');
  table.attachFunction(new LambdaFunction(stack, 'Handler', { runtime: Runtime.NODEJS_24_X, handler: 'index.handler', code: Code.fromInline('export {}') }));
  const tableId = stack.getLogicalId(table.table.node.defaultChild as never);
  const statements = Object.values(Template.fromStack(stack).findResources('AWS::IAM::Policy')).flatMap(
    (policy) => policy.Properties.PolicyDocument.Statement as Array<{ Action: string | string[]; Resource: unknown }>,
  );
  return statements.filter((s) => JSON.stringify(s.Resource).includes(`"${tableId}"`)).flatMap((s) => [s.Action].flat());
}

test('every path of a call needs exactly the actions the construct grants on the table', async () => {
  const declined = Object.assign(new Error('card declined'), { code: 'DECLINED' });
  const charge = makeIdempotent(
    async (input: { id: string; outcome: 'paid' | 'declined' | 'crash'; write?: boolean }) => {
      if (input.write) transaction().put({ TableName: businessTable, Item: { id: input.id } });
      if (input.outcome === 'declined') throw declined;
      if (input.outcome === 'crash') throw new Error('provider timed out');
      return { paid: input.id };
    },
    { store, name: 'charge', key: (input) => input.id, isFinalError: (error) => error === declined },
  );
  const atomic = makeIdempotent(
    async (id: string) => {
      transaction().put({ TableName: businessTable, Item: { id: `atomic-${id}` } });
      return { paid: id };
    },
    { store, name: 'atomic', atomic: true },
  );

  await expect(charge({ id: 'miss', outcome: 'paid' })).resolves.toEqual({ paid: 'miss' }); // claim, complete
  await expect(charge({ id: 'miss', outcome: 'paid' })).resolves.toEqual({ paid: 'miss' }); // refused claim: replay
  await expect(charge({ id: 'declined', outcome: 'declined' })).rejects.toThrow('card declined'); // final error stored
  await expect(charge({ id: 'crash', outcome: 'crash' })).rejects.toThrow('provider timed out'); // release
  await expect(charge({ id: 'written', outcome: 'paid', write: true })).resolves.toEqual({ paid: 'written' }); // completion in a transaction
  await expect(atomic('a')).resolves.toEqual({ paid: 'a' }); // claim created COMPLETED in a transaction
  await expect(atomic('a')).resolves.toEqual({ paid: 'a' }); // refused atomic claim: replay

  const granted = grantedActions();
  expect([...needed].sort()).toEqual([...granted].sort());
  expect(granted.sort()).toEqual(['dynamodb:DeleteItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem']);
});
