/**
 * The records AWS delivers to a batch handler: Lambda's event source mappings (`{ Records }`) and
 * EventBridge Pipes (a bare array), for SQS, Kinesis and DynamoDB Streams.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { DynamoDBRecord, KinesisStreamRecord, SQSEvent, SQSRecord } from 'aws-lambda';
import type { PipesKinesisRecord } from '../../lib/index.js';

// ---------------------------------------------------------------------------------------------
// The records Lambda's event source mappings deliver.

export const REGION = 'eu-west-1';
export const ACCOUNT = '123456789012';
export const QUEUE_ARN = `arn:aws:sqs:${REGION}:${ACCOUNT}:orders`;
export const FIFO_QUEUE_ARN = `arn:aws:sqs:${REGION}:${ACCOUNT}:orders.fifo`;
export const SENT = 1736942400000;

export interface Order {
  readonly orderId: string;
  readonly amount?: number;
  readonly sentAt?: number;
}

let fifoSequence = 18_849_496_460_467_696_000n;

/** An SQS record; a string body is sent as is (e.g. to make a poison message), anything else as JSON. */
export function sqsRecord(body: Order | string, options: { groupId?: string; messageId?: string } = {}): SQSRecord {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  const fifo = options.groupId !== undefined;
  return {
    messageId: options.messageId ?? randomUUID(),
    receiptHandle: `AQEB${Buffer.from(randomUUID()).toString('base64')}`,
    body: text,
    attributes: {
      ApproximateReceiveCount: '1',
      SentTimestamp: String(SENT),
      SenderId: 'AROAEXAMPLEID:order-service',
      ApproximateFirstReceiveTimestamp: String(SENT + 12),
      ...(fifo
        ? {
            MessageGroupId: options.groupId,
            MessageDeduplicationId: createHash('sha256').update(text).digest('hex'),
            SequenceNumber: String((fifoSequence += 1n)),
          }
        : {}),
    },
    messageAttributes: {},
    md5OfBody: createHash('md5').update(text).digest('hex'),
    eventSource: 'aws:sqs',
    eventSourceARN: fifo ? FIFO_QUEUE_ARN : QUEUE_ARN,
    awsRegion: REGION,
  };
}

/** The same message received again, as SQS redelivers it after its visibility timeout. */
export function redelivered(record: SQSRecord): SQSRecord {
  const count = Number(record.attributes.ApproximateReceiveCount) + 1;
  return {
    ...record,
    receiptHandle: `AQEB${Buffer.from(randomUUID()).toString('base64')}`,
    attributes: { ...record.attributes, ApproximateReceiveCount: String(count) },
  };
}

export const sqsEvent = (records: SQSRecord[]): SQSEvent => ({ Records: records });

export const kinesisSequence = (n: number) => `49590338271490256608559692538361571095921575989136588${String(n).padStart(3, '0')}`;

export function kinesisRecord(data: Order | string, n: number): KinesisStreamRecord {
  const text = typeof data === 'string' ? data : JSON.stringify(data);
  const sequenceNumber = kinesisSequence(n);
  return {
    kinesis: {
      kinesisSchemaVersion: '1.0',
      partitionKey: typeof data === 'string' ? 'unknown' : data.orderId,
      sequenceNumber,
      data: Buffer.from(text, 'utf8').toString('base64'),
      approximateArrivalTimestamp: SENT / 1000 + n / 1000,
    },
    eventSource: 'aws:kinesis',
    eventVersion: '1.0',
    eventID: `shardId-000000000003:${sequenceNumber}`,
    eventName: 'aws:kinesis:record',
    invokeIdentityArn: `arn:aws:iam::${ACCOUNT}:role/order-consumer`,
    awsRegion: REGION,
    eventSourceARN: `arn:aws:kinesis:${REGION}:${ACCOUNT}:stream/orders`,
  };
}

export const streamSequence = (n: number) => `4200000000000000000${String(n).padStart(4, '0')}`;

/** A DynamoDB Streams record (NEW_AND_OLD_IMAGES) of an orders table, images marshalled as Lambda delivers them. */
export function streamRecord(n: number, orderId: string, status: string, eventName: 'INSERT' | 'MODIFY' = 'MODIFY'): DynamoDBRecord {
  const image = (state: string) => ({
    pk: { S: `ORDER#${orderId}` },
    orderId: { S: orderId },
    status: { S: state },
    total: { N: '1999' },
    lines: { L: [{ M: { sku: { S: 'A-1' }, qty: { N: '2' } } }] },
    paid: { BOOL: state !== 'PENDING' },
  });
  return {
    eventID: createHash('md5').update(`${orderId}-${n}`).digest('hex'),
    eventName,
    eventVersion: '1.1',
    eventSource: 'aws:dynamodb',
    awsRegion: REGION,
    dynamodb: {
      ApproximateCreationDateTime: SENT / 1000 + n,
      Keys: { pk: { S: `ORDER#${orderId}` } },
      NewImage: image(status),
      ...(eventName === 'MODIFY' ? { OldImage: image('PENDING') } : {}),
      SequenceNumber: streamSequence(n),
      SizeBytes: 213,
      StreamViewType: 'NEW_AND_OLD_IMAGES',
    },
    eventSourceARN: `arn:aws:dynamodb:${REGION}:${ACCOUNT}:table/orders/stream/2025-01-15T12:00:00.000`,
  };
}

