import {
  App,
  Aspects,
  CfnParameter,
  CfnResource,
  Annotations as ConstructAnnotations,
  Duration,
  type Environment,
  Fn,
  type IResolvable,
  Lazy,
  PhysicalName,
  RemovalPolicy,
  Stack,
  Token,
} from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import {
  AttributeType,
  BillingMode,
  CfnGlobalTable,
  CfnTable,
  MultiRegionConsistency,
  StreamViewType,
  Table,
  TableEncryption,
  TableEncryptionV2,
  TableV2,
} from 'aws-cdk-lib/aws-dynamodb';
import { AccountPrincipal, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { CfnStream, Stream, StreamConsumer } from 'aws-cdk-lib/aws-kinesis';
import { CfnKey, type IKey, Key, Alias as KeyAlias } from 'aws-cdk-lib/aws-kms';
import {
  Alias,
  type CfnEventInvokeConfig,
  CfnEventSourceMapping,
  type CfnFunction,
  Code,
  EventSourceMapping,
  type IEventSource,
  type IFunction,
  Function as LambdaFunction,
  Runtime,
  SingletonFunction,
  StartingPosition,
  Version,
} from 'aws-cdk-lib/aws-lambda';
import { DynamoEventSource, KinesisConsumerEventSource, KinesisEventSource, SqsDlq, SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import { CfnPipe } from 'aws-cdk-lib/aws-pipes';
import { CfnQueue, Queue, type QueueProps } from 'aws-cdk-lib/aws-sqs';
import { checkEnvironmentRetention, checkFunction, checkQueue } from '../../lib/cdk/checks.js';
import { IdempotencyTable } from '../../lib/cdk/index.js';
import { DynamoDBStore } from '../../lib/index.js';

const fnProps = (timeout = Duration.seconds(10)) => ({
  runtime: Runtime.NODEJS_24_X,
  handler: 'index.handler',
  code: Code.fromInline('export const handler = () => {}'),
  timeout,
});
const fn = (stack: Stack, id: string, timeout = Duration.seconds(10)): LambdaFunction => new LambdaFunction(stack, id, fnProps(timeout));

const ID = (stack: Stack, construct: { node: { defaultChild?: unknown } }) => stack.getLogicalId(construct.node.defaultChild as never);

describe('defaults', () => {
  let stack: Stack;
  let table: IdempotencyTable;
  let template: Template;
  beforeAll(() => {
    stack = new Stack(new App(), 'Defaults');
    table = new IdempotencyTable(stack, 'Idempotency');
    table.attachFunction(fn(stack, 'Handler'));
    template = Template.fromStack(stack);
  });

  test('a retained, on-demand table with PITR, TTL on expiration and an AWS owned key', () => {
    template.hasResource('AWS::DynamoDB::Table', {
      Properties: {
        KeySchema: [{ AttributeName: 'id', KeyType: 'HASH' }],
        TimeToLiveSpecification: { AttributeName: 'expiration', Enabled: true },
        BillingMode: 'PAY_PER_REQUEST',
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        SSESpecification: { SSEEnabled: false },
        DeletionProtectionEnabled: true,
      },
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
    });
    template.resourceCountIs('AWS::KMS::Key', 0);
  });

  test('an attached function gets the table name, the retention and the three item actions', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: { IDEMPOTENCY_TABLE: { Ref: ID(stack, table.table) }, IDEMPOTENCY_EXPIRES_AFTER_SECONDS: '86400' } },
    });
    template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: {
        Statement: [
          {
            Action: ['dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem'],
            Effect: 'Allow',
            Resource: [{ 'Fn::GetAtt': [ID(stack, table.table), 'Arn'] }],
          },
        ],
      },
    });
    expect(JSON.stringify(template.findResources('AWS::IAM::Policy'))).not.toMatch(/dynamodb:(\*|Scan|Query|GetItem)|kms:/);
  });

  test('the default retention raises no finding', () => {
    Annotations.fromStack(stack).hasNoError('*', Match.anyValue());
    Annotations.fromStack(stack).hasNoWarning('*', Match.anyValue());
  });
});

test('a customer managed key encrypts the table and attached functions get its grants; removal policy and retention are configurable', () => {
  const stack = new Stack(new App(), 'Kms');
  const key = new Key(stack, 'Key');
  const table = new IdempotencyTable(stack, 'Idempotency', { encryptionKey: key, removalPolicy: RemovalPolicy.DESTROY, expiresAfter: Duration.days(2) });
  table.attachFunction(fn(stack, 'Handler'));
  const template = Template.fromStack(stack);
  template.hasResource('AWS::DynamoDB::Table', {
    Properties: { SSESpecification: { SSEEnabled: true, SSEType: 'KMS', KMSMasterKeyId: { 'Fn::GetAtt': [ID(stack, key), 'Arn'] } } },
    DeletionPolicy: 'Delete',
  });
  template.hasResourceProperties('AWS::IAM::Policy', {
    PolicyDocument: {
      Statement: Match.arrayWith([
        Match.objectLike({
          Action: Match.arrayWith(['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey*']),
          Resource: { 'Fn::GetAtt': [ID(stack, key), 'Arn'] },
        }),
      ]),
    },
  });
  template.hasResourceProperties('AWS::Lambda::Function', {
    Environment: { Variables: Match.objectLike({ IDEMPOTENCY_EXPIRES_AFTER_SECONDS: String(2 * 86_400) }) },
  });
});

describe("a customer managed key given as an alias: an alias's ARN in a policy grants no use of its key", () => {
  const keyStatements = (stack: Stack) =>
    Object.values(Template.fromStack(stack).findResources('AWS::IAM::Policy'))
      .flatMap((policy) => policy.Properties.PolicyDocument.Statement as Array<{ Action: string | string[]; Resource: unknown; Condition?: unknown }>)
      .filter((statement) => [statement.Action].flat().includes('kms:Decrypt'));

  test('an alias of the app: attached functions get the key grants on the key it names', () => {
    const stack = new Stack(new App(), 'KmsAlias', { env: { account: '111111111111', region: 'eu-west-1' } });
    const key = new Key(stack, 'Key');
    const table = new IdempotencyTable(stack, 'Idempotency', { encryptionKey: key.addAlias('alias/idempotency') });
    table.attachFunction(fn(stack, 'Handler'));
    expect(keyStatements(stack).map((statement) => statement.Resource)).toEqual([{ 'Fn::GetAtt': [ID(stack, key), 'Arn'] }]);
  });

  test('an alias imported by its name, whose key the app cannot read: the keys of its account and Region that carry the alias', () => {
    const stack = new Stack(new App(), 'KmsImportedAlias', { env: { account: '111111111111', region: 'eu-west-1' } });
    const table = new IdempotencyTable(stack, 'Idempotency', { encryptionKey: KeyAlias.fromAliasName(stack, 'Alias', 'alias/idempotency') });
    table.attachFunction(fn(stack, 'Handler'));
    expect(keyStatements(stack)).toEqual([
      expect.objectContaining({
        Resource: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':kms:eu-west-1:111111111111:key/*']] },
        Condition: { 'ForAnyValue:StringEquals': { 'kms:ResourceAliases': 'alias/idempotency' } },
      }),
    ]);
  });
});

test.each([
  ['imported with mutable: false', false, false, ['lambda-idempotency:roleNotGranted', 'the table Immutable/Idempotency/Table']],
  ['imported with mutable: false and a customer managed key', false, true, ['the table Immutable/Idempotency/Table, and kms:Decrypt']],
  ['with addGrantsToResources: the table policy takes the item actions, not the key actions', true, true, ['kms:Decrypt, kms:DescribeKey']],
  ['with addGrantsToResources and no customer managed key: the table policy takes every grant', true, false, []],
])(
  'a function whose role is immutable (%s), whose policy attaching cannot change, gets a warning: it would deploy without the grants and fail every call with AccessDenied',
  (_, addGrantsToResources, withKey, parts) => {
    const stack = new Stack(new App(), 'Immutable', { env: { account: '111111111111', region: 'eu-west-1' } });
    const table = new IdempotencyTable(stack, 'Idempotency', withKey ? { encryptionKey: new Key(stack, 'Key') } : {});
    const role = Role.fromRoleArn(stack, 'Platform', 'arn:aws:iam::111111111111:role/platform', { mutable: false, addGrantsToResources });
    table.attachFunction(new LambdaFunction(stack, 'Handler', { ...fnProps(), role }));
    // Precondition: the role's policy got nothing.
    expect(Template.fromStack(stack).findResources('AWS::IAM::Policy')).toEqual({});
    const warnings = Annotations.fromStack(stack)
      .findWarning('/Immutable/Handler', Match.anyValue())
      .map((warning) => String(warning.entry.data))
      .filter((text) => text.includes('roleNotGranted'));
    if (parts.length === 0) expect(warnings).toEqual([]);
    else {
      expect(warnings).toHaveLength(1);
      for (const part of parts) expect(warnings[0]).toContain(part);
      expect(warnings[0]).toContain('The role of Immutable/Handler is immutable');
    }
  },
);

test.each([
  [
    'a role of another account, imported as mutable (the default)',
    (stack: Stack) => Role.fromRoleArn(stack, 'Platform', 'arn:aws:iam::222222222222:role/platform'),
  ],
  [
    'a role of this account made withoutPolicyUpdates()',
    (stack: Stack) => new Role(stack, 'Platform', { assumedBy: new ServicePrincipal('lambda.amazonaws.com') }).withoutPolicyUpdates(),
  ],
])('%s is immutable too: its function gets no grants in it, and the roleNotGranted warning', (_, role) => {
  const stack = new Stack(new App(), 'Immutable', { env: { account: '111111111111', region: 'eu-west-1' } });
  const table = new IdempotencyTable(stack, 'Idempotency');
  table.attachFunction(new LambdaFunction(stack, 'Handler', { ...fnProps(), role: role(stack) }));
  expect(Template.fromStack(stack).findResources('AWS::IAM::Policy')).toEqual({});
  const warnings = Annotations.fromStack(stack)
    .findWarning('/Immutable/Handler', Match.anyValue())
    .map((warning) => String(warning.entry.data))
    .filter((text) => text.includes('roleNotGranted'));
  expect(warnings).toEqual([expect.stringContaining('The role of Immutable/Handler is immutable')]);
  expect(warnings[0]).toContain('the table Immutable/Idempotency/Table');
});

test('a function whose role is mutable, or imported from this account as mutable (the default), gets its grants and no warning about its role', () => {
  const stack = new Stack(new App(), 'Mutable', { env: { account: '111111111111', region: 'eu-west-1' } });
  const table = new IdempotencyTable(stack, 'Idempotency');
  table.attachFunction(new LambdaFunction(stack, 'Own', fnProps()));
  table.attachFunction(
    new LambdaFunction(stack, 'Imported', { ...fnProps(), role: Role.fromRoleArn(stack, 'Platform', 'arn:aws:iam::111111111111:role/platform') }),
  );
  expect(Object.keys(Template.fromStack(stack).findResources('AWS::IAM::Policy'))).toHaveLength(2);
  const all = Annotations.fromStack(stack).findWarning('*', Match.anyValue());
  expect(all.filter((warning) => String(warning.entry.data).includes('roleNotGranted'))).toEqual([]);
});

test("a role given grantRecordAccess whose policy the app cannot change (imported with mutable: false, directly or as an imported function's) gets the roleNotGranted warning, naming what its owner must grant; a mutable one none", () => {
  const stack = new Stack(new App(), 'GrantedRoles', { env: { account: '111111111111', region: 'eu-west-1' } });
  const table = new IdempotencyTable(stack, 'Idempotency', { encryptionKey: new Key(stack, 'Key') });
  const role = (id: string, mutable: boolean) => Role.fromRoleArn(stack, id, `arn:aws:iam::111111111111:role/${id}`, { mutable });
  const fixed = role('Fixed', false);
  table.grantRecordAccess(fixed);
  const imported = LambdaFunction.fromFunctionAttributes(stack, 'Imported', {
    functionArn: 'arn:aws:lambda:eu-west-1:111111111111:function:imported',
    role: role('ImportedRole', false),
  });
  table.grantRecordAccess(imported);
  table.grantRecordAccess(role('Mutable', true));
  // Precondition: only the mutable role's policy got the grants.
  expect(Object.keys(Template.fromStack(stack).findResources('AWS::IAM::Policy'))).toHaveLength(1);
  const warned = (path: string) =>
    Annotations.fromStack(stack)
      .findWarning(path, Match.anyValue())
      .map((warning) => String(warning.entry.data))
      .filter((text) => text.includes('roleNotGranted'));
  for (const path of [`/${fixed.node.path}`, '/GrantedRoles/Imported']) {
    expect(warned(path)).toEqual([expect.stringMatching(/is immutable.*the table GrantedRoles\/Idempotency\/Table, and kms:Decrypt/)]);
  }
  expect(warned('*')).toHaveLength(2);
});

test("a role of another account given grantRecordAccess is allowed by the key's policy too: its own policy cannot grant it a key of this account", () => {
  const stack = new Stack(new App(), 'KmsAccount', { env: { account: '111111111111', region: 'eu-west-1' } });
  const table = new IdempotencyTable(stack, 'Idempotency', { encryptionKey: new Key(stack, 'Key') });
  table.grantRecordAccess(Role.fromRoleArn(stack, 'Operator', 'arn:aws:iam::222222222222:role/operator'));
  Template.fromStack(stack).hasResourceProperties('AWS::KMS::Key', {
    KeyPolicy: {
      Statement: Match.arrayWith([
        Match.objectLike({
          Action: Match.arrayWith(['kms:Decrypt', 'kms:Encrypt']),
          Principal: Match.objectLike({ AWS: Match.stringLikeRegexp('222222222222') }),
          // In a key policy, "*" is the documented form for the key the policy is on, and only it.
          Resource: '*',
        }),
      ]),
    },
  });
});

test("an account given grantRecordAccess is allowed by the table's and the key's policies: a principal without a policy of its own is granted there, every key action", () => {
  const stack = new Stack(new App(), 'KmsPrincipal', { env: { account: '111111111111', region: 'eu-west-1' } });
  const table = new IdempotencyTable(stack, 'Idempotency', { encryptionKey: new Key(stack, 'Key') });
  table.grantRecordAccess(new AccountPrincipal('222222222222'));
  const principal = { AWS: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':iam::222222222222:root']] } };
  const template = Template.fromStack(stack);
  template.hasResourceProperties('AWS::KMS::Key', {
    KeyPolicy: {
      Statement: Match.arrayWith([
        {
          Action: ['kms:Decrypt', 'kms:DescribeKey', 'kms:Encrypt', 'kms:ReEncrypt*', 'kms:GenerateDataKey*'],
          Effect: 'Allow',
          Principal: principal,
          Resource: '*',
        },
      ]),
    },
  });
  template.hasResourceProperties('AWS::DynamoDB::Table', {
    ResourcePolicy: {
      PolicyDocument: {
        Statement: [{ Action: ['dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem'], Effect: 'Allow', Principal: principal, Resource: '*' }],
      },
    },
  });
});

const keyActions = ['kms:Decrypt', 'kms:DescribeKey', 'kms:Encrypt', 'kms:ReEncrypt*', 'kms:GenerateDataKey*'];
/** The statements on key actions: in the stack's IAM policies, and in its keys' policies (the account's own `kms:*` left out). */
const keyStatements = (stack: Stack) => {
  const template = Template.fromStack(stack);
  const statements = (type: string, document: string) =>
    Object.values(template.findResources(type))
      .flatMap((resource) => resource.Properties[document].Statement)
      .filter((statement) => JSON.stringify(statement.Action).includes('kms:') && statement.Action !== 'kms:*');
  return { identity: statements('AWS::IAM::Policy', 'PolicyDocument'), key: statements('AWS::KMS::Key', 'KeyPolicy') };
};

/**
 * Two stacks of one app: a table of account 111111111111 (`ownerEnv`, eu-west-1 unless given)
 * encrypted with the key `makeKey` makes in its stack, and a function of account 222222222222
 * (`userEnv`, eu-west-1 unless given) in another stack attached to that table; `before` runs before
 * the function is attached.
 */
function keyUsedFromAnotherAccount(
  makeKey: (owner: Stack) => IKey,
  ownerEnv: Environment = { account: '111111111111', region: 'eu-west-1' },
  userEnv: Environment = { account: '222222222222', region: 'eu-west-1' },
  before: (owner: Stack, user: Stack) => void = () => {},
) {
  const app = new App();
  const owner = new Stack(app, 'KeyOwner', { env: ownerEnv });
  const shared = new Table(owner, 'Records', {
    tableName: 'records',
    partitionKey: { name: 'id', type: AttributeType.STRING },
    encryptionKey: makeKey(owner),
    encryption: TableEncryption.CUSTOMER_MANAGED,
  });
  const user = new Stack(app, 'KeyUser', { env: userEnv });
  // A role another stack names in a policy needs a name it can write: generated, from a literal account and Region, or given.
  const roleName = userEnv.account !== undefined && userEnv.region !== undefined ? PhysicalName.GENERATE_IF_NEEDED : 'records-user';
  const role = new Role(user, 'Role', { roleName, assumedBy: new ServicePrincipal('lambda.amazonaws.com') });
  before(owner, user);
  IdempotencyTable.fromTable(user, 'Idempotency', shared).attachFunction(new LambdaFunction(user, 'Handler', { ...fnProps(), role }));
  return { owner, user };
}

test("a function of another account gets the key policy's grant on this key, and in its own policy the keys of the key's account and Region, not every key", () => {
  const { owner, user } = keyUsedFromAnotherAccount((owner) => new Key(owner, 'Key'));
  // The identity policy: "*" there would be every key whose policy trusts account 222222222222.
  const policies = Template.fromStack(user).findResources('AWS::IAM::Policy');
  const statements = Object.values(policies).flatMap((policy) => policy.Properties.PolicyDocument.Statement);
  expect(statements.filter((statement) => JSON.stringify(statement.Action).includes('kms:'))).toEqual([
    { Action: keyActions, Effect: 'Allow', Resource: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':kms:eu-west-1:111111111111:key/*']] } },
  ]);
  expect(JSON.stringify(policies)).not.toContain('"Resource":"*"');
  // The key policy: "*" is this key, for the function's role alone.
  Template.fromStack(owner).hasResourceProperties('AWS::KMS::Key', {
    KeyPolicy: {
      Statement: Match.arrayWith([
        {
          Action: keyActions,
          Effect: 'Allow',
          Principal: { AWS: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, Match.stringLikeRegexp('^:iam::222222222222:role/')]] } },
          Resource: '*',
        },
      ]),
    },
  });
});

test("a key made from a CfnKey (Key.fromCfnKey) is the app's: a function of another account gets the key policy's grant, and in its own policy the keys of the key's account and Region, not every key", () => {
  const { owner, user } = keyUsedFromAnotherAccount((owner) =>
    Key.fromCfnKey(
      new CfnKey(owner, 'Key', {
        keyPolicy: {
          Version: '2012-10-17',
          Statement: [{ Effect: 'Allow', Principal: { AWS: 'arn:aws:iam::111111111111:root' }, Action: 'kms:*', Resource: '*' }],
        },
      }),
    ),
  );
  expect(keyStatements(user)).toEqual({
    identity: [
      { Action: keyActions, Effect: 'Allow', Resource: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':kms:eu-west-1:111111111111:key/*']] } },
    ],
    key: [],
  });
  expect(keyStatements(owner).key).toEqual([
    {
      Action: keyActions,
      Effect: 'Allow',
      Principal: { AWS: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, expect.stringMatching(/^:iam::222222222222:role\//)]] } },
      Resource: '*',
    },
  ]);
  Annotations.fromStack(user).hasWarning(
    '/KeyUser/Handler',
    Match.stringLikeRegexp('attaching the function added both statements: nothing to add.*tableInAnotherAccount'),
  );
});

describe('key grants where an account or a Region is known only at deploy time', () => {
  test.each([
    ['an environment-agnostic app', undefined],
    ['an app whose stacks give a Region alone', { region: 'eu-west-1' }],
  ])(
    "in %s, a function of the key's stack or of another stack gets the key by its ARN in its own policy, the key policy naming no role, and no finding",
    (_, env) => {
      // The reference strength CDK otherwise warns about when a function uses a key of another stack.
      const app = new App({ context: { '@aws-cdk/core:defaultCrossStackReferences': 'strong' } });
      const owner = new Stack(app, 'Owner', { env });
      const key = new Key(owner, 'Key');
      const records = new IdempotencyTable(owner, 'Idempotency', { encryptionKey: key });
      records.attachFunction(fn(owner, 'Handler'));
      const user = new Stack(app, 'User', { env });
      records.attachFunction(fn(user, 'Handler'));
      // Both stacks deploy to one account: the function's own policy is enough, on this key alone.
      expect(keyStatements(owner)).toEqual({
        identity: [{ Action: keyActions, Effect: 'Allow', Resource: { 'Fn::GetAtt': [ID(owner, key), 'Arn'] } }],
        key: [],
      });
      expect(keyStatements(user)).toEqual({
        identity: [
          { Action: keyActions, Effect: 'Allow', Resource: { 'Fn::ImportValue': expect.stringMatching(`^Owner:ExportsOutputFnGetAtt${ID(owner, key)}Arn`) } },
        ],
        key: [],
      });
      for (const stack of [owner, user]) {
        Annotations.fromStack(stack).hasNoError('*', Match.anyValue());
        Annotations.fromStack(stack).hasNoWarning('*', Match.anyValue());
      }
    },
  );

  test("a role imported by ARN into an environment-agnostic stack may be of another account than the stack's: the key policy names it, and its own policy names the key", () => {
    const stack = new Stack(new App(), 'Agnostic');
    const key = new Key(stack, 'Key');
    new IdempotencyTable(stack, 'Idempotency', { encryptionKey: key }).grantRecordAccess(
      Role.fromRoleArn(stack, 'Operator', 'arn:aws:iam::222222222222:role/operator'),
    );
    expect(keyStatements(stack)).toEqual({
      identity: [{ Action: keyActions, Effect: 'Allow', Resource: { 'Fn::GetAtt': [ID(stack, key), 'Arn'] } }],
      key: [{ Action: keyActions, Effect: 'Allow', Principal: { AWS: 'arn:aws:iam::222222222222:role/operator' }, Resource: '*' }],
    });
  });

  test('a key imported by an ARN known only at deploy is named by that ARN in the policy of a function of the stack', () => {
    const stack = new Stack(new App(), 'ImportedKey');
    const keyArn = new CfnParameter(stack, 'KeyArn');
    const records = new IdempotencyTable(stack, 'Idempotency', { encryptionKey: Key.fromKeyArn(stack, 'Key', keyArn.valueAsString) });
    records.attachFunction(fn(stack, 'Handler'));
    expect(keyStatements(stack)).toEqual({ identity: [{ Action: keyActions, Effect: 'Allow', Resource: { Ref: 'KeyArn' } }], key: [] });
  });

  test("a key looked up by its alias (Key.fromLookup), whose ARN is a token: a function of another account gets in its own policy the keys of the key's account and Region, not every key", () => {
    const { user } = keyUsedFromAnotherAccount((owner) => Key.fromLookup(owner, 'Key', { aliasName: 'alias/records', returnDummyKeyOnMissing: true }));
    expect(keyStatements(user)).toEqual({
      identity: [
        { Action: keyActions, Effect: 'Allow', Resource: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':kms:eu-west-1:111111111111:key/*']] } },
      ],
      key: [],
    });
  });

  test("a function of another account, with a key whose stack's Region is known only at deploy: its own policy names the keys of the key's account in every Region, not every key", () => {
    const { owner, user } = keyUsedFromAnotherAccount((owner) => new Key(owner, 'Key'), { account: '111111111111' });
    // The key stack's Region, a token, would resolve in the function's stack to that stack's own Region.
    expect(keyStatements(user)).toEqual({
      identity: [{ Action: keyActions, Effect: 'Allow', Resource: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':kms:*:111111111111:key/*']] } }],
      key: [],
    });
    expect(keyStatements(owner)).toEqual({
      identity: [],
      key: [
        {
          Action: keyActions,
          Effect: 'Allow',
          Principal: { AWS: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, expect.stringMatching(/^:iam::222222222222:role\//)]] } },
          Resource: '*',
        },
      ],
    });
  });
});

