/**
 * Pay only for what you use: the minimal handler of the benchmark, bundled as a Lambda function
 * ships, holds none of the optional features; the handler that uses them all holds each one, which
 * shows the markers below find them.
 */
import { fileURLToPath } from 'node:url';
import { bundleHandler } from '../../tools/lambda-bundles.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

/** A string that survives minification and appears only with the feature's code. */
const FEATURES = {
  encryption: 'aes-256-gcm',
  'EMF metrics and logs': 'CloudWatchMetrics',
  'the transaction sender': 'TransactWriteItemsCommand',
  'inspect and forget': 'GetItemCommand',
  'the HTTP layer': 'idempotency-key',
  'the batch layer': 'batchItemFailures',
  'the transaction() view': '@aws-sdk/util-dynamodb',
} as const;
type Feature = keyof typeof FEATURES;

const featuresIn = (text: string): Feature[] => (Object.keys(FEATURES) as Feature[]).filter((feature) => text.includes(FEATURES[feature]));

test('the minimal handler of the lean entries bundles no optional feature; the main entry bundles no layer it does not use', async () => {
  const [lean, main, full] = await Promise.all([bundleHandler('ours', root), bundleHandler('main', root), bundleHandler('full', root)]);
  expect(featuresIn(full.text)).toEqual(Object.keys(FEATURES));
  expect(featuresIn(lean.text)).toEqual([]);
  // The main entry keeps every option shape working, so its store and middleware carry their features.
  expect(featuresIn(main.text)).toEqual(['encryption', 'EMF metrics and logs', 'the transaction sender', 'inspect and forget']);
  expect(lean.bytes.byteLength).toBeLessThan(main.bytes.byteLength);
});