// ---------------------------------------------------------------------------------------------
// The records an EventBridge pipe delivers to a Lambda target: a bare JSON array, also for a batch
// of one ("Amazon EventBridge Pipes batching and concurrency",
// https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-pipes-batching-concurrency.html).
// That page also says how a Lambda target reports partial failures: `{ batchItemFailures: [{
// itemIdentifier }] }`, the itemIdentifier being the SQS `messageId`, the Kinesis and DynamoDB
// Streams `eventID`.

/**
 * The Kinesis example event of "Amazon Kinesis stream as a source"
 * (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-pipes-kinesis.html), its first
 * record: the members Lambda nests under `kinesis` sit at the top level.
 */
export const PIPES_KINESIS_EXAMPLE: PipesKinesisRecord = {
  kinesisSchemaVersion: '1.0',
  partitionKey: '1',
  sequenceNumber: '49590338271490256608559692538361571095921575989136588898',
  data: 'SGVsbG8sIHRoaXMgaXMgYSB0ZXN0Lg==',
  approximateArrivalTimestamp: 1545084650.987,
  eventSource: 'aws:kinesis',
  eventVersion: '1.0',
  eventID: 'shardId-000000000006:49590338271490256608559692538361571095921575989136588898',
  eventName: 'aws:kinesis:record',
  invokeIdentityArn: 'arn:aws:iam::123456789012:role/lambda-role',
  awsRegion: 'us-east-2',
  eventSourceARN: 'arn:aws:kinesis:us-east-2:123456789012:stream/lambda-stream',
};

/**
 * The FIFO example event of "Amazon Simple Queue Service as a source"
 * (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-pipes-sqs.html): the record Lambda
 * delivers, with `MessageGroupId` among its attributes.
 */
export const PIPES_SQS_FIFO_EXAMPLE: SQSRecord = {
  messageId: '11d6ee51-4cc7-4302-9e22-7cd8afdaadf5',
  receiptHandle: 'AQEBBX8nesZEXmkhsmZeyIE8iQAMig7qw...',
  body: 'Test message.',
  attributes: {
    ApproximateReceiveCount: '1',
    SentTimestamp: '1573251510774',
    SequenceNumber: '18849496460467696128',
    MessageGroupId: '1',
    SenderId: 'AIDAIO23YVJENQZJOL4VO',
    MessageDeduplicationId: '1',
    ApproximateFirstReceiveTimestamp: '1573251510774',
  },
  messageAttributes: {},
  md5OfBody: 'e4e68fb7bd0e697a0ae8f1bb342846b3',
  eventSource: 'aws:sqs',
  eventSourceARN: 'arn:aws:sqs:us-east-2:123456789012:fifo.fifo',
  awsRegion: 'us-east-2',
};

/**
 * The first record of the example event of "Amazon DynamoDB stream as a source"
 * (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-pipes-dynamodb.html): the record
 * Lambda delivers, images marshalled.
 */
export const PIPES_DYNAMODB_EXAMPLE: DynamoDBRecord = {
  eventID: '1',
  eventVersion: '1.0',
  dynamodb: {
    Keys: { Id: { N: '101' } },
    NewImage: { Message: { S: 'New item!' }, Id: { N: '101' } },
    StreamViewType: 'NEW_AND_OLD_IMAGES',
    SequenceNumber: '111',
    SizeBytes: 26,
  },
  awsRegion: 'us-west-2',
  eventName: 'INSERT',
  eventSourceARN: 'arn:aws:dynamodb:us-east-1:111122223333:table/EventSourceTable',
  eventSource: 'aws:dynamodb',
};

export type PipedRecord = SQSRecord | PipesKinesisRecord | DynamoDBRecord;

/** The record a pipe delivers for the one an event source mapping delivers: SQS and DynamoDB Streams records alike, a Kinesis record flattened. */
export function piped(record: SQSRecord): SQSRecord;
export function piped(record: KinesisStreamRecord): PipesKinesisRecord;
export function piped(record: DynamoDBRecord): DynamoDBRecord;
export function piped(record: SQSRecord | KinesisStreamRecord | DynamoDBRecord): PipedRecord;
export function piped(record: SQSRecord | KinesisStreamRecord | DynamoDBRecord): PipedRecord {
  if (!('kinesis' in record)) return record;
  const { kinesis, ...rest } = record;
  return { ...kinesis, ...rest };
}