/** `arn:<partition>:kms:<region>:<account>:key/*`, the account a literal or the stack's own (`AWS::AccountId`). */
const keysOf = (region: string, account?: string) => ({
  'Fn::Join': [
    '',
    account === undefined
      ? ['arn:', { Ref: 'AWS::Partition' }, `:kms:${region}:`, { Ref: 'AWS::AccountId' }, ':key/*']
      : ['arn:', { Ref: 'AWS::Partition' }, `:kms:${region}:${account}:key/*`],
  ],
});
/** The key policy's statement for the function's role of account 222222222222 (`undefined`: of the stack's own account). */
const roleInKeyPolicy = (account?: string) => ({
  Action: keyActions,
  Effect: 'Allow',
  Principal: {
    AWS: {
      'Fn::Join': [
        '',
        account === undefined
          ? ['arn:', { Ref: 'AWS::Partition' }, ':iam::', { Ref: 'AWS::AccountId' }, expect.stringMatching(/^:role\//)]
          : ['arn:', { Ref: 'AWS::Partition' }, expect.stringMatching(new RegExp(`^:iam::${account}:role/`))],
      ],
    },
  },
  Resource: '*',
});

describe("key grants across environments where one account is known only at deploy: the function's own policy never names every key", () => {
  // The table's grant names, in the function's stack, the table of the key stack's account as that stack reads it: its own.
  test.each([
    [
      "a key stack that gives a Region alone, a function of a literal account: both halves, its own policy naming the keys of the key's Region in the account the table's grant names",
      { region: 'eu-west-1' },
      { account: '222222222222', region: 'eu-west-1' },
      keysOf('eu-west-1'),
      [roleInKeyPolicy('222222222222')],
      [],
    ],
    [
      'the same, the function in another Region',
      { region: 'eu-west-1' },
      { account: '222222222222', region: 'us-east-1' },
      keysOf('eu-west-1'),
      [roleInKeyPolicy('222222222222')],
      ['tableInAnotherRegion'],
    ],
    [
      "an environment-agnostic key stack, a function of a literal account: the keys of every Region, as the key stack's Region is known only at deploy",
      {},
      { account: '222222222222', region: 'eu-west-1' },
      keysOf('*'),
      [roleInKeyPolicy('222222222222')],
      [],
    ],
    [
      "a key stack of a literal account, a function stack that gives a Region alone: both halves, its own policy naming the key's account",
      { account: '111111111111', region: 'eu-west-1' },
      { region: 'eu-west-1' },
      keysOf('eu-west-1', '111111111111'),
      [roleInKeyPolicy()],
      [],
    ],
    // Two stacks without an account deploy to one: no role of another stack in the key policy, which KMS refuses before that role exists.
    [
      'a key stack that gives a Region alone, an environment-agnostic function stack: its own policy alone, naming the keys of that Region',
      { region: 'eu-west-1' },
      {},
      keysOf('eu-west-1'),
      [],
      [],
    ],
    [
      'two stacks that give a Region alone, each another one: its own policy alone, naming the keys of the Region of the key',
      { region: 'eu-west-1' },
      { region: 'us-east-1' },
      keysOf('eu-west-1'),
      [],
      ['tableInAnotherRegion'],
    ],
  ])('%s', (_, ownerEnv, userEnv, resource, key, warnings) => {
    const { owner, user } = keyUsedFromAnotherAccount((owner) => new Key(owner, 'Key'), ownerEnv, userEnv);
    expect(keyStatements(user)).toEqual({ identity: [{ Action: keyActions, Effect: 'Allow', Resource: resource }], key: [] });
    expect(keyStatements(owner)).toEqual({ identity: [], key });
    // No warning says the table is of another account: that is known only at deploy.
    for (const stack of [owner, user]) Annotations.fromStack(stack).hasNoError('*', Match.anyValue());
    const ids = Annotations.fromStack(user)
      .findWarning('/KeyUser/Handler', Match.anyValue())
      .map((warning) => String(warning.entry.data).match(/lambda-idempotency:(\w+)/)?.[1]);
    expect(ids).toEqual(warnings);
  });

  test.each([
    ['known only at deploy', { region: 'eu-west-1' }],
    ['of another account', { account: '111111111111', region: 'eu-west-1' }],
  ])(
    "a function stack deployed after the key's, whose account is %s: the key policy names the function's account, as a role not created yet is refused by KMS",
    (_, ownerEnv) => {
      const { owner } = keyUsedFromAnotherAccount(
        (owner) => new Key(owner, 'Key'),
        ownerEnv,
        undefined,
        (owner, user) => user.addStackDependency(owner),
      );
      expect(keyStatements(owner).key).toEqual([
        {
          Action: keyActions,
          Effect: 'Allow',
          Principal: { AWS: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':iam::222222222222:root']] } },
          Resource: '*',
        },
      ]);
    },
  );
});

test('a queue already feeding the function is refused with its name, before anything is wired: Lambda maps a queue to a function once', () => {
  const stack = new Stack(new App(), 'SameQueue');
  const records = new IdempotencyTable(stack, 'Idempotency');
  const consumer = fn(stack, 'Consumer');
  const orders = new Queue(stack, 'Orders', { visibilityTimeout: Duration.minutes(1) });
  records.attachSqsConsumer(consumer, orders);
  expect(() => records.attachSqsConsumer(consumer, orders, { batchSize: 5 })).toThrow(
    'IdempotencyTable.attachSqsConsumer: the queue SameQueue/Orders already feeds SameQueue/Consumer, by an earlier attachSqsConsumer call: give all its settings to that one call. Lambda maps a queue to a function once.',
  );
  // The same queue by its ARN, imported again: the same mapping.
  const again = Queue.fromQueueArn(stack, 'Again', 'arn:aws:sqs:eu-west-1:123456789012:refunds');
  const refunds = fn(stack, 'Refunds');
  records.attachSqsConsumer(refunds, Queue.fromQueueArn(stack, 'Refunds-queue', 'arn:aws:sqs:eu-west-1:123456789012:refunds'));
  expect(() => records.attachSqsConsumer(refunds, again)).toThrow(/the queue SameQueue\/Again already feeds SameQueue\/Refunds/);
  // Wired by hand first: the message names that event source, and nothing is attached.
  const byHand = fn(stack, 'ByHand');
  byHand.addEventSource(new SqsEventSource(orders, { reportBatchItemFailures: true }));
  expect(() => records.attachSqsConsumer(byHand, orders)).toThrow(
    /^IdempotencyTable\.attachSqsConsumer: the queue SameQueue\/Orders already feeds SameQueue\/ByHand, by the event source SameQueue\/ByHand\/SqsEventSource:\w+, added without attachSqsConsumer: remove that one/,
  );
  expect(Object.keys(Template.fromStack(stack).findResources('AWS::Lambda::EventSourceMapping'))).toHaveLength(3);
  const variables = (id: string) => Template.fromStack(stack).toJSON().Resources[ID(stack, stack.node.findChild(id) as LambdaFunction)].Properties.Environment;
  expect(variables('ByHand')).toBeUndefined();
  // Another queue, or the same queue to another function: wired.
  records.attachSqsConsumer(consumer, new Queue(stack, 'Returns', { visibilityTimeout: Duration.minutes(1) }));
  records.attachSqsConsumer(fn(stack, 'Second'), orders);
});

test('deletion protection is on by default, off with RemovalPolicy.DESTROY (so the stack can delete it), and overridable', () => {
  const stack = new Stack(new App(), 'Protection');
  const tables = {
    Default: new IdempotencyTable(stack, 'Default'),
    RetainOnUpdate: new IdempotencyTable(stack, 'RetainOnUpdate', { removalPolicy: RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE }),
    Destroy: new IdempotencyTable(stack, 'Destroy', { removalPolicy: RemovalPolicy.DESTROY }),
    Off: new IdempotencyTable(stack, 'Off', { deletionProtection: false }),
    DestroyButProtected: new IdempotencyTable(stack, 'DestroyButProtected', { removalPolicy: RemovalPolicy.DESTROY, deletionProtection: true }),
  };
  const resources = Template.fromStack(stack).toJSON().Resources;
  const enabled = Object.fromEntries(
    Object.entries(tables).map(([name, table]) => [name, resources[ID(stack, table.table)].Properties.DeletionProtectionEnabled]),
  );
  expect(enabled).toEqual({ Default: true, RetainOnUpdate: true, Destroy: false, Off: false, DestroyButProtected: true });
});

test('an `encryptionKey` given as its ARN, or the props of attachSqsConsumer given as null, is a TypeError that names it, not a crash inside CDK', () => {
  const stack = new Stack(new App(), 'S');
  const arn = 'arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';
  const message = `must be a KMS key construct (an IKey: new Key(…), or Key.fromKeyArn(scope, id, arn) for an existing one) (got ${JSON.stringify(arn)}).`;
  expect(() => new IdempotencyTable(stack, 'Arn', { encryptionKey: arn } as never)).toThrow(`IdempotencyTable: \`encryptionKey\` ${message}`);
  const existing = new Table(stack, 'Existing', { partitionKey: { name: 'id', type: AttributeType.STRING } });
  expect(() => IdempotencyTable.fromTable(stack, 'FromArn', existing, { encryptionKey: arn } as never)).toThrow(
    `IdempotencyTable.fromTable: \`encryptionKey\` ${message}`,
  );
  // The key construct itself is taken, also one imported by its ARN.
  expect(new IdempotencyTable(stack, 'Imported', { encryptionKey: Key.fromKeyArn(stack, 'Key', arn) }).encryptionKey).toBeDefined();
  const table = new IdempotencyTable(stack, 'T');
  expect(() => table.attachSqsConsumer(fn(stack, 'Consumer'), new Queue(stack, 'Q'), null as never)).toThrow(
    'IdempotencyTable.attachSqsConsumer: `props` must be an object of SqsEventSource props, or left out.',
  );
});

test('options are validated at construction', () => {
  const stack = new Stack(new App(), 'Invalid');
  expect(() => new IdempotencyTable(stack, 'Millis', { expiresAfter: Duration.millis(1500) })).toThrow(/whole number of seconds/);
  // Table props the construct sets itself: silently ignored, a custom TTL attribute would never expire records.
  expect(() => new IdempotencyTable(stack, 'Ttl', { timeToLiveAttribute: 'ttl' } as never)).toThrow(
    'IdempotencyTable: unknown option `timeToLiveAttribute`. Known options: tableName, expiresAfter, encryptionKey, removalPolicy, deletionProtection, pointInTimeRecovery.',
  );
  // CloudFormation would refuse these names only at deploy time.
  for (const tableName of ['ab', 'orders idempotency', 'x'.repeat(256), '']) {
    expect(() => new IdempotencyTable(stack, `Name${tableName.length}`, { tableName })).toThrow(
      `IdempotencyTable: \`tableName\` must be 3 to 255 letters, digits, '_', '-' or '.' (got ${JSON.stringify(tableName)}).`,
    );
  }
  expect(() => new IdempotencyTable(stack, 'Pitr', { pointInTimeRecovery: 'yes' } as never)).toThrow(
    'IdempotencyTable: `pointInTimeRecovery` must be a boolean.',
  );
  expect(() => new IdempotencyTable(stack, 'Protection', { deletionProtection: 1 } as never)).toThrow(
    'IdempotencyTable: `deletionProtection` must be a boolean.',
  );
  expect(new IdempotencyTable(stack, 'Named', { tableName: 'orders-idempotency_v2.prod' }).table).toBeDefined();
  expect(() => new IdempotencyTable(stack, 'Seconds', { expiresAfter: 3600 } as never)).toThrow(
    'IdempotencyTable: `expiresAfter` must be a Duration, such as Duration.hours(24) (got 3600).',
  );
  // CloudFormation has no snapshot on deletion for DynamoDB tables: the deploy would fail.
  expect(() => new IdempotencyTable(stack, 'Snapshot', { removalPolicy: RemovalPolicy.SNAPSHOT })).toThrow(
    'IdempotencyTable: `removalPolicy` must be RETAIN, RETAIN_ON_UPDATE_OR_DELETE or DESTROY: CloudFormation cannot snapshot a DynamoDB table (got "snapshot").',
  );
  expect(() => new IdempotencyTable(stack, 'Policy', { removalPolicy: 'delete' } as never)).toThrow(
    'IdempotencyTable: `removalPolicy` must be RETAIN, RETAIN_ON_UPDATE_OR_DELETE or DESTROY: CloudFormation cannot snapshot a DynamoDB table (got "delete").',
  );
  const a = new IdempotencyTable(stack, 'A');
  const b = new IdempotencyTable(stack, 'B');
  const handler = fn(stack, 'Handler');
  a.attachFunction(handler);
  expect(a.attachFunction(handler)).toBeDefined(); // attaching twice to the same table is harmless
  expect(() => b.attachFunction(handler)).toThrow(/already attached/);
  expect(() => a.attachSqsConsumer(fn(stack, 'Other'), new Queue(stack, 'Q'), { reportBatchItemFailures: false } as never)).toThrow(/always on/);
});

test.each([
  ['a fractional batch size', { batchSize: 2.5 }, '`batchSize` must be a whole number of messages (got 2.5).'],
  ['a batch size that is not a number', { batchSize: Number.NaN }, '`batchSize` must be a whole number of messages (got NaN).'],
  [
    'a batch size over 10 with a batching window of 0 seconds',
    { batchSize: 100, maxBatchingWindow: Duration.seconds(0) },
    '`batchSize` 100 (over 10) needs a `maxBatchingWindow` of at least 1 second, or Lambda refuses the event source at deploy (got 0 seconds).',
  ],
  [
    'a batch size of 11 (just over 10) with a batching window of 0 seconds',
    { batchSize: 11, maxBatchingWindow: Duration.seconds(0) },
    '`batchSize` 11 (over 10) needs a `maxBatchingWindow` of at least 1 second, or Lambda refuses the event source at deploy (got 0 seconds).',
  ],
  [
    'a batch size over 10 with a batching window under 1 second',
    { batchSize: 100, maxBatchingWindow: Duration.millis(999) },
    '`batchSize` 100 (over 10) needs a `maxBatchingWindow` of at least 1 second, or Lambda refuses the event source at deploy (got 999 millis).',
  ],
  ['a fractional maximum concurrency', { maxConcurrency: 2.5 }, '`maxConcurrency` must be a whole number of concurrent functions (got 2.5).'],
  ['props given as an array', [], '`props` must be an object of SqsEventSource props, or left out.'],
] as const)('attachSqsConsumer with %s is a TypeError at synth, and wires nothing', (_case, props, message) => {
  const stack = new Stack(new App(), 'BadSqsProps');
  const table = new IdempotencyTable(stack, 'T');
  const consumer = fn(stack, 'Consumer');
  const queue = new Queue(stack, 'Q', { visibilityTimeout: Duration.minutes(2) });
  const attach = () => table.attachSqsConsumer(consumer, queue, props as never);
  expect(attach).toThrow(TypeError);
  expect(attach).toThrow(`IdempotencyTable.attachSqsConsumer: ${message}`);
  Template.fromStack(stack).resourceCountIs('AWS::Lambda::EventSourceMapping', 0);
});

test('attachSqsConsumer takes the batch sizes and windows Lambda takes, and values CloudFormation resolves at deploy', () => {
  const stack = new Stack(new App(), 'GoodSqsProps');
  const table = new IdempotencyTable(stack, 'T');
  const queue = (id: string) => new Queue(stack, id, { visibilityTimeout: Duration.minutes(2) });
  const size = new CfnParameter(stack, 'BatchSize', { type: 'Number', default: 5 }).valueAsNumber;
  table.attachSqsConsumer(fn(stack, 'Large'), queue('LargeQ'), { batchSize: 100, maxBatchingWindow: Duration.seconds(1), maxConcurrency: 5 });
  table.attachSqsConsumer(fn(stack, 'Small'), queue('SmallQ'), { batchSize: 10, maxBatchingWindow: Duration.seconds(0) });
  table.attachSqsConsumer(fn(stack, 'Resolved'), queue('ResolvedQ'), { batchSize: size, reportBatchItemFailures: true } as never);
  const template = Template.fromStack(stack);
  template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
    BatchSize: 100,
    MaximumBatchingWindowInSeconds: 1,
    ScalingConfig: { MaximumConcurrency: 5 },
    FunctionResponseTypes: ['ReportBatchItemFailures'],
  });
  template.hasResourceProperties('AWS::Lambda::EventSourceMapping', { BatchSize: 10, MaximumBatchingWindowInSeconds: 0 });
  template.hasResourceProperties('AWS::Lambda::EventSourceMapping', { BatchSize: { Ref: 'BatchSize' } });
});

test('a retention of zero seconds is refused: every duplicate would run again', () => {
  const stack = new Stack(new App(), 'ZeroRetention');
  expect(() => new IdempotencyTable(stack, 'Zero', { expiresAfter: Duration.seconds(0) })).toThrow(
    'IdempotencyTable: `expiresAfter` must be a whole number of seconds, 1 or more (got 0).',
  );
  expect(() => new IdempotencyTable(stack, 'Table').attachFunction(fn(stack, 'Handler'), { expiresAfter: Duration.seconds(0) })).toThrow(
    'IdempotencyTable.attachFunction: `expiresAfter` must be a whole number of seconds, 1 or more (got 0).',
  );
});

test('a retention longer than the store reads from IDEMPOTENCY_EXPIRES_AFTER_SECONDS is refused at synth, not at every cold start', () => {
  const stack = new Stack(new App(), 'LongRetention');
  const refusal = (where: string, got: string) =>
    `${where}: \`expiresAfter\` must be at most 999999999999999 seconds (about 31 million years), the longest retention the store reads from IDEMPOTENCY_EXPIRES_AFTER_SECONDS (got ${got}).`;
  expect(() => new IdempotencyTable(stack, 'Eons', { expiresAfter: Duration.days(1e13) })).toThrow(refusal('IdempotencyTable', '864000000000000000'));
  expect(() => new IdempotencyTable(stack, 'Table').attachFunction(fn(stack, 'Handler'), { expiresAfter: Duration.seconds(1e21) })).toThrow(
    refusal('IdempotencyTable.attachFunction', '1e+21'),
  );
  // The longest accepted is one the store reads back.
  const accepted = new Stack(new App(), 'LongestRetention');
  new IdempotencyTable(accepted, 'Idempotency', { expiresAfter: Duration.seconds(999_999_999_999_999) }).attachFunction(fn(accepted, 'Handler'));
  const [variables] = Object.values(Template.fromStack(accepted).findResources('AWS::Lambda::Function')).map((f) => f.Properties.Environment.Variables);
  const previous = process.env.IDEMPOTENCY_EXPIRES_AFTER_SECONDS;
  process.env.IDEMPOTENCY_EXPIRES_AFTER_SECONDS = variables.IDEMPOTENCY_EXPIRES_AFTER_SECONDS;
  try {
    expect(new DynamoDBStore({ tableName: 'idempotency' }).expiresAfterSeconds).toBe(999_999_999_999_999);
  } finally {
    if (previous === undefined) delete process.env.IDEMPOTENCY_EXPIRES_AFTER_SECONDS;
    else process.env.IDEMPOTENCY_EXPIRES_AFTER_SECONDS = previous;
  }
});

test('limits met exactly are no error: redeliveries that end when the records expire, a visibility timeout equal to the function timeout', () => {
  const stack = new Stack(new App(), 'Boundaries');
  const table = new IdempotencyTable(stack, 'Idempotency', { expiresAfter: Duration.hours(1) });
  // 6 receives × 10 min: the last redelivery comes before the record, written after the first receive, expires.
  const dlq = new Queue(stack, 'Dlq');
  table.attachSqsConsumer(
    fn(stack, 'ExactReceives'),
    new Queue(stack, 'Receives', { visibilityTimeout: Duration.minutes(10), deadLetterQueue: { queue: dlq, maxReceiveCount: 6 } }),
  );
  // Messages kept 1 h, as long as the records, without a dead-letter queue.
  table.attachSqsConsumer(
    fn(stack, 'ExactRetention'),
    new Queue(stack, 'Retention', { retentionPeriod: Duration.hours(1), visibilityTimeout: Duration.minutes(1) }),
  );
  // Lambda accepts a visibility timeout equal to the function timeout: below 6 × it, a warning only.
  table.attachSqsConsumer(
    fn(stack, 'ExactVisibility', Duration.minutes(1)),
    new Queue(stack, 'Visibility', { visibilityTimeout: Duration.minutes(1), deadLetterQueue: { queue: dlq, maxReceiveCount: 3 } }),
  );
  const annotations = Annotations.fromStack(stack);
  for (const id of ['ExactReceives', 'ExactRetention', 'ExactVisibility']) annotations.hasNoError(`/Boundaries/${id}`, Match.anyValue());
  annotations.hasNoWarning('/Boundaries/ExactReceives', Match.stringLikeRegexp('retentionShorterThanRedelivery|queueWithoutDeadLetterQueue|visibilityBelow'));
  annotations.hasWarning('/Boundaries/ExactRetention', Match.stringLikeRegexp('queueWithoutDeadLetterQueue'));
  annotations.hasWarning('/Boundaries/ExactVisibility', Match.stringLikeRegexp('visibilityBelowSixTimeouts'));
});

