/**
 * Runs in each test file's environment before it loads. CDK's built-in CloudFormation validation
 * loads a WebAssembly engine (about 20 s of a file's time on this machine, once per test file) and,
 * unless an app enables the `@aws-cdk/core:validateAgainstDefaultRules` feature flag, only prints
 * warnings: it cannot fail a test. The stacks the tests synthesize in process skip it; the
 * end-to-end `cdk synth` of integration/bundles.test.ts runs it, as a user's synth does.
 */
process.env.CDK_VALIDATION = 'false';
