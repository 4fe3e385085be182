#!/usr/bin/env -S npx tsx
/** The CDK app (`cdk.json`: `npx tsx infra/app.ts`): `npx cdk synth` works offline, `npx cdk deploy` deploys the demo. */
import { App } from 'aws-cdk-lib';
import { PaymentsStack } from './payments-stack.js';

const app = new App();
new PaymentsStack(app, 'PaymentsDemo');
app.synth();