test('a redelivery horizon one second past the retention is an error, and a queue that drops messages before maxReceiveCount × visibility timeout is checked by its retention period', () => {
  const stack = new Stack(new App(), 'Horizons');
  const dlq = new Queue(stack, 'Dlq');
  // 6 receives × 10 min = 1 h, records kept 1 s less: the last redelivery comes after its record expired.
  const short = new IdempotencyTable(stack, 'Short', { expiresAfter: Duration.seconds(3599) });
  short.attachSqsConsumer(
    fn(stack, 'OneSecondShort'),
    new Queue(stack, 'Receives', { visibilityTimeout: Duration.minutes(10), deadLetterQueue: { queue: dlq, maxReceiveCount: 6 } }),
  );
  // 100 receives × 15 min = 25 h, but the queue deletes a message after 1 h: records kept 2 h outlive every redelivery.
  const kept = new IdempotencyTable(stack, 'Kept', { expiresAfter: Duration.hours(2) });
  kept.attachSqsConsumer(
    fn(stack, 'RetentionBound'),
    new Queue(stack, 'Dropping', {
      retentionPeriod: Duration.hours(1),
      visibilityTimeout: Duration.minutes(15),
      deadLetterQueue: { queue: dlq, maxReceiveCount: 100 },
    }),
  );
  // Records kept less than one visibility timeout: no maxReceiveCount is low enough, so none is offered.
  new IdempotencyTable(stack, 'BelowOneReceive', { expiresAfter: Duration.seconds(20) }).attachSqsConsumer(
    fn(stack, 'BelowVisibility'),
    new Queue(stack, 'Slow', { visibilityTimeout: Duration.seconds(30), deadLetterQueue: { queue: dlq, maxReceiveCount: 3 } }),
  );
  const annotations = Annotations.fromStack(stack);
  annotations.hasError('/Horizons/OneSecondShort', Match.stringLikeRegexp('retentionShorterThanRedelivery.*kept 3599 s.*for 1 h.*6 receives × 10 min'));
  // It has a dead-letter queue: the other way out is fewer receives, not a dead-letter queue.
  annotations.hasError('/Horizons/OneSecondShort', Match.stringLikeRegexp("at least 1 h, or lower the queue's maxReceiveCount to 5 or less\\.$"));
  annotations.hasNoError('/Horizons/OneSecondShort', Match.stringLikeRegexp('give the queue a dead-letter queue'));
  annotations.hasError(
    '/Horizons/BelowVisibility',
    Match.stringLikeRegexp('kept 20 s.*for 90 s.*Raise the retention \\(`expiresAfter`\\) to at least 90 s\\.$'),
  );
  annotations.hasNoError('/Horizons/RetentionBound', Match.anyValue());
  annotations.hasNoWarning('/Horizons/RetentionBound', Match.stringLikeRegexp('retentionShorterThanRedelivery'));
});

test('retries one second longer than the records are kept are an error: async-invoke maxEventAge, a stream source maxRecordAge', () => {
  const stack = new Stack(new App(), 'OneSecond');
  const records = new IdempotencyTable(stack, 'Idempotency', { expiresAfter: Duration.seconds(3599) });
  const asyncFn = fn(stack, 'AsyncFunction');
  asyncFn.configureAsyncInvoke({ maxEventAge: Duration.hours(1), retryAttempts: 2 });
  records.attachFunction(asyncFn);
  const consumer = fn(stack, 'StreamConsumer');
  consumer.configureAsyncInvoke({ maxEventAge: Duration.minutes(1), retryAttempts: 0 });
  records.attachFunction(consumer);
  const failed = new SqsDlq(new Queue(stack, 'FailedBatches'));
  const events = new Stream(stack, 'Events', { retentionPeriod: Duration.days(7) });
  consumer.addEventSource(
    new KinesisEventSource(events, {
      startingPosition: StartingPosition.LATEST,
      reportBatchItemFailures: true,
      onFailure: failed,
      maxRecordAge: Duration.hours(1),
    }),
  );
  const annotations = Annotations.fromStack(stack);
  annotations.hasError('/OneSecond/AsyncFunction', Match.stringLikeRegexp('asyncRetriesOutliveRecords.*1 h.*3599 s'));
  annotations.hasError('/OneSecond/StreamConsumer', Match.stringLikeRegexp('retentionShorterThanStreamRetries.*kept 3599 s.*for 1 h.*maxRecordAge'));
});

describe('synth-time checks on a misconfigured stack', () => {
  let stack: Stack;
  let annotations: Annotations;
  const path = (id: string) => `/Checks/${id}`;

  beforeAll(() => {
    stack = new Stack(new App(), 'Checks');
    const table = new IdempotencyTable(stack, 'Idempotency'); // 24 h
    // No DLQ: a message can come back for the queue's whole retention (4 days by default).
    table.attachSqsConsumer(fn(stack, 'NoDlqConsumer'), new Queue(stack, 'NoDlq', { visibilityTimeout: Duration.minutes(1) }));
    // No DLQ, but records kept longer than the queue keeps messages: a failing message is deleted at the end of its retention.
    const longLived = new IdempotencyTable(stack, 'LongLived', { expiresAfter: Duration.days(5) });
    longLived.attachSqsConsumer(fn(stack, 'LongLivedNoDlqConsumer'), new Queue(stack, 'LongLivedNoDlq', { visibilityTimeout: Duration.minutes(1) }));
    // A DLQ, but 100 receives × 15 min = 25 h.
    const dlq = new Queue(stack, 'Dlq');
    table.attachSqsConsumer(
      fn(stack, 'ManyReceivesConsumer'),
      new Queue(stack, 'ManyReceives', { visibilityTimeout: Duration.minutes(15), deadLetterQueue: { queue: dlq, maxReceiveCount: 100 } }),
    );
    // Visibility below the function timeout, and below 6× it.
    const fine = { deadLetterQueue: { queue: dlq, maxReceiveCount: 3 } };
    table.attachSqsConsumer(fn(stack, 'SlowConsumer', Duration.minutes(2)), new Queue(stack, 'Short', { ...fine, visibilityTimeout: Duration.minutes(1) }));
    table.attachSqsConsumer(fn(stack, 'TightConsumer', Duration.seconds(20)), new Queue(stack, 'Tight', { ...fine, visibilityTimeout: Duration.seconds(60) }));
    // Lambda gathers a batch for up to its batching window after receiving its first message: 6 × 10 s + 1 min.
    table.attachSqsConsumer(fn(stack, 'WindowConsumer'), new Queue(stack, 'Window', { ...fine, visibilityTimeout: Duration.minutes(1) }), {
      maxBatchingWindow: Duration.minutes(1),
    });
    table.attachSqsConsumer(fn(stack, 'RoomyWindowConsumer'), new Queue(stack, 'RoomyWindow', { ...fine, visibilityTimeout: Duration.minutes(2) }), {
      maxBatchingWindow: Duration.minutes(1),
    });
    // An event source added outside the construct, without batch failure reporting.
    const unreported = fn(stack, 'UnreportedConsumer');
    table.attachFunction(unreported);
    unreported.addEventSource(new SqsEventSource(new Queue(stack, 'Plain', { ...fine, visibilityTimeout: Duration.minutes(1) })));
    // A queue wired by hand to an attached function is checked like one wired by attachSqsConsumer.
    const handWired = fn(stack, 'HandWiredConsumer');
    handWired.addEventSource(new SqsEventSource(new Queue(stack, 'HandWired', { visibilityTimeout: Duration.minutes(1) }), { reportBatchItemFailures: true }));
    table.attachFunction(handWired);
    // An imported queue cannot be checked.
    table.attachSqsConsumer(fn(stack, 'ImportedConsumer'), Queue.fromQueueArn(stack, 'Imported', 'arn:aws:sqs:eu-west-1:123456789012:orders'));
    // Async retries: 6 h of retries against 1 h of records.
    const shortLived = new IdempotencyTable(stack, 'ShortLived', { expiresAfter: Duration.hours(1) });
    const asyncFn = fn(stack, 'AsyncFunction');
    asyncFn.configureAsyncInvoke({ maxEventAge: Duration.hours(6), retryAttempts: 2 });
    shortLived.attachFunction(asyncFn);
    shortLived.attachFunction(fn(stack, 'DefaultAsyncFunction'));
    const noRetries = fn(stack, 'NoRetriesFunction');
    noRetries.configureAsyncInvoke({ maxEventAge: Duration.hours(6), retryAttempts: 0 });
    shortLived.attachFunction(noRetries);
    const noRetriesShortAge = fn(stack, 'NoRetriesShortAgeFunction');
    noRetriesShortAge.configureAsyncInvoke({ maxEventAge: Duration.hours(1), retryAttempts: 0 });
    shortLived.attachFunction(noRetriesShortAge);
    // CloudFormation's own template validation also prints the short visibility timeout; keep the output clean.
    const error = console.error;
    console.error = () => undefined;
    try {
      annotations = Annotations.fromStack(stack);
    } finally {
      console.error = error;
    }
  });

  test('retention shorter than a queue without DLQ keeps messages', () => {
    annotations.hasError(path('NoDlqConsumer'), Match.stringLikeRegexp('retentionShorterThanRedelivery.*kept 1 day.*for 4 days.*retention period'));
    annotations.hasError(
      path('NoDlqConsumer'),
      Match.stringLikeRegexp('or give the queue a dead-letter queue \\(maxReceiveCount × visibility timeout within the retention\\)\\.$'),
    );
  });

  test('a queue without a dead-letter queue whose messages the records outlive is a warning: a failing message is deleted without a trace', () => {
    annotations.hasWarning(
      path('LongLivedNoDlqConsumer'),
      Match.stringLikeRegexp('LongLivedNoDlq has no dead-letter queue.*4 days.*queueWithoutDeadLetterQueue'),
    );
    annotations.hasNoError(path('LongLivedNoDlqConsumer'), Match.anyValue());
    // One whose redeliveries outlive the records has the error, which names the dead-letter queue already.
    annotations.hasNoWarning(path('NoDlqConsumer'), Match.stringLikeRegexp('queueWithoutDeadLetterQueue'));
  });

  test('retention shorter than maxReceiveCount × visibility timeout', () => {
    annotations.hasError(path('ManyReceivesConsumer'), Match.stringLikeRegexp('retentionShorterThanRedelivery.*for 25 h.*100 receives × 15 min'));
  });

  test('visibility timeout below the function timeout is an error, below 6× a warning', () => {
    annotations.hasError(path('SlowConsumer'), Match.stringLikeRegexp('visibilityBelowTimeout'));
    annotations.hasWarning(path('TightConsumer'), Match.stringLikeRegexp('less than 6 × the function timeout.*at least 2 min'));
    annotations.hasNoError(path('TightConsumer'), Match.anyValue());
  });

  test("the visibility timeout leaves room for the batching window too: 6 × the function timeout plus the mapping's maxBatchingWindow", () => {
    annotations.hasWarning(path('WindowConsumer'), Match.stringLikeRegexp('batching window \\(1 min\\).*at least 2 min.*visibilityBelowSixTimeouts'));
    annotations.hasNoWarning(path('RoomyWindowConsumer'), Match.stringLikeRegexp('lambda-idempotency'));
    annotations.hasNoError(path('RoomyWindowConsumer'), Match.anyValue());
  });

  test('an event source without reportBatchItemFailures', () => {
    annotations.hasError(path('UnreportedConsumer'), Match.stringLikeRegexp('noBatchItemFailures'));
    annotations.hasNoError(path('NoDlqConsumer'), Match.stringLikeRegexp('noBatchItemFailures'));
  });

  test('the error tells a handler that throws the whole batch instead of using the batch helper what to do: the setting changes nothing for it', () => {
    annotations.hasError(
      path('UnreportedConsumer'),
      Match.stringLikeRegexp(
        'A handler that fails by throwing the whole batch, without the batch helper, loses nothing by it: set `reportBatchItemFailures: true` too',
      ),
    );
  });

  test('a queue wired to an attached function without attachSqsConsumer is checked too', () => {
    annotations.hasError(path('HandWiredConsumer'), Match.stringLikeRegexp('retentionShorterThanRedelivery.*Checks/HandWired .*for 4 days'));
  });

  test('an imported queue is reported as unchecked', () => {
    annotations.hasWarning(path('ImportedConsumer'), Match.stringLikeRegexp('imported'));
  });

  test('async-invoke retries that outlive the records', () => {
    annotations.hasError(path('AsyncFunction'), Match.stringLikeRegexp('asyncRetriesOutliveRecords.*6 h.*1 h'));
    annotations.hasWarning(path('DefaultAsyncFunction'), Match.stringLikeRegexp('up to 6 h by default'));
    annotations.hasNoError(path('NoRetriesFunction'), Match.anyValue());
  });

  test('without async-invoke retries, an event kept longer than the records is a warning: Lambda runs a throttled event again, and its queue can deliver one twice, until maxEventAge', () => {
    annotations.hasWarning(
      path('NoRetriesFunction'),
      Match.stringLikeRegexp('no async-invoke retries.*up to 6 h.*kept \\(1 h\\).*asyncRedeliveryOutlivesRecords'),
    );
    expect(annotations.findWarning(path('NoRetriesShortAgeFunction'), Match.stringLikeRegexp('lambda-idempotency'))).toEqual([]);
    expect(annotations.findError(path('NoRetriesShortAgeFunction'), Match.anyValue())).toEqual([]);
  });

  test('a durable function whose executions outlive the retention, its durable lease unless the handler sets one, is a warning: another execution with the key would run the steps again', () => {
    const set = new Stack(new App(), 'Durable');
    const table = new IdempotencyTable(set, 'Idempotency'); // 24 h
    const durable = (id: string, executionTimeout: Duration) => {
      const f = new LambdaFunction(set, id, { ...fnProps(), durableConfig: { executionTimeout } });
      f.configureAsyncInvoke({ maxEventAge: Duration.minutes(1), retryAttempts: 0 });
      table.attachFunction(f);
      return f;
    };
    durable('Week', Duration.days(7));
    durable('Hour', Duration.hours(1));
    // Executions that end when the lease does: none outlives it.
    durable('Day', Duration.days(1));
    // Raised by an escape hatch, as CloudFormation gets it; and one known only at deploy time.
    (durable('Overridden', Duration.hours(1)).node.defaultChild as CfnFunction).addPropertyOverride('DurableConfig.ExecutionTimeout', 172_800);
    const deployTime = new CfnParameter(set, 'ExecutionTimeout', { type: 'Number' }).valueAsNumber;
    durable('DeployTime', Duration.seconds(deployTime));
    const found = Annotations.fromStack(set);
    found.hasWarning(
      '/Durable/Week',
      Match.stringLikeRegexp(
        'Durable/Week is a durable function whose executions may last 7 days.*kept 1 day.*durableLeaseSeconds.*at least 7 days.*durableExecutionOutlivesLease',
      ),
    );
    found.hasWarning('/Durable/Overridden', Match.stringLikeRegexp('may last 2 days.*durableExecutionOutlivesLease'));
    found.hasWarning('/Durable/DeployTime', Match.stringLikeRegexp('known only at deploy time.*durableExecutionOutlivesLease'));
    expect(found.findWarning('/Durable/Hour', Match.stringLikeRegexp('lambda-idempotency'))).toEqual([]);
    expect(found.findWarning('/Durable/Day', Match.stringLikeRegexp('lambda-idempotency'))).toEqual([]);
  });

  test('a durable SQS consumer keeps its batch in flight for the whole execution, up to 15 minutes: a visibility timeout below that is a warning, one above it none', () => {
    const set = new Stack(new App(), 'DurableQueue');
    const table = new IdempotencyTable(set, 'Idempotency'); // 24 h
    const dlq = new Queue(set, 'Dlq');
    const consumer = (id: string, visibility: Duration, executionTimeout: Duration) => {
      const f = new LambdaFunction(set, id, { ...fnProps(Duration.minutes(1)), durableConfig: { executionTimeout } });
      f.configureAsyncInvoke({ maxEventAge: Duration.minutes(1), retryAttempts: 0 });
      const queue = new Queue(set, `${id}Queue`, { visibilityTimeout: visibility, deadLetterQueue: { queue: dlq, maxReceiveCount: 3 } });
      table.attachSqsConsumer(f, queue, { maxBatchingWindow: Duration.seconds(5) });
    };
    // Above 6 × the 1 min function timeout plus the 5 s batching window, but the execution may last 10 min.
    consumer('TenMinutes', Duration.minutes(7), Duration.minutes(10));
    // An execution timeout of a day: an event source ends the execution at 15 min.
    consumer('Day', Duration.minutes(15), Duration.days(1));
    consumer('DayCovered', Duration.seconds(905), Duration.days(1));
    consumer('Covered', Duration.seconds(605), Duration.minutes(10));
    // Below the function timeout, Lambda refuses the event source: the advice covers the execution.
    consumer('BelowTimeout', Duration.seconds(30), Duration.minutes(10));
    const found = Annotations.fromStack(set);
    expect(found.findError('*', Match.anyValue())).toHaveLength(1);
    found.hasError(
      '/DurableQueue/BelowTimeout',
      Match.stringLikeRegexp(
        'visibility timeout of 30 s, shorter than the function timeout \\(1 min\\).*at least 605 s \\(the durable execution plus the batching window',
      ),
    );
    const warned = {
      TenMinutes: 'DurableQueue/TenMinutesQueue has a visibility timeout of 7 min.*durable execution.*10 min.*at least 605 s.*visibilityBelowDurableExecution',
      Day: 'visibility timeout of 15 min.*15 min.*at least 905 s.*visibilityBelowDurableExecution',
    };
    for (const [id, message] of Object.entries(warned)) found.hasWarning(`/DurableQueue/${id}`, Match.stringLikeRegexp(message));
    for (const quiet of ['DayCovered', 'Covered']) {
      expect(found.findWarning(`/DurableQueue/${quiet}`, Match.stringLikeRegexp('visibilityBelow'))).toEqual([]);
    }
  });

  test("the queue's redrive policy as CloudFormation gets it counts, also when set on the CfnQueue", () => {
    const app = new App();
    const set = new Stack(app, 'Redrive');
    const table = new IdempotencyTable(set, 'Idempotency'); // 24 h
    const dlq = new Queue(set, 'Dlq');
    // 3 receives on the L2, raised to 100 × 15 min = 25 h on the CfnQueue.
    const raised = new Queue(set, 'Raised', { visibilityTimeout: Duration.minutes(15), deadLetterQueue: { queue: dlq, maxReceiveCount: 3 } });
    (raised.node.defaultChild as CfnQueue).redrivePolicy = { deadLetterTargetArn: dlq.queueArn, maxReceiveCount: 100 };
    table.attachSqsConsumer(fn(set, 'RaisedConsumer'), raised);
    // A dead-letter queue set on the CfnQueue only: 5 × 1 min, not the 4 days of retention.
    const l1 = new Queue(set, 'LowLevel', { visibilityTimeout: Duration.minutes(1) });
    (l1.node.defaultChild as CfnQueue).redrivePolicy = { deadLetterTargetArn: dlq.queueArn, maxReceiveCount: 5 };
    table.attachSqsConsumer(fn(set, 'LowLevelConsumer'), l1);
    const found = Annotations.fromStack(set);
    found.hasError('/Redrive/RaisedConsumer', Match.stringLikeRegexp('retentionShorterThanRedelivery.*for 25 h.*100 receives × 15 min'));
    found.hasNoError('/Redrive/LowLevelConsumer', Match.anyValue());
  });

  test('a queue defined as a CfnQueue alone (L1), mapped to the function, is checked as a Queue is', () => {
    const app = new App();
    const set = new Stack(app, 'LowLevelQueue');
    const table = new IdempotencyTable(set, 'Idempotency', { expiresAfter: Duration.hours(1) });
    // 14 days of retention, no dead-letter queue, a visibility timeout below the 60 s function timeout.
    const queue = new CfnQueue(set, 'Orders', { messageRetentionPeriod: 14 * 24 * 3600, visibilityTimeout: 10 });
    const consumer = fn(set, 'Consumer', Duration.seconds(60));
    table.attachFunction(consumer);
    consumer.configureAsyncInvoke({ maxEventAge: Duration.minutes(1), retryAttempts: 0 });
    new EventSourceMapping(set, 'OrdersMapping', { target: consumer, eventSourceArn: queue.attrArn, reportBatchItemFailures: true });
    const found = Annotations.fromStack(set);
    found.hasError(
      '/LowLevelQueue/Consumer',
      Match.stringLikeRegexp('retentionShorterThanRedelivery.*LowLevelQueue/Orders can deliver a message again for 14 d'),
    );
    found.hasError('/LowLevelQueue/Consumer', Match.stringLikeRegexp('visibilityBelowTimeout.*LowLevelQueue/Orders has a visibility timeout of 10 s'));
    expect(found.findWarning('/LowLevelQueue/Consumer', Match.stringLikeRegexp('not defined in this app'))).toEqual([]);
  });

  test('a queue that feeds the function through an EventBridge pipe is checked as through an event source mapping; a pipe from a source not defined here, or that invokes it asynchronously, is a warning', () => {
    const set = new Stack(new App(), 'Piped');
    const table = new IdempotencyTable(set, 'Idempotency', { expiresAfter: Duration.days(1) });
    const role = new Role(set, 'PipeRole', { assumedBy: new ServicePrincipal('pipes.amazonaws.com') });
    const pipe = (id: string, source: string, target: LambdaFunction, invocationType?: 'FIRE_AND_FORGET' | 'REQUEST_RESPONSE', desiredState?: 'STOPPED') => {
      target.configureAsyncInvoke({ maxEventAge: Duration.minutes(1), retryAttempts: 0 });
      table.attachFunction(target);
      new CfnPipe(set, id, {
        roleArn: role.roleArn,
        source,
        target: target.functionArn,
        ...(invocationType === undefined ? {} : { targetParameters: { lambdaFunctionParameters: { invocationType } } }),
        desiredState,
      });
    };
    // The default 4 days of retention and no dead-letter queue, a visibility timeout below the 60 s function timeout.
    pipe('FromQueue', new Queue(set, 'Orders', { visibilityTimeout: Duration.seconds(10) }).queueArn, fn(set, 'QueueConsumer', Duration.seconds(60)));
    pipe('FromStream', new Stream(set, 'Events').streamArn, fn(set, 'StreamConsumer'));
    const dlq = new Queue(set, 'Dlq');
    const wellWired = new Queue(set, 'WellWired', { visibilityTimeout: Duration.minutes(1), deadLetterQueue: { queue: dlq, maxReceiveCount: 5 } });
    pipe('Async', wellWired.queueArn, fn(set, 'AsyncConsumer'), 'FIRE_AND_FORGET');
    pipe('Sync', wellWired.queueArn, fn(set, 'SyncConsumer'), 'REQUEST_RESPONSE');
    // A stopped pipe receives nothing until it is started: the queue's backlog waits, as behind a disabled event source.
    const paused = new Queue(set, 'Paused', { visibilityTimeout: Duration.minutes(1), deadLetterQueue: { queue: dlq, maxReceiveCount: 5 } });
    pipe('Stopped', paused.queueArn, fn(set, 'StoppedConsumer'), 'REQUEST_RESPONSE', 'STOPPED');
    const found = Annotations.fromStack(set);
    found.hasWarning(
      '/Piped/StoppedConsumer',
      Match.stringLikeRegexp(
        'Piped/Paused feeds Piped/StoppedConsumer through the pipe Piped/Stopped, which is stopped.*retention period \\(4 days\\).*kept 1 day.*backlogOutlivesRecords',
      ),
    );
    found.hasError('/Piped/QueueConsumer', Match.stringLikeRegexp('retentionShorterThanRedelivery.*Piped/Orders can deliver a message again for 4 d'));
    found.hasError('/Piped/QueueConsumer', Match.stringLikeRegexp('visibilityBelowTimeout.*Piped/Orders has a visibility timeout of 10 s'));
    found.hasWarning(
      '/Piped/StreamConsumer',
      Match.stringLikeRegexp('pipe Piped/FromStream into Piped/StreamConsumer reads a source not defined.*kept 1 d.*pipeNotChecked'),
    );
    found.hasWarning('/Piped/AsyncConsumer', Match.stringLikeRegexp('pipe Piped/Async .*FIRE_AND_FORGET.*pipeFireAndForget'));
    for (const id of ['SyncConsumer', 'QueueConsumer']) expect(found.findWarning(`/Piped/${id}`, Match.stringLikeRegexp('pipe'))).toEqual([]);
    expect(found.findWarning('/Piped/SyncConsumer', Match.stringLikeRegexp('lambda-idempotency'))).toEqual([]);
    expect(found.findError('/Piped/SyncConsumer', Match.anyValue())).toEqual([]);
  });

  test('a well-wired consumer has no finding', () => {
    const ok = new Stack(new App(), 'Ok');
    const table = new IdempotencyTable(ok, 'Idempotency');
    const dlq = new Queue(ok, 'Dlq');
    table.attachSqsConsumer(
      fn(ok, 'Consumer'),
      new Queue(ok, 'Queue', { visibilityTimeout: Duration.minutes(1), deadLetterQueue: { queue: dlq, maxReceiveCount: 5 } }),
    );
    const found = Annotations.fromStack(ok);
    found.hasNoError('*', Match.anyValue());
    found.hasNoWarning('*', Match.anyValue());
    Template.fromStack(ok).hasResourceProperties('AWS::Lambda::EventSourceMapping', { FunctionResponseTypes: ['ReportBatchItemFailures'] });
  });
});

