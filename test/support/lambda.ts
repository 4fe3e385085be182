import { randomUUID } from 'node:crypto';
import type { Context } from 'aws-lambda';

/**
 * A Lambda context as the runtime passes it. The library reads only `functionName` (the record
 * namespace) and `getRemainingTimeInMillis` (the lease); the rest is there to look like the real one.
 */
export function lambdaContext(functionName: string, remainingMillis = 10_000): Context {
  return {
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:eu-west-1:123456789012:function:${functionName}`,
    memoryLimitInMB: '512',
    awsRequestId: randomUUID(),
    getRemainingTimeInMillis: () => remainingMillis,
  } as unknown as Context;
}
