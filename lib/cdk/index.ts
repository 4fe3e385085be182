/**
 * CDK constructs for lambda-idempotency (`lambda-idempotency/cdk`). Needs the optional peers
 * `aws-cdk-lib` and `constructs`.
 */
export {
  IdempotencyTable,
  IDEMPOTENCY_TABLE_ENV,
  IDEMPOTENCY_EXPIRES_AFTER_SECONDS_ENV,
} from './idempotency-table.js';
export type { IdempotencyTableProps, IdempotentSqsConsumerProps } from './idempotency-table.js';
export { IdempotencyMonitoring } from './monitoring.js';
export type { IdempotencyMonitoringProps, IdempotencyAlarmThresholds } from './monitoring.js';
export { tablePropsFromSchema } from './schema.js';
export type { SchemaTableProps } from './schema.js';
export { idempotencyTableSchema } from '../table-schema.js';
export type { TableSchema } from '../table-schema.js';