describe('synth-time checks on stream event sources: a failed batch is retried from the failed item, so records after it come back', () => {
  const path = (id: string) => `/Streams/${id}`;
  let annotations: Annotations;

  beforeAll(() => {
    const stack = new Stack(new App(), 'Streams');
    const records = new IdempotencyTable(stack, 'Idempotency', { expiresAfter: Duration.hours(1) });
    const orders = new Table(stack, 'Orders', { partitionKey: { name: 'pk', type: AttributeType.STRING }, stream: StreamViewType.NEW_IMAGE });
    const events = new Stream(stack, 'Events', { retentionPeriod: Duration.days(7) });
    const wire = (id: string, source: IEventSource) => {
      const consumer = fn(stack, id);
      consumer.configureAsyncInvoke({ maxEventAge: Duration.minutes(1), retryAttempts: 0 }); // only the stream's retries matter here
      records.attachFunction(consumer);
      consumer.addEventSource(source);
    };
    const failed = new SqsDlq(new Queue(stack, 'FailedBatches'));
    const from = { startingPosition: StartingPosition.TRIM_HORIZON, reportBatchItemFailures: true, onFailure: failed };
    // Defaults: retried until the stream drops the record, 24 h for DynamoDB, the stream's retention for Kinesis.
    wire('DynamoDefaults', new DynamoEventSource(orders, from));
    wire('KinesisDefaults', new KinesisEventSource(events, from));
    // Retries bounded in time: at most the record retention.
    wire('KinesisBounded', new KinesisEventSource(events, { ...from, maxRecordAge: Duration.hours(1), retryAttempts: 10 }));
    // A record age limit longer than the retention.
    wire('KinesisLongAge', new KinesisEventSource(events, { ...from, maxRecordAge: Duration.hours(2) }));
    // No retries at all, reading new records only: nothing comes back.
    wire('DynamoNoRetries', new DynamoEventSource(orders, { ...from, startingPosition: StartingPosition.LATEST, retryAttempts: 0 }));
    // No retries, but from the oldest record: a mapping created again (a new logical id, another starting position)
    // reads the stream from its start, records the function already ran included.
    wire('KinesisNoRetriesReplayed', new KinesisEventSource(events, { ...from, retryAttempts: 0 }));
    wire('DynamoNoRetriesReplayed', new DynamoEventSource(orders, { ...from, retryAttempts: 0 }));
    wire('KinesisNoRetriesReplayedAged', new KinesisEventSource(events, { ...from, retryAttempts: 0, maxRecordAge: Duration.hours(1) }));
    // An age limit longer than DynamoDB keeps a stream record: the stream's 24 h bound the retries, within a day of records.
    const dayLong = new IdempotencyTable(stack, 'DayLong');
    const dayConsumer = fn(stack, 'DynamoLongAge');
    dayConsumer.configureAsyncInvoke({ maxEventAge: Duration.minutes(1), retryAttempts: 0 });
    dayLong.attachFunction(dayConsumer);
    dayConsumer.addEventSource(new DynamoEventSource(orders, { ...from, maxRecordAge: Duration.days(7) }));
    // A DynamoDB stream named by its ARN: DynamoDB keeps every stream record 24 h.
    const importedOrders = Table.fromTableAttributes(stack, 'ImportedOrders', {
      tableName: 'orders',
      tableStreamArn: 'arn:aws:dynamodb:eu-west-1:123456789012:table/orders/stream/2026-01-01T00:00:00.000',
    });
    wire('DynamoImported', new DynamoEventSource(importedOrders, from));
    // A stream of another stack or account: its retention is not known here.
    wire('KinesisImported', new KinesisEventSource(Stream.fromStreamArn(stack, 'Imported', 'arn:aws:kinesis:eu-west-1:123456789012:stream/events'), from));
    // An enhanced fan-out consumer reads its stream's records: 7 days.
    wire('KinesisFanOut', new KinesisConsumerEventSource(new StreamConsumer(stack, 'FanOut', { stream: events, streamConsumerName: 'fan-out' }), from));
    // Without an on-failure destination, a batch whose retries end is skipped: with an age limit, or with no retries at all.
    const { onFailure: _, ...withoutOnFailure } = from;
    wire('KinesisNoOnFailure', new KinesisEventSource(events, { ...withoutOnFailure, maxRecordAge: Duration.hours(1) }));
    wire('DynamoNoRetriesNoOnFailure', new DynamoEventSource(orders, { ...withoutOnFailure, retryAttempts: 0 }));
    // Without reportBatchItemFailures, a stream moves past the failed records the batch helper reports.
    wire('KinesisUnreported', new KinesisEventSource(events, { ...from, reportBatchItemFailures: false, maxRecordAge: Duration.hours(1) }));
    annotations = Annotations.fromStack(stack);
  });

  test('retries until the stream drops the record outlive records kept for less: an error naming the horizon', () => {
    annotations.hasError(path('DynamoDefaults'), Match.stringLikeRegexp('retentionShorterThanStreamRetries.*kept 1 h.*for 1 day.*Streams/Orders'));
    annotations.hasError(path('KinesisDefaults'), Match.stringLikeRegexp('retentionShorterThanStreamRetries.*kept 1 h.*for 7 days.*Streams/Events'));
    annotations.hasError(path('KinesisLongAge'), Match.stringLikeRegexp('retentionShorterThanStreamRetries.*for 2 h.*maxRecordAge'));
    annotations.hasError(path('DynamoImported'), Match.stringLikeRegexp('retentionShorterThanStreamRetries.*for 1 day.*table/orders/stream'));
  });

  test('retries bounded by a record age within the retention, or no retries, raise nothing', () => {
    for (const id of ['KinesisBounded', 'DynamoNoRetries']) {
      annotations.hasNoError(path(id), Match.anyValue());
      annotations.hasNoWarning(path(id), Match.stringLikeRegexp('lambda-idempotency'));
    }
    // Within the retention, but retried until the stream drops the records: only that warning.
    annotations.hasNoError(path('DynamoLongAge'), Match.anyValue());
    annotations.hasNoWarning(path('DynamoLongAge'), Match.stringLikeRegexp('lambda-idempotency:(?!streamRetriesUntilDropped)'));
  });

  test('an on-failure destination does not receive what the stream drops: retries that end only then are a warning', () => {
    annotations.hasWarning(
      path('DynamoDefaults'),
      Match.stringLikeRegexp('until the stream of table .*Orders drops its records \\(1 day\\).*retryAttempts.*maxRecordAge.*streamRetriesUntilDropped'),
    );
    annotations.hasWarning(
      path('KinesisDefaults'),
      Match.stringLikeRegexp('until Kinesis stream Streams/Events drops its records \\(7 days\\).*streamRetriesUntilDropped'),
    );
    // A record age no shorter than the stream keeps records does not end the retries first.
    annotations.hasWarning(path('DynamoLongAge'), Match.stringLikeRegexp('drops its records \\(1 day\\).*streamRetriesUntilDropped'));
    annotations.hasWarning(path('KinesisImported'), Match.stringLikeRegexp('until the stream drops its records:.*streamRetriesUntilDropped'));
    annotations.hasWarning(
      path('KinesisFanOut'),
      Match.stringLikeRegexp('until Kinesis stream Streams/Events drops its records \\(7 days\\).*streamRetriesUntilDropped'),
    );
    // Bounded by an age below the stream's retention, or by a retry count: the destination gets the batch.
    for (const id of ['KinesisBounded', 'KinesisLongAge', 'DynamoNoRetries']) {
      annotations.hasNoWarning(path(id), Match.stringLikeRegexp('streamRetriesUntilDropped'));
    }
    // Without a destination, the existing warning says it all.
    annotations.hasNoWarning(path('KinesisNoOnFailure'), Match.stringLikeRegexp('streamRetriesUntilDropped'));
  });

  test("an enhanced fan-out consumer's retries are bounded by its stream's retention", () => {
    annotations.hasError(path('KinesisFanOut'), Match.stringLikeRegexp('retentionShorterThanStreamRetries.*kept 1 h.*for 7 days.*Streams/Events'));
    annotations.hasNoWarning(path('KinesisFanOut'), Match.stringLikeRegexp('streamNotChecked'));
  });

  test('a stream source without an on-failure destination loses the records of a batch whose retries end: a warning naming the fix', () => {
    for (const id of ['KinesisNoOnFailure', 'DynamoNoRetriesNoOnFailure']) {
      annotations.hasWarning(path(id), Match.stringLikeRegexp(`Streams/${id}/.*no on-failure destination.*onFailure.*streamWithoutOnFailure`));
      annotations.hasNoError(path(id), Match.anyValue());
    }
    // Those with one (every other source here) are not warned.
    annotations.hasNoWarning(path('KinesisBounded'), Match.stringLikeRegexp('streamWithoutOnFailure'));
  });

  test('a stream source without reportBatchItemFailures is an error: the stream would move past the failed records', () => {
    annotations.hasError(path('KinesisUnreported'), Match.stringLikeRegexp('noBatchItemFailures.*a stream moves past them'));
  });

  test('no retries from TRIM_HORIZON still replay the stream when the mapping is created again: a warning when the stream keeps records longer', () => {
    annotations.hasWarning(
      path('KinesisNoRetriesReplayed'),
      Match.stringLikeRegexp('TRIM_HORIZON.*created again.*for 7 days.*kept 1 h.*maxRecordAge.*streamReplayOutlivesRecords'),
    );
    annotations.hasWarning(path('DynamoNoRetriesReplayed'), Match.stringLikeRegexp('TRIM_HORIZON.*for 1 day.*kept 1 h.*streamReplayOutlivesRecords'));
    for (const id of ['KinesisNoRetriesReplayed', 'DynamoNoRetriesReplayed']) annotations.hasNoError(path(id), Match.anyValue());
    // An age limit within the retention drops the older records of a replay too; LATEST reads no old record.
    for (const id of ['KinesisNoRetriesReplayedAged', 'DynamoNoRetries']) {
      annotations.hasNoWarning(path(id), Match.stringLikeRegexp('streamReplayOutlivesRecords'));
    }
  });

  test('a stream whose retention is not known here is reported as unchecked', () => {
    annotations.hasWarning(path('KinesisImported'), Match.stringLikeRegexp('not known at synth time.*maxRecordAge.*streamNotChecked'));
    annotations.hasNoError(path('KinesisImported'), Match.anyValue());
  });
});

describe('synth-time checks on stream sources without retries that read old records again: the starting position, its override, and the span the warning names', () => {
  const path = (id: string) => `/Replays/${id}`;
  let annotations: Annotations;

  beforeAll(() => {
    const stack = new Stack(new App(), 'Replays');
    const records = new IdempotencyTable(stack, 'Idempotency', { expiresAfter: Duration.hours(1) });
    const events = new Stream(stack, 'Events', { retentionPeriod: Duration.days(7) });
    const failed = new SqsDlq(new Queue(stack, 'FailedBatches'));
    const wire = (id: string, source: IEventSource): LambdaFunction => {
      const consumer = fn(stack, id);
      consumer.configureAsyncInvoke({ maxEventAge: Duration.minutes(1), retryAttempts: 0 });
      records.attachFunction(consumer);
      consumer.addEventSource(source);
      return consumer;
    };
    const from = { reportBatchItemFailures: true, onFailure: failed, retryAttempts: 0 };
    wire('AtTimestamp', new KinesisEventSource(events, { ...from, startingPosition: StartingPosition.AT_TIMESTAMP, startingPositionTimestamp: 1_767_225_600 }));
    // Made LATEST, set to TRIM_HORIZON by an escape hatch: CloudFormation gets TRIM_HORIZON.
    const overridden = wire('OverriddenToTrimHorizon', new KinesisEventSource(events, { ...from, startingPosition: StartingPosition.LATEST }));
    const mapping = overridden.node.findAll().find((c): c is CfnEventSourceMapping => c instanceof CfnEventSourceMapping);
    mapping!.addPropertyOverride('StartingPosition', 'TRIM_HORIZON');
    wire('AgedPastRetention', new KinesisEventSource(events, { ...from, startingPosition: StartingPosition.TRIM_HORIZON, maxRecordAge: Duration.hours(2) }));
    const imported = Stream.fromStreamArn(stack, 'Imported', 'arn:aws:kinesis:eu-west-1:123456789012:stream/events');
    wire('ImportedStream', new KinesisEventSource(imported, { ...from, startingPosition: StartingPosition.TRIM_HORIZON }));
    annotations = Annotations.fromStack(stack);
  });

  test('a source that starts AT_TIMESTAMP reads back records the stream keeps longer than the retention: a warning naming the stream', () => {
    annotations.hasWarning(
      path('AtTimestamp'),
      Match.stringLikeRegexp(
        'starts at AT_TIMESTAMP.*for 7 days \\(as long as Kinesis stream Replays/Events keeps them\\).*kept 1 h.*streamReplayOutlivesRecords',
      ),
    );
  });

  test('a starting position set to TRIM_HORIZON by addPropertyOverride is the one checked', () => {
    annotations.hasWarning(path('OverriddenToTrimHorizon'), Match.stringLikeRegexp('starts at TRIM_HORIZON.*streamReplayOutlivesRecords'));
  });

  test('the span named is the one that bounds the replay: the maxRecordAge, or a stream whose retention is not known here', () => {
    annotations.hasWarning(path('AgedPastRetention'), Match.stringLikeRegexp('for 2 h \\(its `maxRecordAge`\\).*kept 1 h.*streamReplayOutlivesRecords'));
    annotations.hasWarning(
      path('ImportedStream'),
      Match.stringLikeRegexp('for as long as the stream keeps them \\(not known here\\).*kept 1 h.*streamReplayOutlivesRecords'),
    );
  });
});

test('a stream defined as an L1 resource (CfnStream, CfnTable, CfnGlobalTable) is checked against its retention, as one of an L2 construct', () => {
  const stack = new Stack(new App(), 'L1Streams');
  const records = new IdempotencyTable(stack, 'Idempotency', { expiresAfter: Duration.hours(1) });
  const events = new CfnStream(stack, 'Events', { retentionPeriodHours: 168, shardCount: 1 });
  const key = { keySchema: [{ attributeName: 'pk', keyType: 'HASH' }], attributeDefinitions: [{ attributeName: 'pk', attributeType: 'S' }] };
  const orders = new CfnTable(stack, 'Orders', { ...key, billingMode: 'PAY_PER_REQUEST', streamSpecification: { streamViewType: 'NEW_IMAGE' } });
  const global = new CfnGlobalTable(stack, 'Global', {
    ...key,
    billingMode: 'PAY_PER_REQUEST',
    replicas: [{ region: 'eu-west-1' }],
    streamSpecification: { streamViewType: 'NEW_IMAGE' },
  });
  const wire = (id: string, eventSourceArn: string) => {
    const consumer = fn(stack, id);
    consumer.configureAsyncInvoke({ maxEventAge: Duration.minutes(1), retryAttempts: 0 });
    records.attachFunction(consumer);
    new CfnEventSourceMapping(stack, `${id}Source`, {
      functionName: consumer.functionName,
      eventSourceArn,
      startingPosition: 'LATEST',
      functionResponseTypes: ['ReportBatchItemFailures'],
    });
  };
  wire('Kinesis', events.attrArn);
  wire('Dynamo', orders.attrStreamArn);
  wire('DynamoGlobal', global.attrStreamArn);
  const annotations = Annotations.fromStack(stack);
  annotations.hasError('/L1Streams/Kinesis', Match.stringLikeRegexp('retentionShorterThanStreamRetries.*kept 1 h.*for 7 days.*L1Streams/Events'));
  annotations.hasError('/L1Streams/Dynamo', Match.stringLikeRegexp('retentionShorterThanStreamRetries.*kept 1 h.*for 1 day.*L1Streams/Orders'));
  annotations.hasError('/L1Streams/DynamoGlobal', Match.stringLikeRegexp('retentionShorterThanStreamRetries.*kept 1 h.*for 1 day.*L1Streams/Global'));
  for (const id of ['Kinesis', 'Dynamo', 'DynamoGlobal']) annotations.hasNoWarning(`/L1Streams/${id}`, Match.stringLikeRegexp('streamNotChecked'));
});

test('an event source mapping naming the function with a qualifier written onto its name or ARN is checked as one on the function', () => {
  const stack = new Stack(new App(), 'QualifiedMapping');
  const records = new IdempotencyTable(stack, 'Idempotency', { expiresAfter: Duration.hours(1) });
  const events = new Stream(stack, 'Events', { retentionPeriod: Duration.days(7) });
  for (const [id, reference] of [
    ['ByName', (f: LambdaFunction) => `${f.functionName}:live`],
    ['ByArn', (f: LambdaFunction) => `${f.functionArn}:live`],
  ] as const) {
    const consumer = fn(stack, id);
    consumer.configureAsyncInvoke({ maxEventAge: Duration.minutes(1), retryAttempts: 0 });
    records.attachFunction(consumer);
    // An alias managed outside the app (a deployment tool's `live`), named by hand.
    new CfnEventSourceMapping(stack, `${id}Source`, { functionName: reference(consumer), eventSourceArn: events.streamArn, startingPosition: 'LATEST' });
  }
  const annotations = Annotations.fromStack(stack);
  for (const id of ['ByName', 'ByArn']) {
    annotations.hasError(`/QualifiedMapping/${id}`, Match.stringLikeRegexp(`noBatchItemFailures.*${id}Source`));
    annotations.hasError(`/QualifiedMapping/${id}`, Match.stringLikeRegexp(`retentionShorterThanStreamRetries.*${id}Source.*for 7 days`));
  }
});

test("async-invoke settings of an attached function's alias are checked like the function's own", () => {
  const stack = new Stack(new App(), 'AliasAsync');
  const records = new IdempotencyTable(stack, 'Idempotency', { expiresAfter: Duration.hours(1) });
  const handler = fn(stack, 'Handler');
  records.attachFunction(handler);
  handler.configureAsyncInvoke({ maxEventAge: Duration.hours(1) }); // unqualified invocations: within the retention
  new Alias(stack, 'Live', { aliasName: 'live', version: handler.currentVersion }).configureAsyncInvoke({ maxEventAge: Duration.hours(6), retryAttempts: 2 });
  Annotations.fromStack(stack).hasError('/AliasAsync/Handler', Match.stringLikeRegexp('asyncRetriesOutliveRecords.*AliasAsync/Live.*6 h.*1 h'));
});

