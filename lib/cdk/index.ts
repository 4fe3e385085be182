/**
 * CDK constructs for lambda-idempotency (`lambda-idempotency/cdk`). Needs the optional peers
 * `aws-cdk-lib` and `constructs`.
 */

export type { TableSchema } from '../table-schema.js';
export { idempotencyTableSchema } from '../table-schema.js';
export type { AttachFunctionOptions, ExistingIdempotencyTableProps, IdempotencyTableProps, IdempotentSqsConsumerProps } from './idempotency-table.js';
export {
  IDEMPOTENCY_EXPIRES_AFTER_SECONDS_ENV,
  IDEMPOTENCY_TABLE_ENV,
  IdempotencyTable,
  IdempotencyTableBase,
} from './idempotency-table.js';
export type { IdempotencyAlarmThresholds, IdempotencyMonitoringProps } from './monitoring.js';
export { IdempotencyMonitoring } from './monitoring.js';
export type { SchemaTableProps } from './schema.js';
export { tablePropsFromSchema } from './schema.js';
