/**
 * A binary message (what a `parse` returns as a Buffer or a Uint8Array) is keyed by its bytes as
 * base64 text: the same text a string message holding that base64 is keyed by. A stream image's
 * binary attributes stay the base64 text the stream delivers.
 */
import { isUtf8 } from 'node:buffer';
import { idempotentBatch, type StreamChange } from '../../lib/index.js';
import { InMemoryStore, lambdaContext } from '../../lib/testing/index.js';

const kinesisRecord = (data: Buffer, sequence: number) => ({
  kinesis: {
    kinesisSchemaVersion: '1.0',
    partitionKey: 'p-1',
    sequenceNumber: String(sequence),
    data: data.toString('base64'),
    approximateArrivalTimestamp: 1736942400,
  },
  eventSource: 'aws:kinesis',
  eventVersion: '1.0',
  eventID: `shardId-000000000000:${sequence}`,
  eventName: 'aws:kinesis:record',
  invokeIdentityArn: 'arn:aws:iam::123456789012:role/consumer',
  awsRegion: 'eu-west-1',
  eventSourceARN: 'arn:aws:kinesis:eu-west-1:123456789012:stream/orders',
});

// Keying bytes apart from every string changes the record id of every binary message already
// stored (a retry within the retention would run again); keying the strings apart instead orphans
// every text message that reads as base64. No fix keeps the records of both readable, so
// docs/batch.md tells `parse` to return one kind for every record. `test.failing` turns red once
// it is fixed.
test.failing('a text message that reads as the base64 of another message’s bytes is another message: both run', async () => {
  const seen: unknown[] = [];
  const handler = idempotentBatch(
    async (message: Buffer | string) => {
      seen.push(message);
    },
    {
      store: new InMemoryStore(),
      name: 'mixed',
      // Text where the data is UTF-8, its bytes where it is not.
      parse: (record) => {
        const bytes = Buffer.from((record as ReturnType<typeof kinesisRecord>).kinesis.data, 'base64');
        return isUtf8(bytes) ? bytes.toString('utf8') : bytes;
      },
    },
  );
  const binary = Buffer.from([0xff, 0xfe]);
  const text = Buffer.from(binary.toString('base64'), 'utf8'); // the text "//4="
  const response = await handler({ Records: [kinesisRecord(binary, 1), kinesisRecord(text, 2)] } as never, lambdaContext());
  expect(response).toEqual({ batchItemFailures: [] });
  expect(seen).toEqual([binary, '//4=']);
});

test('DynamoDB Streams: a binary attribute (B, BS, also nested) reaches the record function as the base64 text the stream delivers, not as bytes', async () => {
  const changes: unknown[] = [];
  const handler = idempotentBatch(
    async (change: StreamChange) => {
      changes.push(change.newImage);
    },
    { store: new InMemoryStore(), name: 'images' },
  );
  const record = {
    eventID: 'e-1',
    eventName: 'INSERT',
    eventSource: 'aws:dynamodb',
    dynamodb: {
      Keys: { pk: { S: 'DOC#1' } },
      NewImage: { pk: { S: 'DOC#1' }, blob: { B: 'AAEC' }, blobs: { BS: ['AQ=='] }, meta: { M: { thumb: { B: '/w==' } } } },
      SequenceNumber: '4200000000000000000001',
      StreamViewType: 'NEW_IMAGE',
    },
  };
  expect(await handler({ Records: [record] } as never, lambdaContext())).toEqual({ batchItemFailures: [] });
  expect(changes).toEqual([{ pk: 'DOC#1', blob: 'AAEC', blobs: new Set(['AQ==']), meta: { thumb: '/w==' } }]);
});