describe("a function's own retention, given to attachFunction", () => {
  const path = (id: string) => `/OwnRetention/${id}`;
  let stack: Stack;
  let records: IdempotencyTable;
  let template: Template;
  let annotations: Annotations;
  beforeAll(() => {
    stack = new Stack(new App(), 'OwnRetention');
    records = new IdempotencyTable(stack, 'Idempotency', { expiresAfter: Duration.days(7) });
    // Records kept 1 h: the default 6 h of asynchronous retries outlive them.
    records.attachFunction(fn(stack, 'Api'), { expiresAfter: Duration.hours(1) });
    // Records kept 1 h, then a queue wired without a dead-letter queue: 4 days of redeliveries.
    const consumer = fn(stack, 'Consumer');
    records.attachFunction(consumer, { expiresAfter: Duration.hours(1) });
    records.attachSqsConsumer(consumer, new Queue(stack, 'Orders', { visibilityTimeout: Duration.minutes(1) }));
    // Records kept 1 h, and a DynamoDB stream retried for its 24 h.
    const changes = fn(stack, 'Changes');
    changes.configureAsyncInvoke({ maxEventAge: Duration.minutes(1), retryAttempts: 0 });
    records.attachFunction(changes, { expiresAfter: Duration.hours(1) });
    const orders = new Table(stack, 'OrdersTable', { partitionKey: { name: 'pk', type: AttributeType.STRING }, stream: StreamViewType.NEW_IMAGE });
    changes.addEventSource(
      new DynamoEventSource(orders, {
        startingPosition: StartingPosition.TRIM_HORIZON,
        reportBatchItemFailures: true,
        onFailure: new SqsDlq(new Queue(stack, 'FailedChanges')),
      }),
    );
    // The table's 7 days, which outlive the same queue's redeliveries.
    records.attachSqsConsumer(fn(stack, 'Other'), new Queue(stack, 'Refunds', { visibilityTimeout: Duration.minutes(1) }));
    template = Template.fromStack(stack);
    annotations = Annotations.fromStack(stack);
  });

  test('is the retention the function gets in its environment', () => {
    const retention = (id: string) =>
      template.toJSON().Resources[stack.getLogicalId(stack.node.findChild(id).node.defaultChild as never)].Properties.Environment.Variables
        .IDEMPOTENCY_EXPIRES_AFTER_SECONDS;
    expect(['Api', 'Consumer', 'Other'].map(retention)).toEqual(['3600', '3600', String(7 * 86_400)]);
  });

  test("is the retention the function's retries are checked against", () => {
    annotations.hasWarning(path('Api'), Match.stringLikeRegexp('kept 1 h.*up to 6 h by default.*asyncRetriesUnchecked'));
    annotations.hasError(path('Consumer'), Match.stringLikeRegexp('retentionShorterThanRedelivery.*kept 1 h.*OwnRetention/Orders .*for 4 days'));
    annotations.hasError(path('Changes'), Match.stringLikeRegexp('retentionShorterThanStreamRetries.*kept 1 h.*for 1 day.*OwnRetention/OrdersTable'));
    annotations.hasNoError(path('Other'), Match.anyValue());
    annotations.hasNoWarning(path('Other'), Match.stringLikeRegexp('retentionShorterThanRedelivery|asyncRetries|visibilityBelow'));
  });

  test('is validated, and fixed by the first attachment: another one later is refused', () => {
    expect(() => records.attachFunction(fn(stack, 'Millis'), { expiresAfter: Duration.millis(1500) })).toThrow(
      'IdempotencyTable.attachFunction: `expiresAfter` must be a whole number of seconds, 1 or more (got 1.5).',
    );
    expect(() => records.attachFunction(fn(stack, 'Unknown'), { expiresAfterSeconds: 60 } as never)).toThrow(
      'IdempotencyTable.attachFunction: unknown option `expiresAfterSeconds`. Known options: expiresAfter.',
    );
    const api = stack.node.findChild('Api') as LambdaFunction;
    expect(() => records.attachFunction(api, { expiresAfter: Duration.hours(2) })).toThrow(
      'IdempotencyTable.attachFunction: OwnRetention/Api is already attached, with records kept 1 h; give its `expiresAfter` in its first attachment.',
    );
    const other = stack.node.findChild('Other') as LambdaFunction;
    expect(() => records.attachFunction(other, { expiresAfter: Duration.hours(1) })).toThrow(/already attached, with records kept 7 days/);
    // The same retention again, or none, keeps the attachment.
    expect(records.attachFunction(api, { expiresAfter: Duration.seconds(3600) })).toBe(records.attachFunction(api));
  });

  test('one already in the environment is not replaced in silence: another retention or table is refused, naming the option to use', () => {
    const stack = new Stack(new App(), 'Preset');
    const records = new IdempotencyTable(stack, 'Idempotency', { tableName: 'records' });
    const preset = (id: string, variables: Record<string, string>) => new LambdaFunction(stack, id, { ...fnProps(), environment: variables });
    // 7 days set by hand (for a queue the checks cannot see, say) would silently become the table's 24 h.
    expect(() => records.attachFunction(preset('Week', { IDEMPOTENCY_EXPIRES_AFTER_SECONDS: '604800' }))).toThrow(
      'IdempotencyTable.attachFunction: Preset/Week already has IDEMPOTENCY_EXPIRES_AFTER_SECONDS="604800" in its environment, which attaching would replace with the table\'s retention (1 day): give it as `attachFunction(fn, { expiresAfter: Duration.seconds(604800) })` and remove it from the environment.',
    );
    expect(() => records.attachFunction(preset('Elsewhere', { IDEMPOTENCY_TABLE: 'other-records' }))).toThrow(
      'IdempotencyTable.attachFunction: Preset/Elsewhere already has IDEMPOTENCY_TABLE="other-records" in its environment, which attaching would replace with the table Preset/Idempotency/Table (records): for records in that other table, attach the function to it (`IdempotencyTable.fromTable(scope, id, table).attachFunction(fn)`); a table the handler uses for its own work needs a variable of another name.',
    );
    // A value that is no retention the construct takes is not offered as one (Duration.seconds(0) is refused).
    expect(() => records.attachFunction(preset('Zero', { IDEMPOTENCY_EXPIRES_AFTER_SECONDS: '0' }))).toThrow(
      'already has IDEMPOTENCY_EXPIRES_AFTER_SECONDS="0" in its environment, which attaching would replace with the table\'s retention (1 day): give it as `attachFunction(fn, { expiresAfter: … })`',
    );
    // The values attaching sets anyway pass.
    const same = preset('Same', { IDEMPOTENCY_EXPIRES_AFTER_SECONDS: '86400', IDEMPOTENCY_TABLE: 'records' });
    records.attachFunction(same);
    const own = preset('Own', { IDEMPOTENCY_EXPIRES_AFTER_SECONDS: '3600' });
    records.attachFunction(own, { expiresAfter: Duration.hours(1) });
    const resources = Template.fromStack(stack).toJSON().Resources;
    const variables = (id: string) => resources[ID(stack, stack.node.findChild(id))].Properties.Environment.Variables;
    expect(['Same', 'Own'].map((id) => variables(id).IDEMPOTENCY_EXPIRES_AFTER_SECONDS)).toEqual(['86400', '3600']);
    // The refused ones were not attached: their environment as given, and no grant.
    expect([variables('Week'), variables('Elsewhere')]).toEqual([{ IDEMPOTENCY_EXPIRES_AFTER_SECONDS: '604800' }, { IDEMPOTENCY_TABLE: 'other-records' }]);
    expect(Object.keys(resources).filter((id) => /^(Week|Elsewhere).*Policy/.test(id))).toEqual([]);
  });
});

test('a retention put in the environment after attaching, which the handler would use and the checks not see, fails the synth', () => {
  const stack = new Stack(new App(), 'Overridden');
  const records = new IdempotencyTable(stack, 'Idempotency', { expiresAfter: Duration.days(7) });
  const consumer = fn(stack, 'Consumer');
  consumer.configureAsyncInvoke({ maxEventAge: Duration.minutes(1), retryAttempts: 0 });
  records.attachSqsConsumer(consumer, new Queue(stack, 'Orders', { visibilityTimeout: Duration.minutes(1) }));
  // Records kept 60 s against the queue's 4 days of redeliveries; the checks saw 7 days.
  consumer.addEnvironment('IDEMPOTENCY_EXPIRES_AFTER_SECONDS', '60');
  // Set again to the retention the construct gave it: nothing to say.
  const same = fn(stack, 'Same');
  same.configureAsyncInvoke({ maxEventAge: Duration.minutes(1), retryAttempts: 0 });
  records.attachFunction(same);
  same.addEnvironment('IDEMPOTENCY_EXPIRES_AFTER_SECONDS', String(7 * 86_400));
  // Put there through the escape hatch: CloudFormation gets it all the same.
  const hatched = fn(stack, 'Hatched');
  hatched.configureAsyncInvoke({ maxEventAge: Duration.minutes(1), retryAttempts: 0 });
  records.attachSqsConsumer(hatched, new Queue(stack, 'HatchedOrders', { visibilityTimeout: Duration.minutes(1) }));
  (hatched.node.defaultChild as CfnFunction).addPropertyOverride('Environment.Variables.IDEMPOTENCY_EXPIRES_AFTER_SECONDS', '60');
  const found = Annotations.fromStack(stack);
  found.hasError('/Overridden/Hatched', Match.stringLikeRegexp('environmentRetentionChanged.*IDEMPOTENCY_EXPIRES_AFTER_SECONDS.*60.*checked against 7 days'));
  found.hasError(
    '/Overridden/Consumer',
    Match.stringLikeRegexp('environmentRetentionChanged.*IDEMPOTENCY_EXPIRES_AFTER_SECONDS.*60.*checked against 7 days.*attachFunction.*expiresAfter'),
  );
  expect(found.findError('/Overridden/Same', Match.anyValue())).toEqual([]);
});

test('a table put in the environment after attaching, which the store would use without a grant, fails the synth naming both tables', () => {
  const stack = new Stack(new App(), 'TableOverridden');
  const records = new IdempotencyTable(stack, 'Idempotency', { tableName: 'records' });
  const other = new Table(stack, 'Other', { partitionKey: { name: 'id', type: AttributeType.STRING } });
  const renamed = fn(stack, 'Renamed');
  records.attachFunction(renamed);
  renamed.addEnvironment('IDEMPOTENCY_TABLE', 'legacy-records');
  const referenced = fn(stack, 'Referenced');
  records.attachFunction(referenced);
  referenced.addEnvironment('IDEMPOTENCY_TABLE', other.tableName);
  // The same table, by its reference, its literal name or its ARN: nothing to say.
  for (const [id, value] of [
    ['Same', records.table.tableName],
    ['Literal', 'records'],
    ['Arn', records.table.tableArn],
  ] as const) {
    const same = fn(stack, id);
    records.attachFunction(same);
    same.addEnvironment('IDEMPOTENCY_TABLE', value);
  }
  const found = Annotations.fromStack(stack);
  found.hasError(
    '/TableOverridden/Renamed',
    Match.stringLikeRegexp(
      '^\\[lambda-idempotency:environmentTableChanged\\] TableOverridden/Renamed has IDEMPOTENCY_TABLE="legacy-records" in its environment, set after it was attached to the table TableOverridden/Idempotency/Table \\(records\\): .*AccessDenied.*Remove the `addEnvironment\\(\'IDEMPOTENCY_TABLE\', …\\)` call.*IdempotencyTable.fromTable\\(scope, id, table\\).attachFunction\\(fn\\)',
    ),
  );
  found.hasError('/TableOverridden/Referenced', Match.stringLikeRegexp(`environmentTableChanged.*IDEMPOTENCY_TABLE=\\{"Ref":"${ID(stack, other)}"\\}`));
  for (const id of ['Same', 'Literal', 'Arn']) expect(found.findError(`/TableOverridden/${id}`, Match.anyValue())).toEqual([]);
});

test("a table of another account keeps its ARN in the environment: its bare name, which would mean a table of the function's account, fails the synth", () => {
  const stack = new Stack(new App(), 'ArnOverridden', { env: { account: '111111111111', region: 'eu-west-1' } });
  const records = IdempotencyTable.fromTable(
    stack,
    'Idempotency',
    Table.fromTableArn(stack, 'Shared', 'arn:aws:dynamodb:eu-west-1:222222222222:table/records'),
  );
  const byName = fn(stack, 'ByName');
  records.attachFunction(byName);
  byName.addEnvironment('IDEMPOTENCY_TABLE', 'records');
  const byArn = fn(stack, 'ByArn');
  records.attachFunction(byArn);
  byArn.addEnvironment('IDEMPOTENCY_TABLE', 'arn:aws:dynamodb:eu-west-1:222222222222:table/records');
  const found = Annotations.fromStack(stack);
  found.hasError('/ArnOverridden/ByName', Match.stringLikeRegexp('environmentTableChanged.*IDEMPOTENCY_TABLE="records"'));
  expect(found.findError('/ArnOverridden/ByArn', Match.anyValue())).toEqual([]);
});

test('a table imported by the ARN of an account, attached to a function of a stack whose account is known only at deploy, is named by its ARN: its bare name would mean a table of whichever account the function is deployed to', () => {
  const arn = 'arn:aws:dynamodb:eu-west-1:222222222222:table/records';
  for (const env of [undefined, { region: 'eu-west-1' }]) {
    const stack = new Stack(new App(), 'AgnosticFunction', env === undefined ? {} : { env });
    const records = IdempotencyTable.fromTable(stack, 'Idempotency', Table.fromTableArn(stack, 'Shared', arn));
    records.attachFunction(fn(stack, 'Handler'));
    const template = Template.fromStack(stack);
    template.hasResourceProperties('AWS::Lambda::Function', { Environment: { Variables: Match.objectLike({ IDEMPOTENCY_TABLE: arn }) } });
    expect(Annotations.fromStack(stack).findError('*', Match.anyValue())).toEqual([]);
  }
  // A table of the function's own stack keeps its name: one account, whichever it is.
  const stack = new Stack(new App(), 'AgnosticBoth');
  const own = new IdempotencyTable(stack, 'Idempotency');
  own.attachFunction(fn(stack, 'Handler'));
  Template.fromStack(stack).hasResourceProperties('AWS::Lambda::Function', {
    Environment: { Variables: Match.objectLike({ IDEMPOTENCY_TABLE: { Ref: Match.stringLikeRegexp('^IdempotencyTable') } }) },
  });
});

test("settings an app's own aspects make, on constructs defined after the table too, are the ones checked", () => {
  const app = new App();
  const stack = new Stack(app, 'Aspected');
  const records = new IdempotencyTable(stack, 'Idempotency', { expiresAfter: Duration.days(5) });
  const consumer = fn(stack, 'Consumer');
  consumer.configureAsyncInvoke({ maxEventAge: Duration.minutes(1), retryAttempts: 0 });
  records.attachSqsConsumer(consumer, new Queue(stack, 'Orders', { visibilityTimeout: Duration.minutes(1) }));
  // A company-wide rule: every queue keeps messages 14 days, which outlives the records' 5 days.
  Aspects.of(app).add({
    visit: (node) => {
      if (node instanceof CfnQueue) node.messageRetentionPeriod = 14 * 86_400;
    },
  });
  Annotations.fromStack(stack).hasError(
    '/Aspected/Consumer',
    Match.stringLikeRegexp('retentionShorterThanRedelivery.*kept 5 days.*Aspected/Orders .*for 14 days'),
  );
});

test('settings changed through the escape hatch (addPropertyOverride, addPropertyDeletionOverride) are the ones checked: they are what CloudFormation gets', () => {
  const stack = new Stack(new App(), 'Overridden');
  const records = new IdempotencyTable(stack, 'Idempotency', { expiresAfter: Duration.hours(7) });
  const quiet = (id: string, timeout?: Duration) => {
    const consumer = fn(stack, id, timeout);
    consumer.configureAsyncInvoke({ maxEventAge: Duration.hours(1), retryAttempts: 0 });
    return consumer;
  };
  const cfn = <T>(construct: { node: { defaultChild?: unknown } }) => construct.node.defaultChild as T;
  // A queue whose retention is raised to 14 days by an override, beyond the 7 h of records.
  const longRetention = new Queue(stack, 'LongRetention', { retentionPeriod: Duration.hours(1), visibilityTimeout: Duration.minutes(1) });
  cfn<CfnQueue>(longRetention).addPropertyOverride('MessageRetentionPeriod', 14 * 86_400);
  records.attachSqsConsumer(quiet('LongRetentionConsumer'), longRetention);
  // A dead-letter queue's receive count raised by an override: 100 × 15 min = 25 h of redeliveries.
  const dlq = new Queue(stack, 'Dlq');
  const manyReceives = new Queue(stack, 'ManyReceives', { visibilityTimeout: Duration.minutes(15), deadLetterQueue: { queue: dlq, maxReceiveCount: 3 } });
  cfn<CfnQueue>(manyReceives).addPropertyOverride('RedrivePolicy.maxReceiveCount', 100);
  records.attachSqsConsumer(quiet('ManyReceivesConsumer'), manyReceives);
  // A function timeout raised by an override beyond the queue's visibility timeout.
  const slow = quiet('SlowConsumer');
  cfn<CfnFunction>(slow).addPropertyOverride('Timeout', 300);
  records.attachSqsConsumer(slow, new Queue(stack, 'Fast', { retentionPeriod: Duration.hours(1), visibilityTimeout: Duration.minutes(1) }));
  // A visibility timeout lowered by an override below the function timeout.
  const lowered = new Queue(stack, 'Lowered', { retentionPeriod: Duration.hours(1), visibilityTimeout: Duration.minutes(5) });
  cfn<CfnQueue>(lowered).addPropertyOverride('VisibilityTimeout', 5);
  records.attachSqsConsumer(quiet('LoweredConsumer'), lowered);
  // A stream source's record age limit removed by an override: retried for the stream's 7 days.
  const events = new Stream(stack, 'Events', { retentionPeriod: Duration.days(7) });
  const reader = quiet('StreamConsumer');
  records.attachFunction(reader);
  const source = new KinesisEventSource(events, { startingPosition: StartingPosition.LATEST, reportBatchItemFailures: true, maxRecordAge: Duration.hours(1) });
  reader.addEventSource(source);
  cfn<CfnEventSourceMapping>(stack.node.findAll().find((c) => c instanceof EventSourceMapping && c.node.scope === reader)!).addPropertyDeletionOverride(
    'MaximumRecordAgeInSeconds',
  );
  // Async-invoke retries whose age is raised by an override beyond the function's records.
  const late = fn(stack, 'AsyncFunction');
  late.configureAsyncInvoke({ maxEventAge: Duration.hours(1), retryAttempts: 2 });
  records.attachFunction(late, { expiresAfter: Duration.hours(2) });
  cfn<CfnEventInvokeConfig>(late.node.findChild('EventInvokeConfig')).addPropertyOverride('MaximumEventAgeInSeconds', 6 * 3_600);
  // Async-invoke retries turned on by an override: retried for 6 h against records kept 2 h.
  const retried = fn(stack, 'RetriedFunction');
  retried.configureAsyncInvoke({ maxEventAge: Duration.hours(6), retryAttempts: 0 });
  records.attachFunction(retried, { expiresAfter: Duration.hours(2) });
  cfn<CfnEventInvokeConfig>(retried.node.findChild('EventInvokeConfig')).addPropertyOverride('MaximumRetryAttempts', 2);
  // Batch item failures reporting removed by an override: Lambda would ignore the batch helper's failures.
  const unreported = quiet('UnreportedConsumer');
  records.attachSqsConsumer(unreported, new Queue(stack, 'Unreported', { retentionPeriod: Duration.hours(1), visibilityTimeout: Duration.minutes(1) }));
  cfn<CfnEventSourceMapping>(stack.node.findAll().find((c) => c instanceof EventSourceMapping && c.node.scope === unreported)!).addPropertyDeletionOverride(
    'FunctionResponseTypes',
  );
  // … or emptied by one: a list without ReportBatchItemFailures reports nothing either.
  const emptied = quiet('EmptiedConsumer');
  records.attachSqsConsumer(emptied, new Queue(stack, 'Emptied', { retentionPeriod: Duration.hours(1), visibilityTimeout: Duration.minutes(1) }));
  cfn<CfnEventSourceMapping>(stack.node.findAll().find((c) => c instanceof EventSourceMapping && c.node.scope === emptied)!).addPropertyOverride(
    'FunctionResponseTypes',
    [],
  );
  const found = Annotations.fromStack(stack);
  found.hasError('/Overridden/UnreportedConsumer', Match.stringLikeRegexp('noBatchItemFailures'));
  found.hasError('/Overridden/EmptiedConsumer', Match.stringLikeRegexp('noBatchItemFailures'));
  found.hasError(
    '/Overridden/LongRetentionConsumer',
    Match.stringLikeRegexp('retentionShorterThanRedelivery.*kept 7 h.*Overridden/LongRetention .*for 14 days'),
  );
  found.hasError('/Overridden/ManyReceivesConsumer', Match.stringLikeRegexp('retentionShorterThanRedelivery.*for 25 h.*100 receives × 15 min'));
  found.hasError('/Overridden/SlowConsumer', Match.stringLikeRegexp('visibilityBelowTimeout.*1 min.*function timeout \\(5 min\\)'));
  found.hasError('/Overridden/LoweredConsumer', Match.stringLikeRegexp('visibilityBelowTimeout.*of 5 s.*function timeout \\(10 s\\)'));
  found.hasError('/Overridden/StreamConsumer', Match.stringLikeRegexp('retentionShorterThanStreamRetries.*kept 7 h.*for 7 days'));
  found.hasError('/Overridden/AsyncFunction', Match.stringLikeRegexp('asyncRetriesOutliveRecords.*6 h.*2 h'));
  found.hasError('/Overridden/RetriedFunction', Match.stringLikeRegexp('asyncRetriesOutliveRecords.*6 h.*2 h'));
});

