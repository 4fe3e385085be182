/**
 * The construct and the store agree. The table: its key and TTL attributes are those the store
 * writes, the TTL in epoch seconds. The grant: every request `DynamoDBStore` sends to the idempotency table, on
 * every path of a call (miss, replay, release, final error, `transaction()` writes, atomic mode and its read after a failed run),
 * needs only the IAM actions `IdempotencyTable.attachFunction` grants, and each granted action is
 * used. Requests run against DynamoDB Local (which checks no IAM), so each one is mapped to the
 * actions AWS authorizes it by: a `TransactWriteItems` by the actions of its parts, per table.
 * docs/without-cdk.md, for users without the construct, shows the same grant and the same table.
 */
import { readFileSync } from 'node:fs';
import type { TransactWriteItemsCommandInput } from '@aws-sdk/client-dynamodb';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { Code, Function as LambdaFunction, Runtime } from 'aws-cdk-lib/aws-lambda';
import { IdempotencyTable } from '../../lib/cdk/index.js';
import { makeIdempotent, transaction } from '../../lib/index.js';
import { parseMarkdown } from '../docs/markdown.js';
import { ROOT } from '../docs/snippets.js';
import { recordId, scanItems, testClient, useBusinessTable, useFreshTable } from '../support/dynamodb.js';

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

/** The construct's table with a function attached, as synthesized: the actions granted on it, its key and TTL attributes. */
function synthesized() {
  const stack = new Stack(new App(), 'Access');
  const table = new IdempotencyTable(stack, 'Idempotency');
  table.attachFunction(new LambdaFunction(stack, 'Handler', { runtime: Runtime.NODEJS_24_X, handler: 'index.handler', code: Code.fromInline('export {}') }));
  const tableId = stack.getLogicalId(table.table.node.defaultChild as never);
  const template = Template.fromStack(stack);
  const statements = Object.values(template.findResources('AWS::IAM::Policy')).flatMap(
    (policy) => policy.Properties.PolicyDocument.Statement as Array<{ Action: string | string[]; Resource: unknown }>,
  );
  const properties = template.toJSON().Resources[tableId].Properties;
  return {
    granted: statements.filter((s) => JSON.stringify(s.Resource).includes(`"${tableId}"`)).flatMap((s) => [s.Action].flat()),
    keyAttribute: properties.KeySchema[0].AttributeName as string,
    ttlAttribute: properties.TimeToLiveSpecification.AttributeName as string,
    expiresAfterSeconds: table.expiresAfterSeconds,
  };
}
const construct = synthesized();

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
  const atomicFailing = makeIdempotent(
    async (_id: string): Promise<{ paid: string }> => {
      throw new Error('provider timed out');
    },
    { store, name: 'atomic', atomic: true },
  );
  await expect(atomicFailing('a')).resolves.toEqual({ paid: 'a' }); // an atomic run that failed reads the record: replay

  const { granted } = construct;
  expect([...needed].sort()).toEqual([...granted].sort());
  expect(granted.sort()).toEqual(['dynamodb:DeleteItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem']);
});

test("a record the store writes is keyed by the table's partition key and expires through its TTL attribute, in epoch seconds", async () => {
  const now = 1_700_000_000_000;
  const echo = makeIdempotent(async (id: string) => ({ id }), { store, name: 'ttl', now: () => now });
  await echo('t1');
  const [item] = await scanItems(client, tableName, 'ttl#');
  expect(item![construct.keyAttribute]?.S).toBe(recordId('ttl', 't1'));
  expect(item![construct.ttlAttribute]).toEqual({ N: String(now / 1000 + construct.expiresAfterSeconds) });
});

/** The fenced blocks of docs/without-cdk.md, by language. */
function withoutCdkBlocks(lang: string): string[] {
  const text = readFileSync(`${ROOT}/docs/without-cdk.md`, 'utf8');
  return parseMarkdown(text)
    .blocks.filter((block) => block.lang === lang)
    .map((block) => block.code);
}

test("docs/without-cdk.md grants on the idempotency table exactly the actions every path of a call needs, in its IAM policies and SAM's", () => {
  // Recorded by the first test, on every path of a call.
  expect(needed.size).toBeGreaterThan(0);
  const policies = withoutCdkBlocks('json').map((code) => JSON.parse(code) as { Statement: Array<{ Action: string | string[]; Resource: string }> });
  expect(policies.length).toBe(2);
  for (const policy of policies) {
    const onTable = policy.Statement.filter((statement) => statement.Resource.endsWith(':table/idempotency')).flatMap((statement) => [statement.Action].flat());
    expect(onTable.sort()).toEqual([...needed].sort());
  }
  const sam = withoutCdkBlocks('yaml').find((code) => code.includes('AWS::Serverless::Function') || code.includes('Policies:'));
  const samActions = [...(sam ?? '').matchAll(/^\s*- (dynamodb:\w+)$/gm)].map((match) => match[1]);
  expect(samActions.sort()).toEqual([...needed].sort());
});

test('docs/without-cdk.md defines the table the construct creates: its partition key and TTL attribute, in the AWS CLI and CloudFormation', () => {
  const [cli] = withoutCdkBlocks('sh');
  expect(cli).toContain(`--attribute-definitions AttributeName=${construct.keyAttribute},AttributeType=S`);
  expect(cli).toContain(`--key-schema AttributeName=${construct.keyAttribute},KeyType=HASH`);
  expect(cli).toContain(`Enabled=true,AttributeName=${construct.ttlAttribute}`);
  const cloudFormation = withoutCdkBlocks('yaml').find((code) => code.includes('AWS::DynamoDB::Table'));
  const squeezed = (cloudFormation ?? '').replace(/\s+/g, ' ');
  expect(squeezed).toContain(`AttributeDefinitions: - AttributeName: ${construct.keyAttribute} AttributeType: S`);
  expect(squeezed).toContain(`KeySchema: - AttributeName: ${construct.keyAttribute} KeyType: HASH`);
  expect(squeezed).toContain(`TimeToLiveSpecification: AttributeName: ${construct.ttlAttribute} Enabled: true`);
});
