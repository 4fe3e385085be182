#!/usr/bin/env -S npx tsx
/**
 * The CDK app (`cdk.json`: `npx tsx infra/app.ts`): `npx cdk synth` works offline, `npx cdk deploy`
 * deploys the demo; `-c requireIssuedKeys=true` makes the payment API accept only issued keys.
 */
import { App } from 'aws-cdk-lib';
import { PaymentsStack } from './payments-stack.js';

const app = new App();
const requireIssuedKeys = app.node.tryGetContext('requireIssuedKeys');
new PaymentsStack(app, 'PaymentsDemo', { requireIssuedKeys: requireIssuedKeys === true || requireIssuedKeys === 'true' });
app.synth();