test("an event source's maximum concurrency, or one created disabled, leaves a backlog unreceived: a queue with a dead-letter queue can redeliver until its retention period ends, a warning", () => {
  const stack = new Stack(new App(), 'Backlog');
  const records = new IdempotencyTable(stack, 'Idempotency', { expiresAfter: Duration.hours(1) });
  const wire = (id: string, queueProps: QueueProps, props: { maxConcurrency?: number; enabled?: boolean } = {}) => {
    const consumer = fn(stack, id);
    consumer.configureAsyncInvoke({ maxEventAge: Duration.hours(1), retryAttempts: 0 });
    const dlq = new Queue(stack, `${id}Dlq`);
    records.attachSqsConsumer(
      consumer,
      new Queue(stack, `${id}Queue`, { visibilityTimeout: Duration.minutes(1), ...queueProps, deadLetterQueue: { queue: dlq, maxReceiveCount: 3 } }),
      props,
    );
    return consumer;
  };
  wire('Limited', {}, { maxConcurrency: 2 });
  wire('Unlimited', {});
  wire('LimitedShortRetention', { retentionPeriod: Duration.hours(1) }, { maxConcurrency: 2 });
  // Disabled, the event source receives nothing until it is enabled; also when an escape hatch disables it.
  wire('Disabled', {}, { enabled: false });
  wire('Enabled', {}, { enabled: true });
  wire('DisabledShortRetention', { retentionPeriod: Duration.hours(1) }, { enabled: false });
  const overridden = wire('DisabledByOverride', {})
    .node.findAll()
    .find((c) => c instanceof CfnEventSourceMapping);
  (overridden as CfnEventSourceMapping).addPropertyOverride('Enabled', false);
  const found = Annotations.fromStack(stack);
  found.hasWarning(
    '/Backlog/Limited',
    Match.stringLikeRegexp(
      'LimitedQueue feeds.*maximum concurrency.*within the queue.s retention period \\(4 days\\).*3 receives × 1 min.*kept 1 h.*backlogOutlivesRecords',
    ),
  );
  for (const id of ['Disabled', 'DisabledByOverride']) {
    found.hasWarning(
      `/Backlog/${id}`,
      Match.stringLikeRegexp(
        `${id}Queue feeds.*is disabled.*within the queue.s retention period \\(4 days\\).*3 receives × 1 min.*kept 1 h.*backlogOutlivesRecords`,
      ),
    );
  }
  for (const id of ['Unlimited', 'LimitedShortRetention', 'Enabled', 'DisabledShortRetention'])
    expect(found.findWarning(`/Backlog/${id}`, Match.stringLikeRegexp('lambda-idempotency'))).toEqual([]);
  expect(found.findError('*', Match.anyValue())).toEqual([]);
});

test('what the checks cannot see is a warning, not a pass: a queue named only by its ARN, a function timeout known at deploy time, unqualified async invocations beside an alias', () => {
  const stack = new Stack(new App(), 'Unseen');
  const records = new IdempotencyTable(stack, 'Idempotency', { expiresAfter: Duration.hours(1) });
  // A mapping to a queue of another stack or account, named by its ARN: no Queue construct to read.
  const byArn = fn(stack, 'ByArn');
  byArn.configureAsyncInvoke({ maxEventAge: Duration.minutes(1), retryAttempts: 0 });
  records.attachFunction(byArn);
  new EventSourceMapping(stack, 'OrdersByArn', { target: byArn, eventSourceArn: 'arn:aws:sqs:eu-west-1:123456789012:orders', reportBatchItemFailures: true });
  // A mapping to a queue whose ARN is known at deploy time only (an export of another stack).
  const byImport = fn(stack, 'ByImport');
  byImport.configureAsyncInvoke({ maxEventAge: Duration.minutes(1), retryAttempts: 0 });
  records.attachFunction(byImport);
  new EventSourceMapping(stack, 'OrdersByImport', { target: byImport, eventSourceArn: Fn.importValue('OrdersQueueArn'), reportBatchItemFailures: true });
  // A function timeout from a parameter: 6 × it cannot be compared with the visibility timeout.
  const timeout = new CfnParameter(stack, 'Timeout', { type: 'Number' });
  const tokenTimeout = fn(stack, 'TokenTimeout', Duration.seconds(timeout.valueAsNumber));
  tokenTimeout.configureAsyncInvoke({ maxEventAge: Duration.minutes(1), retryAttempts: 0 });
  const dlq = new Queue(stack, 'Dlq');
  records.attachSqsConsumer(
    tokenTimeout,
    new Queue(stack, 'Short', { visibilityTimeout: Duration.seconds(30), deadLetterQueue: { queue: dlq, maxReceiveCount: 2 } }),
  );
  // Async retries bounded on an alias only: an unqualified invocation keeps the 6 h default.
  const aliased = fn(stack, 'Aliased');
  records.attachFunction(aliased);
  new Alias(stack, 'Live', { aliasName: 'live', version: aliased.currentVersion }).configureAsyncInvoke({ maxEventAge: Duration.hours(1) });
  const found = Annotations.fromStack(stack);
  found.hasWarning('/Unseen/ByArn', Match.stringLikeRegexp('Unseen/OrdersByArn.*not defined in this app.*queueNotChecked'));
  found.hasWarning('/Unseen/ByImport', Match.stringLikeRegexp('Unseen/OrdersByImport.*not defined in this app.*queueNotChecked'));
  found.hasWarning('/Unseen/TokenTimeout', Match.stringLikeRegexp('Unseen/Short.*function timeout.*known only at deploy time.*queueNotChecked'));
  found.hasWarning('/Unseen/Aliased', Match.stringLikeRegexp('kept 1 h.*unqualified.*up to 6 h by default.*asyncRetriesUnchecked'));
});

test('async-invoke settings known only at deploy time are a warning, not a pass; an age within the retention needs no other, a zero retry count does', () => {
  const stack = new Stack(new App(), 'AsyncTokens');
  const records = new IdempotencyTable(stack, 'Idempotency', { expiresAfter: Duration.hours(1) });
  const age = new CfnParameter(stack, 'Age', { type: 'Number' });
  const retries = new CfnParameter(stack, 'Retries', { type: 'Number' });
  // Retried twice, for an age set at deploy time: perhaps 6 h, against records kept 1 h.
  const tokenAge = fn(stack, 'TokenAge');
  tokenAge.configureAsyncInvoke({ maxEventAge: Duration.seconds(age.valueAsNumber), retryAttempts: 2 });
  records.attachFunction(tokenAge);
  // A retry count set at deploy time, with the default 6 h age.
  const tokenRetries = fn(stack, 'TokenRetries');
  tokenRetries.configureAsyncInvoke({ retryAttempts: retries.valueAsNumber });
  records.attachFunction(tokenRetries);
  // An age within the retention settles it; no retries does not: a throttled event runs until its age ends.
  const noRetries = fn(stack, 'NoRetries');
  noRetries.configureAsyncInvoke({ maxEventAge: Duration.seconds(age.valueAsNumber), retryAttempts: 0 });
  records.attachFunction(noRetries);
  const shortAge = fn(stack, 'ShortAge');
  shortAge.configureAsyncInvoke({ maxEventAge: Duration.minutes(30), retryAttempts: retries.valueAsNumber });
  records.attachFunction(shortAge);
  const found = Annotations.fromStack(stack);
  found.hasWarning('/AsyncTokens/TokenAge', Match.stringLikeRegexp('AsyncTokens/TokenAge.*known only at deploy time.*kept 1 h.*asyncRetriesUnchecked'));
  found.hasWarning('/AsyncTokens/TokenRetries', Match.stringLikeRegexp('AsyncTokens/TokenRetries.*known only at deploy time.*kept 1 h.*asyncRetriesUnchecked'));
  found.hasWarning('/AsyncTokens/NoRetries', Match.stringLikeRegexp('AsyncTokens/NoRetries.*known only at deploy time.*kept 1 h.*asyncRetriesUnchecked'));
  expect(found.findWarning('/AsyncTokens/ShortAge', Match.anyValue())).toEqual([]);
  for (const quiet of ['NoRetries', 'ShortAge']) expect(found.findError(`/AsyncTokens/${quiet}`, Match.anyValue())).toEqual([]);
  expect(found.findError('*', Match.anyValue())).toEqual([]);
});

test("retry settings known only at deploy time are a warning that says what could not be checked, not a pass and not an error: a stream source's record age or retry count, a queue's visibility timeout or receive count", () => {
  const stack = new Stack(new App(), 'RetryTokens');
  const records = new IdempotencyTable(stack, 'Idempotency', { expiresAfter: Duration.hours(1) });
  const orders = new Table(stack, 'Orders', { partitionKey: { name: 'pk', type: AttributeType.STRING }, stream: StreamViewType.NEW_IMAGE });
  const events = new Stream(stack, 'Events', { retentionPeriod: Duration.days(7) });
  const age = new CfnParameter(stack, 'Age', { type: 'Number' });
  const retries = new CfnParameter(stack, 'Retries', { type: 'Number' });
  const failed = new Queue(stack, 'FailedBatches');
  const consumer = (id: string, expiresAfter?: Duration) => {
    const handler = fn(stack, id);
    handler.configureAsyncInvoke({ maxEventAge: Duration.minutes(1), retryAttempts: 0 }); // only the event source's retries matter here
    records.attachFunction(handler, expiresAfter === undefined ? {} : { expiresAfter });
    return handler;
  };
  const mapping = (
    id: string,
    eventSourceArn: string,
    settings: { maximumRecordAgeInSeconds?: number; maximumRetryAttempts?: number },
    expiresAfter?: Duration,
  ) =>
    new CfnEventSourceMapping(stack, `${id}Mapping`, {
      functionName: consumer(id, expiresAfter).functionName,
      eventSourceArn,
      startingPosition: 'TRIM_HORIZON',
      functionResponseTypes: ['ReportBatchItemFailures'],
      destinationConfig: { onFailure: { destination: failed.queueArn } },
      ...settings,
    });
  // A record age from a parameter: perhaps 1 min, perhaps 7 days, against records kept 1 h.
  mapping('DynamoAge', orders.tableStreamArn!, { maximumRecordAgeInSeconds: age.valueAsNumber });
  mapping('KinesisAge', events.streamArn, { maximumRecordAgeInSeconds: age.valueAsNumber, maximumRetryAttempts: 10 });
  mapping('ImportedAge', 'arn:aws:kinesis:eu-west-1:123456789012:stream/events', { maximumRecordAgeInSeconds: age.valueAsNumber });
  // A retry count from a parameter, retried until the stream drops the records: perhaps never retried.
  consumer('DynamoRetries').addEventSource(
    new DynamoEventSource(orders, {
      startingPosition: StartingPosition.TRIM_HORIZON,
      reportBatchItemFailures: true,
      onFailure: new SqsDlq(failed),
      retryAttempts: retries.valueAsNumber,
    }),
  );
  // A known setting that settles it: no retries, or a stream that drops records before they expire.
  mapping('NoRetries', orders.tableStreamArn!, { maximumRecordAgeInSeconds: age.valueAsNumber, maximumRetryAttempts: 0 });
  mapping('WeekLong', events.streamArn, { maximumRecordAgeInSeconds: age.valueAsNumber }, Duration.days(7));
  // A queue's visibility timeout or receive count from a parameter.
  const dlq = new Queue(stack, 'Dlq');
  records.attachSqsConsumer(
    consumer('QueueVisibility'),
    new Queue(stack, 'VisibilityQueue', { visibilityTimeout: Duration.seconds(age.valueAsNumber), deadLetterQueue: { queue: dlq, maxReceiveCount: 2 } }),
  );
  records.attachSqsConsumer(
    consumer('QueueReceives'),
    new Queue(stack, 'ReceivesQueue', { visibilityTimeout: Duration.minutes(1), deadLetterQueue: { queue: dlq, maxReceiveCount: retries.valueAsNumber } }),
  );
  const found = Annotations.fromStack(stack);
  for (const id of ['DynamoAge', 'KinesisAge', 'ImportedAge']) {
    found.hasWarning(
      `/RetryTokens/${id}`,
      Match.stringLikeRegexp(`RetryTokens/${id}Mapping .*\`maxRecordAge\` known only at deploy time.*kept 1 h.*streamNotChecked`),
    );
  }
  found.hasWarning('/RetryTokens/DynamoRetries', Match.stringLikeRegexp('`retryAttempts` known only at deploy time.*kept 1 h.*streamNotChecked'));
  // Never "sets no maxRecordAge", nor "retries until the stream drops its records": it sets an age, unknown here.
  for (const id of ['DynamoAge', 'KinesisAge', 'ImportedAge']) {
    expect(found.findWarning(`/RetryTokens/${id}`, Match.stringLikeRegexp('streamRetriesUntilDropped'))).toEqual([]);
  }
  expect(found.findWarning('/RetryTokens/ImportedAge', Match.stringLikeRegexp('sets no'))).toEqual([]);
  for (const quiet of ['NoRetries', 'WeekLong']) {
    expect(found.findWarning(`/RetryTokens/${quiet}`, Match.stringLikeRegexp('streamNotChecked'))).toEqual([]);
  }
  found.hasWarning(
    '/RetryTokens/QueueVisibility',
    Match.stringLikeRegexp('VisibilityQueue has a retention period, visibility timeout or redrive policy known only at deploy time.*queueNotChecked'),
  );
  found.hasWarning(
    '/RetryTokens/QueueReceives',
    Match.stringLikeRegexp('ReceivesQueue has a retention period, visibility timeout or redrive policy known only at deploy time.*queueNotChecked'),
  );
  expect(found.findError('*', Match.anyValue())).toEqual([]);
});

