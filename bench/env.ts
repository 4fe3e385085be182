/**
 * Process environment shared by both libraries, set before any client or persistence layer exists.
 * Imported first by bench/run.ts. Benchmark tooling, not part of the library.
 */

/** Namespace of the records: our middleware reads `context.functionName`, Powertools this variable. */
export const FUNCTION_NAME = 'bench-fn';

process.env.AWS_LAMBDA_FUNCTION_NAME = FUNCTION_NAME;
process.env.AWS_REGION ??= 'us-east-1';
// The SDK prints a deprecation notice for Node 20 on the first client; it is noise in the table.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
process.env.DDB_LOCAL_TELEMETRY = '0';
