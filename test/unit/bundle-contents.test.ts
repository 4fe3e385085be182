/**
 * Pay only for what you use: the minimal handler of the benchmark, bundled as a Lambda function
 * ships, holds none of the optional features; the handler that uses them all holds each one, which
 * shows the markers below find them.
 */
import { fileURLToPath } from 'node:url';
import type { Metafile } from 'esbuild';
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
  'guarded state changes (transition)': 'must name at least one state',
  'server-issued keys': 'issueIdempotencyKey',
  'inspectRecord and forgetRecord': 'forgetRecord cannot tell',
} as const;
type Feature = keyof typeof FEATURES;

const featuresIn = (text: string): Feature[] => (Object.keys(FEATURES) as Feature[]).filter((feature) => text.includes(FEATURES[feature]));

/** The files a bundle draws code from: `lib/…` paths, and dependencies by package name. */
const inputsOf = (metafile: Metafile): string[] => [
  ...new Set(
    Object.values(metafile.outputs).flatMap((output) =>
      Object.entries(output.inputs)
        .filter(([, input]) => input.bytesInOutput > 0)
        .map(([path]) => (path.includes('node_modules/') ? path.replace(/^.*node_modules\/((@[^/]+\/)?[^/]+).*$/, '$1') : path)),
    ),
  ),
];

/** Files that only optional features reach: the CDK construct, the HTTP and batch layers, `transaction()`'s view. */
const LAYERS = /^(lib\/cdk\/|lib\/http|lib\/batch\.ts$|lib\/call-transaction\.ts$|aws-cdk-lib$|constructs$)/;
/** The store of the main entry (transaction sender, atomic mode's store side, inspect/forget) and what only it and the older option shapes reach. */
const MAIN_STORE = /^lib\/(dynamodb-store|dynamodb-transaction|encryption|operations)\.ts$/;

test('the minimal handler of the lean entries bundles no optional feature; the main entry bundles no layer it does not use', async () => {
  const [lean, main, full] = await Promise.all([bundleHandler('ours', root), bundleHandler('main', root), bundleHandler('full', root)]);
  expect(featuresIn(full.text)).toEqual(Object.keys(FEATURES));
  expect(featuresIn(lean.text)).toEqual([]);
  // The main entry keeps every option shape working, so its store and middleware carry their features.
  expect(featuresIn(main.text)).toEqual(['encryption', 'EMF metrics and logs', 'the transaction sender', 'inspect and forget']);
  expect(lean.bytes.byteLength).toBeLessThan(main.bytes.byteLength);
});

test('no file of the CDK construct, the HTTP and batch layers or transaction() is in the minimal handler; the lean one has none of the main store either', async () => {
  const [lean, main, full] = await Promise.all([bundleHandler('ours', root), bundleHandler('main', root), bundleHandler('full', root)]);
  // The patterns find what they look for: the handler that uses the layers and the main store draws on them.
  expect(inputsOf(full.metafile).filter((path) => LAYERS.test(path)).length).toBeGreaterThan(0);
  expect(inputsOf(main.metafile).filter((path) => MAIN_STORE.test(path)).length).toBeGreaterThan(0);
  expect(inputsOf(lean.metafile).filter((path) => LAYERS.test(path) || MAIN_STORE.test(path))).toEqual([]);
  expect(inputsOf(main.metafile).filter((path) => LAYERS.test(path))).toEqual([]);
});