test('an alias, a version or an imported function given as the function is refused with a sentence that names what to attach, and nothing is attached', () => {
  const stack = new Stack(new App(), 'NotAFunction');
  const records = new IdempotencyTable(stack, 'Idempotency');
  const handler = fn(stack, 'Handler');
  const alias = new Alias(stack, 'Live', { aliasName: 'live', version: handler.currentVersion });
  const imported = LambdaFunction.fromFunctionName(stack, 'Imported', 'payments');
  const refusal =
    /^IdempotencyTable\.attachFunction: `fn` must be a lambda\.Function defined in this app.*attach the function itself.*give its role to grantRecordAccess \(the role itself, or the function imported with fromFunctionAttributes/;
  for (const target of [alias, handler.currentVersion, imported, undefined]) {
    expect(() => records.attachFunction(target as never)).toThrow(refusal);
  }
  expect(() => records.attachSqsConsumer(alias as never, new Queue(stack, 'Orders'))).toThrow(refusal);
  // The function itself attaches, and the alias's event sources are checked with it.
  records.attachFunction(handler);
  expect(Template.fromStack(stack).findResources('AWS::Lambda::EventSourceMapping')).toEqual({});
});

test('a SingletonFunction is attached as the one function of its uuid: its environment and timeout are checked, and its handles share one table', () => {
  const stack = new Stack(new App(), 'Singleton');
  const records = new IdempotencyTable(stack, 'Idempotency', { expiresAfter: Duration.hours(1) });
  const singleton = () => new SingletonFunction(stack, `Handle${stack.node.children.length}`, { ...fnProps(Duration.minutes(2)), uuid: 'payments' });
  const dlq = new Queue(stack, 'Dlq');
  records.attachSqsConsumer(
    singleton(),
    new Queue(stack, 'Orders', { visibilityTimeout: Duration.seconds(30), deadLetterQueue: { queue: dlq, maxReceiveCount: 2 } }),
  );
  // Another handle is the same function: its environment cannot name two tables.
  expect(() => new IdempotencyTable(stack, 'Other').attachFunction(singleton())).toThrow(/already attached to Singleton\/Idempotency/);
  Template.fromStack(stack).hasResourceProperties('AWS::Lambda::Function', {
    Timeout: 120,
    Environment: { Variables: { IDEMPOTENCY_TABLE: Match.anyValue(), IDEMPOTENCY_EXPIRES_AFTER_SECONDS: '3600' } },
  });
  const annotations = Annotations.fromStack(stack);
  // The retention it was given is the one in its environment.
  expect(annotations.findError('*', Match.stringLikeRegexp('environmentRetentionChanged'))).toEqual([]);
  // Its timeout is the function's 2 min, not the default 3 s.
  annotations.hasError(
    '/Singleton/SingletonLambdapayments',
    Match.stringLikeRegexp('visibilityBelowTimeout.*visibility timeout of 30 s, shorter than the function timeout \\(2 min\\)'),
  );
});

test('a function deployed under its own name is found by it: event sources and async-invoke settings that another stack wires on it by name or ARN are checked like its own', () => {
  const app = new App();
  const env = { account: '111111111111', region: 'eu-west-1' };
  const payments = new Stack(app, 'Payments', { env });
  const records = new IdempotencyTable(payments, 'Idempotency', { expiresAfter: Duration.hours(1) });
  records.attachFunction(new LambdaFunction(payments, 'Handler', { ...fnProps(), functionName: 'payments' }));
  const wiring = new Stack(app, 'Wiring', { env });
  const queue = (id: string) => new Queue(wiring, id, { visibilityTimeout: Duration.seconds(5), retentionPeriod: Duration.hours(1) });
  LambdaFunction.fromFunctionName(wiring, 'ByName', 'payments').addEventSource(new SqsEventSource(queue('Orders')));
  LambdaFunction.fromFunctionArn(wiring, 'ByAliasArn', 'arn:aws:lambda:eu-west-1:111111111111:function:payments:live').addEventSource(
    new SqsEventSource(queue('Refunds'), { reportBatchItemFailures: true }),
  );
  LambdaFunction.fromFunctionName(wiring, 'Async', 'payments').configureAsyncInvoke({ maxEventAge: Duration.hours(6) });
  // The same name in another account is another function.
  new CfnEventSourceMapping(wiring, 'Elsewhere', {
    functionName: 'arn:aws:lambda:eu-west-1:222222222222:function:payments',
    eventSourceArn: queue('Other').queueArn,
  });
  // And in another Region.
  new CfnEventSourceMapping(wiring, 'ElsewhereRegion', {
    functionName: 'arn:aws:lambda:us-east-1:111111111111:function:payments',
    eventSourceArn: queue('OtherRegion').queueArn,
  });
  Template.fromStack(wiring);
  const annotations = Annotations.fromStack(payments);
  annotations.hasError('/Payments/Handler', Match.stringLikeRegexp('noBatchItemFailures.*Wiring/ByName/SqsEventSource'));
  annotations.hasError('/Payments/Handler', Match.stringLikeRegexp('visibilityBelowTimeout.*queue Wiring/Orders'));
  annotations.hasError('/Payments/Handler', Match.stringLikeRegexp('visibilityBelowTimeout.*queue Wiring/Refunds'));
  annotations.hasError('/Payments/Handler', Match.stringLikeRegexp('asyncRetriesOutliveRecords.*retries asynchronous events for up to 6 h'));
  expect(annotations.findError('/Payments/Handler', Match.stringLikeRegexp('Wiring/(Other|Elsewhere)'))).toEqual([]);
  expect(annotations.findError('/Payments/Handler', Match.stringLikeRegexp('noBatchItemFailures.*Wiring/ByAliasArn'))).toEqual([]);
});

test('a function imported by its generated name or ARN (fromFunctionArn(fn.functionArn), fromFunctionName(fn.functionName)), in its stack or another, is the function: event sources and async-invoke settings wired on the import are checked like its own', () => {
  const app = new App();
  const payments = new Stack(app, 'Payments');
  const records = new IdempotencyTable(payments, 'Idempotency', { expiresAfter: Duration.hours(1) });
  const handler = fn(payments, 'Handler');
  records.attachFunction(handler);
  // Queues keeping messages 4 days without a dead-letter queue, wired without reportBatchItemFailures.
  const wire = (imported: IFunction, queueScope: Stack, id: string) => imported.addEventSource(new SqsEventSource(new Queue(queueScope, id)));
  wire(LambdaFunction.fromFunctionArn(payments, 'ByArn', handler.functionArn), payments, 'Orders');
  wire(LambdaFunction.fromFunctionName(payments, 'ByName', handler.functionName), payments, 'Refunds');
  LambdaFunction.fromFunctionAttributes(payments, 'Async', { functionArn: handler.functionArn, sameEnvironment: true }).configureAsyncInvoke({
    maxEventAge: Duration.hours(6),
  });
  const wiring = new Stack(app, 'Wiring');
  wire(LambdaFunction.fromFunctionArn(wiring, 'ByArn', handler.functionArn), wiring, 'Invoices');
  wire(LambdaFunction.fromFunctionName(wiring, 'ByName', handler.functionName), wiring, 'Receipts');
  // Another stack's own function of the same construct id (so the same logical id) is another function.
  const own = fn(wiring, 'Handler');
  wire(LambdaFunction.fromFunctionArn(wiring, 'OwnByArn', own.functionArn), wiring, 'Own');
  Template.fromStack(wiring);
  const found = Annotations.fromStack(payments);
  for (const [mapping, queue] of [
    ['Payments/ByArn', 'Payments/Orders'],
    ['Payments/ByName', 'Payments/Refunds'],
    ['Wiring/ByArn', 'Wiring/Invoices'],
    ['Wiring/ByName', 'Wiring/Receipts'],
  ]) {
    found.hasError('/Payments/Handler', Match.stringLikeRegexp(`noBatchItemFailures.*${mapping}/SqsEventSource`));
    found.hasError('/Payments/Handler', Match.stringLikeRegexp(`retentionShorterThanRedelivery.*${queue} .*for 4 days`));
  }
  found.hasError('/Payments/Handler', Match.stringLikeRegexp('asyncRetriesOutliveRecords.*retries asynchronous events for up to 6 h'));
  expect(found.findError('/Payments/Handler', Match.stringLikeRegexp('Wiring/Own'))).toEqual([]);
});

test("a function of another stack that imports nothing of the attached function's stack is another function, though its logical id is the same: its event sources, by ARN with a qualifier or not, are not the attached function's", () => {
  const app = new App();
  const payments = new Stack(app, 'Payments');
  const records = new IdempotencyTable(payments, 'Idempotency', { expiresAfter: Duration.hours(1) });
  records.attachFunction(fn(payments, 'Handler'));
  const unrelated = new Stack(app, 'Unrelated');
  const theirs = fn(unrelated, 'Handler');
  // Queues keeping messages 4 days without a dead-letter queue, wired without reportBatchItemFailures.
  LambdaFunction.fromFunctionArn(unrelated, 'ByArn', theirs.functionArn).addEventSource(new SqsEventSource(new Queue(unrelated, 'Orders')));
  new CfnEventSourceMapping(unrelated, 'Live', { functionName: `${theirs.functionArn}:live`, eventSourceArn: new Queue(unrelated, 'Refunds').queueArn });
  Template.fromStack(unrelated);
  expect(Annotations.fromStack(payments).findError('/Payments/Handler', Match.anyValue())).toEqual([]);
});

test('sources the batch helper refuses (Kafka, Amazon MQ, DocumentDB) are not held to its settings: no error a user could not fix', () => {
  const stack = new Stack(new App(), 'Others');
  const records = new IdempotencyTable(stack, 'Idempotency');
  const consumer = fn(stack, 'Consumer');
  records.attachFunction(consumer);
  new CfnEventSourceMapping(stack, 'Changes', {
    functionName: consumer.functionName,
    eventSourceArn: 'arn:aws:rds:eu-west-1:123456789012:cluster:orders',
    startingPosition: 'LATEST',
    documentDbEventSourceConfig: { databaseName: 'orders', collectionName: 'payments' },
  });
  new CfnEventSourceMapping(stack, 'Topic', {
    functionName: consumer.functionName,
    eventSourceArn: 'arn:aws:kafka:eu-west-1:123456789012:cluster/orders/abc',
    startingPosition: 'LATEST',
    topics: ['payments'],
  });
  new CfnEventSourceMapping(stack, 'Broker', {
    functionName: consumer.functionName,
    eventSourceArn: 'arn:aws:mq:eu-west-1:123456789012:broker:orders:b-1234a5b6-78cd-901e-2fgh-3i45j6k178l9',
    queues: ['payments'],
  });
  const found = Annotations.fromStack(stack);
  found.hasNoError('/Others/Consumer', Match.anyValue());
  found.hasNoWarning('/Others/Consumer', Match.stringLikeRegexp('streamNotChecked|streamWithoutOnFailure|queueNotChecked'));
});

test("one queue's batching window is not counted against another queue of the same function", () => {
  const stack = new Stack(new App(), 'Windows');
  const table = new IdempotencyTable(stack, 'Idempotency');
  const fine = { deadLetterQueue: { queue: new Queue(stack, 'Dlq'), maxReceiveCount: 3 } };
  const consumer = fn(stack, 'Consumer');
  // 6 × 10 s + 1 min, and 6 × 10 s: each queue's visibility timeout is just enough for its own mapping.
  table.attachSqsConsumer(consumer, new Queue(stack, 'Windowed', { ...fine, visibilityTimeout: Duration.minutes(2) }), {
    maxBatchingWindow: Duration.minutes(1),
  });
  table.attachSqsConsumer(consumer, new Queue(stack, 'Immediate', { ...fine, visibilityTimeout: Duration.minutes(1) }));
  const found = Annotations.fromStack(stack);
  found.hasNoWarning('/Windows/Consumer', Match.stringLikeRegexp('lambda-idempotency'));
  found.hasNoError('/Windows/Consumer', Match.anyValue());
});

test("a batching window known only at deploy time is said: the queue's visibility timeout is checked without it", () => {
  const stack = new Stack(new App(), 'WindowToken');
  const table = new IdempotencyTable(stack, 'Idempotency');
  const queue = new Queue(stack, 'Orders', { visibilityTimeout: Duration.minutes(1), deadLetterQueue: { queue: new Queue(stack, 'Dlq'), maxReceiveCount: 3 } });
  const consumer = fn(stack, 'Consumer');
  table.attachFunction(consumer);
  new CfnEventSourceMapping(stack, 'Mapping', {
    functionName: consumer.functionName,
    eventSourceArn: queue.queueArn,
    functionResponseTypes: ['ReportBatchItemFailures'],
    maximumBatchingWindowInSeconds: Token.asNumber(Fn.importValue('BatchingWindow')),
  });
  const found = Annotations.fromStack(stack);
  found.hasWarning('/WindowToken/Consumer', Match.stringLikeRegexp('WindowToken/Orders .*batching window is known only at deploy time.*queueNotChecked'));
  found.hasNoError('/WindowToken/Consumer', Match.anyValue());
});

test('an on-failure destination known only at deploy time counts as one, whichever part of it is a token', () => {
  const stack = new Stack(new App(), 'DeployTime');
  const records = new IdempotencyTable(stack, 'Idempotency', { expiresAfter: Duration.days(7) });
  const events = new Stream(stack, 'Events', { retentionPeriod: Duration.days(1) });
  const consumer = fn(stack, 'Consumer');
  records.attachFunction(consumer);
  const onFailure = { destination: Fn.importValue('FailedBatchesArn') };
  const configs: Array<[string, CfnEventSourceMapping.DestinationConfigProperty | IResolvable | undefined]> = [
    ['Whole', Lazy.any({ produce: () => ({ onFailure }) })],
    ['OnFailure', { onFailure: Lazy.any({ produce: () => onFailure }) }],
    ['None', undefined],
  ];
  for (const [id, destinationConfig] of configs) {
    new CfnEventSourceMapping(stack, id, {
      functionName: consumer.functionName,
      eventSourceArn: events.streamArn,
      startingPosition: 'TRIM_HORIZON',
      functionResponseTypes: ['ReportBatchItemFailures'],
      destinationConfig,
    });
  }
  const found = Annotations.fromStack(stack);
  found.hasWarning('/DeployTime/Consumer', Match.stringLikeRegexp('DeployTime/None .*no on-failure destination.*streamWithoutOnFailure'));
  found.hasNoWarning('/DeployTime/Consumer', Match.stringLikeRegexp('DeployTime/(Whole|OnFailure) .*streamWithoutOnFailure'));
});

test('event sources on an alias or a version of an attached function, or a mapping made in another scope, are checked like its own', () => {
  const stack = new Stack(new App(), 'Aliases');
  const records = new IdempotencyTable(stack, 'Idempotency'); // 24 h
  const consumer = fn(stack, 'Consumer');
  records.attachFunction(consumer);
  // A queue without a DLQ (4 days of redeliveries), wired to the alias without reportBatchItemFailures.
  const live = new Alias(stack, 'Live', { aliasName: 'live', version: consumer.currentVersion });
  live.addEventSource(new SqsEventSource(new Queue(stack, 'Orders', { visibilityTimeout: Duration.minutes(1) })));
  // A Kinesis stream keeping records 7 days, read by a version with unlimited retries.
  consumer.currentVersion.addEventSource(
    new KinesisEventSource(new Stream(stack, 'Events', { retentionPeriod: Duration.days(7) }), {
      startingPosition: StartingPosition.TRIM_HORIZON,
      reportBatchItemFailures: true,
    }),
  );
  // A mapping made in the stack's scope, targeting the function, without reportBatchItemFailures.
  new EventSourceMapping(stack, 'Mapping', { target: consumer, eventSourceArn: new Queue(stack, 'Refunds').queueArn });
  const found = Annotations.fromStack(stack);
  found.hasError('/Aliases/Consumer', Match.stringLikeRegexp('noBatchItemFailures.*Aliases/Live'));
  found.hasError('/Aliases/Consumer', Match.stringLikeRegexp('retentionShorterThanRedelivery.*Aliases/Orders .*for 4 days'));
  found.hasError('/Aliases/Consumer', Match.stringLikeRegexp('retentionShorterThanStreamRetries.*for 7 days'));
  found.hasError('/Aliases/Consumer', Match.stringLikeRegexp('noBatchItemFailures.*Aliases/Mapping'));
  found.hasError('/Aliases/Consumer', Match.stringLikeRegexp('retentionShorterThanRedelivery.*Aliases/Refunds .*for 4 days'));
});

test("the function's `latestVersion` (`$LATEST`, its unqualified code and environment) is one of its versions: its event sources and async-invoke settings are checked like its own", () => {
  const stack = new Stack(new App(), 'Latest');
  const records = new IdempotencyTable(stack, 'Idempotency', { expiresAfter: Duration.hours(1) });
  const consumer = fn(stack, 'Consumer');
  records.attachFunction(consumer);
  // A queue without a DLQ (4 days of redeliveries), without reportBatchItemFailures.
  consumer.latestVersion.addEventSource(new SqsEventSource(new Queue(stack, 'Orders', { visibilityTimeout: Duration.minutes(1) })));
  consumer.latestVersion.configureAsyncInvoke({ maxEventAge: Duration.hours(6), retryAttempts: 2 });
  const found = Annotations.fromStack(stack);
  found.hasError('/Latest/Consumer', Match.stringLikeRegexp('noBatchItemFailures.*Latest/Consumer/\\$LATEST'));
  found.hasError('/Latest/Consumer', Match.stringLikeRegexp('retentionShorterThanRedelivery.*Latest/Orders .*for 4 days'));
  found.hasError('/Latest/Consumer', Match.stringLikeRegexp('asyncRetriesOutliveRecords.*for up to 6 h'));
});

test('a version or an alias imported with the function itself (Version.fromVersionAttributes, Alias.fromAliasAttributes) runs its code: its event sources and async-invoke settings are checked like its own', () => {
  const stack = new Stack(new App(), 'Imported');
  const records = new IdempotencyTable(stack, 'Idempotency', { expiresAfter: Duration.hours(1) });
  const consumer = fn(stack, 'Consumer');
  records.attachFunction(consumer);
  const version = Version.fromVersionAttributes(stack, 'V3', { lambda: consumer, version: '3' });
  version.addEventSource(new SqsEventSource(new Queue(stack, 'Orders', { visibilityTimeout: Duration.minutes(1) })));
  const live = Alias.fromAliasAttributes(stack, 'Live', { aliasName: 'live', aliasVersion: version });
  live.configureAsyncInvoke({ maxEventAge: Duration.hours(6), retryAttempts: 2 });
  const found = Annotations.fromStack(stack);
  found.hasError('/Imported/Consumer', Match.stringLikeRegexp('noBatchItemFailures.*Imported/V3'));
  found.hasError('/Imported/Consumer', Match.stringLikeRegexp('retentionShorterThanRedelivery.*Imported/Orders .*for 4 days'));
  found.hasError('/Imported/Consumer', Match.stringLikeRegexp('asyncRetriesOutliveRecords.*Imported/Live.*for up to 6 h'));
});

describe('IdempotencyTable.fromTable: a table that already exists', () => {
  test('a table defined in the app (a Powertools table with its defaults): attached functions get its name, the retention and the three item actions; the table is not changed', () => {
    const stack = new Stack(new App(), 'Existing');
    const powertools = new Table(stack, 'PowertoolsTable', {
      partitionKey: { name: 'id', type: AttributeType.STRING },
      timeToLiveAttribute: 'expiration',
      billingMode: BillingMode.PAY_PER_REQUEST,
    });
    const records = IdempotencyTable.fromTable(stack, 'Idempotency', powertools, { expiresAfter: Duration.hours(6) });
    const handler = fn(stack, 'Handler');
    records.attachFunction(handler);
    expect(records.table).toBe(powertools);
    expect(records.expiresAfterSeconds).toBe(6 * 3600);
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::DynamoDB::Table', 1);
    template.hasResourceProperties('AWS::DynamoDB::Table', {
      KeySchema: [{ AttributeName: 'id', KeyType: 'HASH' }],
      TimeToLiveSpecification: { AttributeName: 'expiration', Enabled: true },
    });
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: { IDEMPOTENCY_TABLE: { Ref: ID(stack, powertools) }, IDEMPOTENCY_EXPIRES_AFTER_SECONDS: String(6 * 3600) } },
    });
    template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: {
        Statement: [
          {
            Action: ['dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem'],
            Effect: 'Allow',
            Resource: [{ 'Fn::GetAtt': [ID(stack, powertools), 'Arn'] }],
          },
        ],
      },
    });
    Annotations.fromStack(stack).hasNoError('*', Match.anyValue());
    Annotations.fromStack(stack).hasNoWarning('*', Match.anyValue());
  });

  test('an imported table: grants on the ARN its name gives, key grants from the table or the option, and the retry-horizon checks of a new table', () => {
    const stack = new Stack(new App(), 'Imported', { env: { account: '123456789012', region: 'eu-west-1' } });
    const key = new Key(stack, 'Key');
    const records = IdempotencyTable.fromTable(stack, 'Idempotency', Table.fromTableName(stack, 'Powertools', 'idempotency'), { encryptionKey: key });
    records.attachSqsConsumer(fn(stack, 'Consumer'), new Queue(stack, 'Orders', { visibilityTimeout: Duration.minutes(1) }));
    const keyed = IdempotencyTable.fromTable(stack, 'Keyed', Table.fromTableAttributes(stack, 'WithKey', { tableName: 'keyed', encryptionKey: key }));
    keyed.attachFunction(fn(stack, 'KeyedHandler'));
    keyed.addMonitoring({ functions: ['payments'] });
    expect(keyed.encryptionKey).toBe(key);
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
    template.resourceCountIs('AWS::DynamoDB::Table', 0);
    template.hasResourceProperties('AWS::Lambda::Function', { Environment: { Variables: Match.objectLike({ IDEMPOTENCY_TABLE: 'idempotency' }) } });
    const policies = JSON.stringify(template.findResources('AWS::IAM::Policy'));
    expect(policies).toContain(':table/idempotency');
    expect(policies).toContain(':table/keyed');
    expect(policies).not.toMatch(/dynamodb:(\*|Scan|Query|GetItem)/);
    expect(policies.match(/kms:GenerateDataKey\*/g)).toHaveLength(2);
    // No DLQ: the queue keeps a message 4 days; records are kept 24 h.
    Annotations.fromStack(stack).hasError('/Imported/Consumer', Match.stringLikeRegexp('retentionShorterThanRedelivery'));
    Annotations.fromStack(stack).hasNoWarning('/Imported/Idempotency', Match.anyValue());
  });

  test.each([
    [
      'a sort key',
      { partitionKey: { name: 'id', type: AttributeType.STRING }, sortKey: { name: 'sk', type: AttributeType.STRING }, timeToLiveAttribute: 'expiration' },
      'error',
      'tableHasSortKey',
    ],
    [
      'a number partition key',
      { partitionKey: { name: 'id', type: AttributeType.NUMBER }, timeToLiveAttribute: 'expiration' },
      'error',
      'partitionKeyNotString',
    ],
    [
      'a binary partition key',
      { partitionKey: { name: 'id', type: AttributeType.BINARY }, timeToLiveAttribute: 'expiration' },
      'error',
      'partitionKeyNotString.*partition key `id` is of type B: record ids are strings',
    ],
    [
      'another partition key name',
      { partitionKey: { name: 'pk', type: AttributeType.STRING }, timeToLiveAttribute: 'expiration' },
      'warning',
      "attributes: \\{ key: 'pk' \\}",
    ],
    ['no TTL', { partitionKey: { name: 'id', type: AttributeType.STRING } }, 'warning', 'no TTL.*Enable TTL on `expiration`.*noTimeToLive'],
    [
      'TTL on another attribute',
      { partitionKey: { name: 'id', type: AttributeType.STRING }, timeToLiveAttribute: 'ttl' },
      'warning',
      "attributes: \\{ expiration: 'ttl' \\}",
    ],
  ] as const)('a table in the app with %s: a synth error or warning that says what to do', (_, props, level, message) => {
    const stack = new Stack(new App(), 'Schema');
    IdempotencyTable.fromTable(stack, 'Idempotency', new Table(stack, 'Records', props)).attachFunction(fn(stack, 'Handler'));
    const annotations = Annotations.fromStack(stack);
    if (level === 'error') annotations.hasError('/Schema/Idempotency', Match.stringLikeRegexp(message));
    else {
      annotations.hasNoError('*', Match.anyValue());
      annotations.hasWarning('/Schema/Idempotency', Match.stringLikeRegexp(message));
    }
  });

  test('a table in the app whose TTL is turned off is warned about as one without TTL: expired records are never removed', () => {
    const stack = new Stack(new App(), 'TtlOff');
    const records = new Table(stack, 'Records', { partitionKey: { name: 'id', type: AttributeType.STRING } });
    (records.node.defaultChild as CfnTable).timeToLiveSpecification = { attributeName: 'expiration', enabled: false };
    IdempotencyTable.fromTable(stack, 'Idempotency', records).attachFunction(fn(stack, 'Handler'));
    Annotations.fromStack(stack).hasWarning('/TtlOff/Idempotency', Match.stringLikeRegexp('no TTL.*noTimeToLive'));
  });

  test('a TTL known only at deploy time is not warned about: whether it is on, and on which attribute, is not known here', () => {
    const stack = new Stack(new App(), 'TtlAtDeploy');
    const records = new Table(stack, 'Records', { partitionKey: { name: 'id', type: AttributeType.STRING } });
    const attribute = new CfnParameter(stack, 'TtlAttribute', { type: 'String' }).valueAsString;
    const enabled = Fn.conditionEquals(new CfnParameter(stack, 'TtlEnabled', { type: 'String' }).valueAsString, 'true');
    (records.node.defaultChild as CfnTable).timeToLiveSpecification = { attributeName: attribute, enabled };
    IdempotencyTable.fromTable(stack, 'Idempotency', records).attachFunction(fn(stack, 'Handler'));
    Annotations.fromStack(stack).hasNoWarning('/TtlAtDeploy/Idempotency', Match.anyValue());
  });

  test('the key schema and TTL are checked as CloudFormation gets them: a sort key, a TTL attribute or no TTL set through the escape hatch counts', () => {
    const stack = new Stack(new App(), 'TableOverridden');
    const sorted = new Table(stack, 'Sorted', { partitionKey: { name: 'id', type: AttributeType.STRING }, timeToLiveAttribute: 'expiration' });
    const cfnSorted = sorted.node.defaultChild as CfnTable;
    cfnSorted.addPropertyOverride('KeySchema.1', { AttributeName: 'sk', KeyType: 'RANGE' });
    cfnSorted.addPropertyOverride('AttributeDefinitions.1', { AttributeName: 'sk', AttributeType: 'S' });
    IdempotencyTable.fromTable(stack, 'SortedRecords', sorted).attachFunction(fn(stack, 'SortedHandler'));
    const renamed = new Table(stack, 'Renamed', { partitionKey: { name: 'id', type: AttributeType.STRING }, timeToLiveAttribute: 'expiration' });
    (renamed.node.defaultChild as CfnTable).addPropertyOverride('TimeToLiveSpecification.AttributeName', 'ttl');
    IdempotencyTable.fromTable(stack, 'RenamedRecords', renamed).attachFunction(fn(stack, 'RenamedHandler'));
    const removed = new TableV2(stack, 'Removed', { partitionKey: { name: 'id', type: AttributeType.STRING }, timeToLiveAttribute: 'expiration' });
    (removed.node.defaultChild as CfnResource).addPropertyDeletionOverride('TimeToLiveSpecification');
    IdempotencyTable.fromTable(stack, 'RemovedRecords', removed).attachFunction(fn(stack, 'RemovedHandler'));
    const found = Annotations.fromStack(stack);
    found.hasError('/TableOverridden/SortedRecords', Match.stringLikeRegexp('tableHasSortKey'));
    found.hasWarning('/TableOverridden/RenamedRecords', Match.stringLikeRegexp('TTL is on `ttl`'));
    found.hasWarning('/TableOverridden/RemovedRecords', Match.stringLikeRegexp('no TTL'));
  });

  test('a partition key whose name or type is known only at deploy time is neither warned about nor refused: a false error would block the deploy', () => {
    const stack = new Stack(new App(), 'KeyAtDeploy');
    const records = new Table(stack, 'Records', { partitionKey: { name: 'id', type: AttributeType.STRING }, timeToLiveAttribute: 'expiration' });
    const name = new CfnParameter(stack, 'KeyName', { type: 'String' }).valueAsString;
    const type = new CfnParameter(stack, 'KeyType', { type: 'String' }).valueAsString;
    const cfn = records.node.defaultChild as CfnTable;
    cfn.keySchema = [{ attributeName: name, keyType: 'HASH' }];
    cfn.attributeDefinitions = [{ attributeName: name, attributeType: type }];
    IdempotencyTable.fromTable(stack, 'Idempotency', records).attachFunction(fn(stack, 'Handler'));
    Annotations.fromStack(stack).hasNoWarning('/KeyAtDeploy/Idempotency', Match.anyValue());
    Annotations.fromStack(stack).hasNoError('/KeyAtDeploy/Idempotency', Match.anyValue());
  });

  test('a TableV2 in the app is checked the same way: its key schema and TTL live on a CfnGlobalTable', () => {
    const stack = new Stack(new App(), 'SchemaV2');
    const records = new TableV2(stack, 'Records', {
      partitionKey: { name: 'pk', type: AttributeType.STRING },
      sortKey: { name: 'sk', type: AttributeType.STRING },
      timeToLiveAttribute: 'ttl',
    });
    IdempotencyTable.fromTable(stack, 'Idempotency', records).attachFunction(fn(stack, 'Handler'));
    const annotations = Annotations.fromStack(stack);
    annotations.hasError('/SchemaV2/Idempotency', Match.stringLikeRegexp('tableHasSortKey'));
    annotations.hasWarning('/SchemaV2/Idempotency', Match.stringLikeRegexp("attributes: \\{ key: 'pk' \\}"));
    annotations.hasWarning('/SchemaV2/Idempotency', Match.stringLikeRegexp("attributes: \\{ expiration: 'ttl' \\}"));
  });

  test('a table in another account is named by its ARN, and one in another account or region is a warning that says what else it needs', () => {
    const stack = new Stack(new App(), 'Elsewhere', { env: { account: '111111111111', region: 'eu-west-1' } });
    const arn = 'arn:aws:dynamodb:us-east-1:222222222222:table/idempotency';
    IdempotencyTable.fromTable(stack, 'Idempotency', Table.fromTableArn(stack, 'Central', arn)).attachFunction(fn(stack, 'Handler'));
    Template.fromStack(stack).hasResourceProperties('AWS::Lambda::Function', { Environment: { Variables: Match.objectLike({ IDEMPOTENCY_TABLE: arn }) } });
    const annotations = Annotations.fromStack(stack);
    annotations.hasWarning('/Elsewhere/Handler', Match.stringLikeRegexp('sends its requests to us-east-1.*must be one for us-east-1.*tableInAnotherRegion'));
    annotations.hasWarning(
      '/Elsewhere/Handler',
      Match.stringLikeRegexp(
        "^The idempotency table is in account 222222222222, Elsewhere/Handler in 111111111111: the table's owner must also allow the function's role the item actions \\(PutItem, UpdateItem, DeleteItem\\) in the table's resource-based policy, and, for a customer managed key, the key actions in the key's policy: this app cannot change an imported table's policies.*tableInAnotherAccount",
      ),
    );
  });

  describe("a table of the app in another account: attaching the function adds the statements the table's policies need, and the warning says there is nothing to add", () => {
    const props = { tableName: 'records', partitionKey: { name: 'id', type: AttributeType.STRING }, timeToLiveAttribute: 'expiration' };
    /** `records` made in a stack of account 111111111111, attached to a function of account 222222222222; the two stacks. */
    const attachedAcrossAccounts = (records: (owner: Stack) => Table | TableV2) => {
      const app = new App();
      const owner = new Stack(app, 'Owner', { env: { account: '111111111111', region: 'eu-west-1' } });
      const table = records(owner);
      const user = new Stack(app, 'User', { env: { account: '222222222222', region: 'eu-west-1' } });
      // A role used from another account's stack needs a name that stack can write.
      const role = new Role(user, 'Role', { roleName: PhysicalName.GENERATE_IF_NEEDED, assumedBy: new ServicePrincipal('lambda.amazonaws.com') });
      IdempotencyTable.fromTable(user, 'Idempotency', table).attachFunction(new LambdaFunction(user, 'Handler', { ...fnProps(), role }));
      return { owner, user };
    };
    const itemStatement = {
      Action: ['dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem'],
      Effect: 'Allow',
      Principal: { AWS: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, Match.stringLikeRegexp('^:iam::222222222222:role/')]] } },
      // In a resource-based policy, "*" is the table the policy is on.
      Resource: '*',
    };
    const heading = '^The idempotency table is in account 111111111111, User/Handler in 222222222222: ';

    test('a Table: its resource-based policy gets the statement', () => {
      const { owner, user } = attachedAcrossAccounts((stack) => new Table(stack, 'Records', props));
      Template.fromStack(owner).hasResourceProperties('AWS::DynamoDB::Table', { ResourcePolicy: { PolicyDocument: { Statement: [itemStatement] } } });
      Annotations.fromStack(user).hasWarning(
        '/User/Handler',
        Match.stringLikeRegexp(
          `${heading}a table of another account must also allow the function's role the item actions \\(PutItem, UpdateItem, DeleteItem\\) in the table's resource-based policy; attaching the function added that statement to the table: nothing to add.*tableInAnotherAccount`,
        ),
      );
    });

    test('a TableV2: its replica\'s resource-based policy gets the statement, naming the table as "*", not by its own ARN, which would be a circular dependency', () => {
      const { owner, user } = attachedAcrossAccounts((stack) => new TableV2(stack, 'Records', props));
      Template.fromStack(owner).hasResourceProperties('AWS::DynamoDB::GlobalTable', {
        Replicas: [Match.objectLike({ Region: 'eu-west-1', ResourcePolicy: { PolicyDocument: { Statement: [itemStatement] } } })],
      });
      Annotations.fromStack(user).hasWarning(
        '/User/Handler',
        Match.stringLikeRegexp(`${heading}.*added that statement to the table: nothing to add.*tableInAnotherAccount`),
      );
    });

    test("a Table with a customer managed key of the app: the key's policy gets its statement too", () => {
      const { owner, user } = attachedAcrossAccounts(
        (stack) => new Table(stack, 'Records', { ...props, encryption: TableEncryption.CUSTOMER_MANAGED, encryptionKey: new Key(stack, 'Key') }),
      );
      const template = Template.fromStack(owner);
      template.hasResourceProperties('AWS::DynamoDB::Table', { ResourcePolicy: { PolicyDocument: { Statement: [itemStatement] } } });
      template.hasResourceProperties('AWS::KMS::Key', {
        KeyPolicy: { Statement: Match.arrayWith([Match.objectLike({ Principal: itemStatement.Principal, Resource: '*' })]) },
      });
      Annotations.fromStack(user).hasWarning(
        '/User/Handler',
        Match.stringLikeRegexp(
          `${heading}.*resource-based policy, and the key actions in its customer managed key's policy; attaching the function added both statements: nothing to add.*tableInAnotherAccount`,
        ),
      );
    });

    test("a Table with an imported customer managed key: the key's owner must add the key's statement, and the function's own policy names that key alone", () => {
      const keyArn = 'arn:aws:kms:eu-west-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab';
      const { user } = attachedAcrossAccounts(
        (stack) => new Table(stack, 'Records', { ...props, encryption: TableEncryption.CUSTOMER_MANAGED, encryptionKey: Key.fromKeyArn(stack, 'Key', keyArn) }),
      );
      // "*" there would be every key whose policy trusts the function's account: its own account's keys, with their default policy, among them.
      const statements = Object.values(Template.fromStack(user).findResources('AWS::IAM::Policy')).flatMap(
        (policy) => policy.Properties.PolicyDocument.Statement,
      );
      expect(statements.filter((statement) => JSON.stringify(statement.Action).includes('kms:'))).toEqual([
        { Action: ['kms:Decrypt', 'kms:DescribeKey', 'kms:Encrypt', 'kms:ReEncrypt*', 'kms:GenerateDataKey*'], Effect: 'Allow', Resource: keyArn },
      ]);
      Annotations.fromStack(user).hasWarning(
        '/User/Handler',
        Match.stringLikeRegexp(
          `${heading}.*resource-based policy, which attaching the function added to the table, and the key actions in its customer managed key's policy: the key is imported, so its owner must add that statement.*tableInAnotherAccount`,
        ),
      );
    });
  });

  describe('a global table: a claim in one Region must see the claims of the others', () => {
    const props = { partitionKey: { name: 'id', type: AttributeType.STRING }, timeToLiveAttribute: 'expiration' };
    const env = (region: string) => ({ env: { account: '111111111111', region }, crossRegionReferences: true });
    // The reference strength CDK otherwise warns about when a function uses a table of another stack.
    const crossRegionApp = () => new App({ context: { '@aws-cdk/core:defaultCrossStackReferences': 'strong' } });
    /** A global table in eu-west-1 (replicas as given) and one function in each of `regions`, attached in its own stack. */
    const globalTable = (replicas: Partial<ConstructorParameters<typeof TableV2>[2]>, regions: string[]) => {
      const app = crossRegionApp();
      const table = new TableV2(new Stack(app, 'Global', env('eu-west-1')), 'Records', { ...props, ...replicas });
      for (const region of regions) {
        const stack = new Stack(app, `In-${region}`, env(region));
        IdempotencyTable.fromTable(stack, 'Idempotency', table).attachFunction(fn(stack, 'Handler'));
      }
      return (region: string) => Annotations.fromStack(app.node.findChild(`In-${region}`) as Stack);
    };
    const replicated = 'replicas in eu-west-1, us-east-1:.*run the handler.*`client` for one Region.*STRONG.*eventuallyConsistentReplicas';

    test('replicas with eventual consistency (the default) are a warning; a single-Region TableV2 is not, in an environment-agnostic stack too', () => {
      const annotations = globalTable({ replicas: [{ region: 'us-east-1' }] }, ['eu-west-1']);
      annotations('eu-west-1').hasWarning('/In-eu-west-1/Idempotency', Match.stringLikeRegexp(replicated));
      annotations('eu-west-1').hasNoWarning('/In-eu-west-1/Handler', Match.anyValue()); // it writes in the table's own Region
      const stack = new Stack(new App(), 'Single');
      IdempotencyTable.fromTable(stack, 'Idempotency', new TableV2(stack, 'Records', props)).attachFunction(fn(stack, 'Handler'));
      Annotations.fromStack(stack).hasNoWarning('*', Match.anyValue());
    });

    test('a function in a Region with an eventually consistent replica is told that the replica misses concurrent claims; one in a Region without replica is told where the table is', () => {
      const annotations = globalTable({ replicas: [{ region: 'us-east-1' }] }, ['us-east-1', 'us-west-2']);
      annotations('us-east-1').hasWarning(
        '/In-us-east-1/Handler',
        Match.stringLikeRegexp(
          'eventually consistent replica: a claim in the replica does not see a claim made at the same time.*`client` for eu-west-1.*tableInAnotherRegion',
        ),
      );
      annotations('us-west-2').hasWarning(
        '/In-us-west-2/Handler',
        Match.stringLikeRegexp(
          "IDEMPOTENCY_TABLE holds the table's ARN, so a DynamoDBStore made without a `client` sends its requests to eu-west-1.*tableInAnotherRegion",
        ),
      );
    });

    test('with multi-Region strong consistency, neither the table nor a function using its local replica is a warning', () => {
      const annotations = globalTable(
        { multiRegionConsistency: MultiRegionConsistency.STRONG, replicas: [{ region: 'eu-west-2' }], witnessRegion: 'eu-west-3' },
        ['eu-west-2'],
      );
      annotations('eu-west-2').hasNoWarning('*', Match.anyValue());
    });

    test('a function in a Region with a replica of a TableV2 may write to the replica, which its store writes to by default, and to no other', () => {
      const app = crossRegionApp();
      const table = new TableV2(new Stack(app, 'Global', env('eu-west-1')), 'Records', {
        ...props,
        multiRegionConsistency: MultiRegionConsistency.STRONG,
        replicas: [{ region: 'eu-west-2' }, { region: 'eu-central-1' }],
      });
      // Two functions in the replica's Region, each in its own stack.
      const stacks = [1, 2].map((n) => new Stack(app, `In-eu-west-2-${n}`, env('eu-west-2')));
      for (const stack of stacks) IdempotencyTable.fromTable(stack, 'Idempotency', table).attachFunction(fn(stack, 'Handler'));
      for (const stack of stacks) {
        const template = Template.fromStack(stack);
        template.hasResourceProperties('AWS::IAM::Policy', {
          PolicyDocument: {
            Statement: Match.arrayWith([
              {
                Action: ['dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem'],
                Effect: 'Allow',
                Resource: { 'Fn::Join': ['', Match.arrayWith([':dynamodb:eu-west-2:111111111111:table/'])] },
              },
            ]),
          },
        });
        expect(JSON.stringify(template.findResources('AWS::IAM::Policy'))).not.toContain('eu-central-1');
      }
    });

    test("a customer managed key's grant to a function of another Region is in the function's policy alone, on the key: the key's stack does not name the function's role", () => {
      const app = crossRegionApp();
      const primary = new Stack(app, 'Global', env('eu-west-1'));
      const replicaKey = 'arn:aws:kms:eu-west-2:111111111111:key/replica';
      const table = new TableV2(primary, 'Records', {
        ...props,
        replicas: [{ region: 'eu-west-2' }],
        encryption: TableEncryptionV2.customerManagedKey(new Key(primary, 'Key'), { 'eu-west-2': replicaKey }),
      });
      const stack = new Stack(app, 'In-eu-west-2', env('eu-west-2'));
      IdempotencyTable.fromTable(stack, 'Idempotency', table).attachFunction(fn(stack, 'Handler'));
      // Naming the role in the key policy made each stack depend on the other: no synth.
      const template = Template.fromStack(stack);
      const keyActions = Match.arrayWith(['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey*']);
      template.hasResourceProperties('AWS::IAM::Policy', {
        PolicyDocument: {
          Statement: Match.arrayWith([
            { Action: keyActions, Effect: 'Allow', Resource: { 'Fn::GetAtt': [Match.anyValue(), Match.stringLikeRegexp('FnGetAttKey')] } },
            { Action: keyActions, Effect: 'Allow', Resource: replicaKey },
          ]),
        },
      });
      expect(JSON.stringify(template.findResources('AWS::IAM::Policy'))).not.toContain('"Resource":"*"');
      expect(JSON.stringify(Template.fromStack(primary).findResources('AWS::KMS::Key'))).not.toContain('In-eu-west-2');
    });

    test('a Table with replicationRegions grants an attached function the item actions on every replica, each in its Region', () => {
      const stack = new Stack(new App(), 'LegacyGrants', env('eu-west-1'));
      const legacy = new Table(stack, 'Records', { ...props, replicationRegions: ['us-east-1', 'eu-west-2'] });
      IdempotencyTable.fromTable(stack, 'Idempotency', legacy).attachFunction(fn(stack, 'Handler'));
      const [policy] = Object.values(Template.fromStack(stack).findResources('AWS::IAM::Policy'));
      const statements = policy!.Properties.PolicyDocument.Statement as Array<{ Action: unknown; Resource: unknown }>;
      const items = statements.filter(
        (statement) => JSON.stringify(statement.Action) === JSON.stringify(['dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem']),
      );
      const resources = JSON.stringify(items.map((statement) => statement.Resource));
      expect(resources).toContain(`"Fn::GetAtt":["${ID(stack, legacy)}","Arn"]`);
      for (const region of ['us-east-1', 'eu-west-2']) expect(resources).toMatch(new RegExp(`:dynamodb:${region}:111111111111:table/`));
    });

    test('a Table with replicationRegions, and a replica from TableV2.replica, are checked as their global table', () => {
      const stack = new Stack(new App(), 'Legacy', env('eu-west-1'));
      const legacy = new Table(stack, 'Records', { ...props, replicationRegions: ['us-east-1'] });
      IdempotencyTable.fromTable(stack, 'Idempotency', legacy).attachFunction(fn(stack, 'Handler'));
      Annotations.fromStack(stack).hasWarning('/Legacy/Idempotency', Match.stringLikeRegexp(replicated));
      const app = crossRegionApp();
      const global = new TableV2(new Stack(app, 'Global', env('eu-west-1')), 'Records', { ...props, replicas: [{ region: 'us-east-1' }] });
      const local = new Stack(app, 'Local', env('us-east-1'));
      IdempotencyTable.fromTable(local, 'Idempotency', global.replica('us-east-1')).attachFunction(fn(local, 'Handler'));
      Annotations.fromStack(local).hasWarning('/Local/Idempotency', Match.stringLikeRegexp(replicated));
    });
  });

  test('options and the table are validated; a function keeps its records in one table', () => {
    const stack = new Stack(new App(), 'InvalidExisting');
    const table = Table.fromTableName(stack, 'T', 'idempotency');
    expect(() => IdempotencyTable.fromTable(stack, 'Name', table, { tableName: 'x' } as never)).toThrow(
      'IdempotencyTable.fromTable: unknown option `tableName`. Known options: expiresAfter, encryptionKey.',
    );
    expect(() => IdempotencyTable.fromTable(stack, 'Millis', table, { expiresAfter: Duration.millis(1500) })).toThrow(
      'IdempotencyTable.fromTable: `expiresAfter` must be a whole number of seconds, 1 or more (got 1.5).',
    );
    expect(() => IdempotencyTable.fromTable(stack, 'Name2', 'idempotency' as never)).toThrow(
      'IdempotencyTable.fromTable: `table` must be a DynamoDB table construct (a Table, or one from Table.fromTableName).',
    );
    const encrypted = Table.fromTableAttributes(stack, 'Encrypted', { tableName: 'encrypted', encryptionKey: new Key(stack, 'TableKey') });
    expect(() => IdempotencyTable.fromTable(stack, 'OtherKey', encrypted, { encryptionKey: new Key(stack, 'Unrelated') })).toThrow(
      "IdempotencyTable.fromTable: `encryptionKey` is not the key the table is encrypted with (InvalidExisting/TableKey); leave it out, the table's own key is used.",
    );
    IdempotencyTable.fromTable(stack, 'SameKey', encrypted, { encryptionKey: encrypted.encryptionKey });
    const handler = fn(stack, 'Handler');
    new IdempotencyTable(stack, 'New').attachFunction(handler);
    expect(() => IdempotencyTable.fromTable(stack, 'Existing', table).attachFunction(handler)).toThrow(/already attached/);
  });
});

test('on an aws-cdk-lib that cannot render a resource for the checks, they read the L1 properties and find the same', () => {
  const stack = new Stack(new App(), 'Unrendered');
  const records = new IdempotencyTable(stack, 'Idempotency', { expiresAfter: Duration.hours(1) });
  const consumer = fn(stack, 'Consumer', Duration.minutes(2));
  consumer.configureAsyncInvoke({ maxEventAge: Duration.hours(6), retryAttempts: 0 });
  const queue = new Queue(stack, 'Queue', { visibilityTimeout: Duration.minutes(1), deadLetterQueue: { queue: new Queue(stack, 'Dlq'), maxReceiveCount: 3 } });
  records.attachSqsConsumer(consumer, queue, { maxConcurrency: 2 });
  const findings = () =>
    [...checkQueue(consumer, queue, 3600), ...checkFunction(consumer, 3600), ...checkEnvironmentRetention(consumer, 'IDEMPOTENCY_EXPIRES_AFTER_SECONDS', 3600)]
      .map((finding) => finding.id)
      .sort();
  const rendered = findings();
  expect(rendered).toEqual([
    'lambda-idempotency:asyncRedeliveryOutlivesRecords',
    'lambda-idempotency:backlogOutlivesRecords',
    'lambda-idempotency:visibilityBelowTimeout',
  ]);
  for (const construct of stack.node.findAll()) {
    if (construct instanceof CfnResource) Object.defineProperty(construct, '_toCloudFormation', { value: undefined });
  }
  expect(findings()).toEqual(rendered);
});

test("properties left unset are checked at AWS's defaults: a queue's 30 s visibility timeout, a function's 3 s timeout, a Kinesis stream's 24 h retention", () => {
  const stack = new Stack(new App(), 'Defaults');
  const records = new IdempotencyTable(stack, 'Idempotency', { expiresAfter: Duration.days(2) });
  const dlq = new Queue(stack, 'Dlq');
  const quiet = (consumer: LambdaFunction) => {
    consumer.configureAsyncInvoke({ maxEventAge: Duration.hours(1), retryAttempts: 0 });
    return consumer;
  };
  // A queue without a visibility timeout (30 s) feeding a 10 s function: below 6 × 10 s.
  records.attachSqsConsumer(quiet(fn(stack, 'DefaultVisibility')), new Queue(stack, 'Unset', { deadLetterQueue: { queue: dlq, maxReceiveCount: 3 } }));
  // A function without a timeout (3 s) fed by a queue of 6 × 3 s: exactly what AWS recommends, no finding.
  const { timeout: _, ...untimed } = fnProps();
  records.attachSqsConsumer(
    quiet(new LambdaFunction(stack, 'DefaultTimeout', untimed)),
    new Queue(stack, 'SixDefaultTimeouts', { visibilityTimeout: Duration.seconds(18), deadLetterQueue: { queue: dlq, maxReceiveCount: 3 } }),
  );
  // A Kinesis stream whose retention an override deletes keeps records 24 h, within the records' 2 days.
  const events = new Stream(stack, 'Events', { retentionPeriod: Duration.days(7) });
  (events.node.defaultChild as CfnResource).addPropertyDeletionOverride('RetentionPeriodHours');
  const reader = quiet(fn(stack, 'DefaultStreamRetention'));
  records.attachFunction(reader);
  reader.addEventSource(
    new KinesisEventSource(events, { startingPosition: StartingPosition.LATEST, reportBatchItemFailures: true, onFailure: new SqsDlq(dlq) }),
  );
  const found = Annotations.fromStack(stack);
  found.hasWarning(
    '/Defaults/DefaultVisibility',
    Match.stringLikeRegexp('Defaults/Unset has a visibility timeout of 30 s.*at least 1 min.*visibilityBelowSixTimeouts'),
  );
  expect(found.findWarning('/Defaults/DefaultTimeout', Match.stringLikeRegexp('lambda-idempotency'))).toEqual([]);
  found.hasWarning('/Defaults/DefaultStreamRetention', Match.stringLikeRegexp('Defaults/Events drops its records \\(1 day\\).*streamRetriesUntilDropped'));
  expect(found.findError('*', Match.anyValue())).toEqual([]);
});

test('limits met exactly on stream sources and settings resolved late: an age limit as long as the stream keeps records still retries until it drops them; response types from a token are no error', () => {
  const stack = new Stack(new App(), 'Late');
  const records = new IdempotencyTable(stack, 'Idempotency', { expiresAfter: Duration.days(7) });
  const dlq = new Queue(stack, 'Dlq');
  const consumer = (id: string) => {
    const handler = fn(stack, id);
    handler.configureAsyncInvoke({ maxEventAge: Duration.hours(1), retryAttempts: 0 });
    records.attachFunction(handler);
    return handler;
  };
  // maxRecordAge 7 days on a stream that keeps records 7 days: the age limit does not end the retries first.
  consumer('WeekAge').addEventSource(
    new KinesisEventSource(new Stream(stack, 'Events', { retentionPeriod: Duration.days(7) }), {
      startingPosition: StartingPosition.LATEST,
      reportBatchItemFailures: true,
      onFailure: new SqsDlq(dlq),
      maxRecordAge: Duration.days(7),
    }),
  );
  // Response types resolved at synth from a lazy value: ReportBatchItemFailures, as CloudFormation gets it.
  new CfnEventSourceMapping(stack, 'LazyTypes', {
    functionName: consumer('LazyConsumer').functionName,
    eventSourceArn: new Queue(stack, 'Orders', { visibilityTimeout: Duration.minutes(1), deadLetterQueue: { queue: dlq, maxReceiveCount: 3 } }).queueArn,
    functionResponseTypes: Lazy.list({ produce: () => ['ReportBatchItemFailures'] }),
  });
  Template.fromStack(stack).hasResourceProperties('AWS::Lambda::EventSourceMapping', { FunctionResponseTypes: ['ReportBatchItemFailures'] });
  const found = Annotations.fromStack(stack);
  found.hasWarning('/Late/WeekAge', Match.stringLikeRegexp('Late/Events drops its records \\(7 days\\).*streamRetriesUntilDropped'));
  expect(found.findWarning('/Late/LazyConsumer', Match.stringLikeRegexp('lambda-idempotency'))).toEqual([]);
  expect(found.findError('*', Match.anyValue())).toEqual([]);
});

test('a warning is acknowledged by its id (Annotations.acknowledgeWarning), and stays for the functions that did not acknowledge it', () => {
  const stack = new Stack(new App(), 'Acknowledged');
  const records = new IdempotencyTable(stack, 'Idempotency', { expiresAfter: Duration.days(5) });
  const wire = (id: string) => {
    const consumer = fn(stack, id);
    consumer.configureAsyncInvoke({ maxEventAge: Duration.hours(1), retryAttempts: 0 });
    records.attachSqsConsumer(consumer, new Queue(stack, `${id}Queue`, { visibilityTimeout: Duration.minutes(1) }));
    return consumer;
  };
  // Messages kept 4 days, records 5: a failing message is deleted at the end of its retention, which this consumer accepts.
  ConstructAnnotations.of(wire('Accepted')).acknowledgeWarning('lambda-idempotency:queueWithoutDeadLetterQueue', 'failed orders are reconciled daily');
  wire('Other');
  const found = Annotations.fromStack(stack);
  expect(found.findWarning('/Acknowledged/Accepted', Match.anyValue())).toEqual([]);
  found.hasWarning('/Acknowledged/Other', Match.stringLikeRegexp('queueWithoutDeadLetterQueue'));
});
