export { idempotency } from './middleware.js';
export { makeIdempotent } from './idempotent.js';
export { DynamoDBStore, DEFAULT_ATTRIBUTE_NAMES } from './dynamodb-store.js';
export type { AttributeNames, DynamoDBStoreOptions } from './dynamodb-store.js';
export { IdempotencyError, isIdempotencyError, describeStoreFailure } from './errors.js';
export type { IdempotencyErrorCode, IdempotencyErrorOptions } from './errors.js';
export { canonicalJson, hashKey } from './key.js';
export type { IdempotencyOptions, IdempotencyLogger, LambdaContextLike } from './options.js';
export type {
  IdempotencyStore,
  IdempotencyRecord,
  RecordStatus,
  ClaimRequest,
  ClaimResult,
  CompleteRequest,
  CompleteResult,
  ReleaseRequest,
  ReleaseResult,
  RecordSummary,
} from './store.js';
export { httpIdempotency } from './http.js';
export type { HttpEvent, HttpResult, HttpIdempotencyOptions } from './http.js';
export { callerIdentity, type HttpScope } from './http-caller.js';
export { idempotentBatch } from './batch.js';
export type { BatchEvent, BatchRecord, BatchResponse, IdempotentBatchOptions, RecordHandler, StreamChange } from './batch.js';
export { idempotencyTableSchema } from './table-schema.js';
export type { TableSchema } from './table-schema.js';
export { transaction } from './transaction.js';
export type { Transaction, TransactionPut, TransactionUpdate, TransactionDelete, TransactionConditionCheck } from './transaction.js';
export { transition } from './transition.js';
export type { TransitionParams } from './transition.js';
export type { ObservabilityOptions, IdempotencyEvent } from './observability.js';
export type { ResponseEncryption, EncryptionKey } from './response-codec.js';
export { forgetRecord, httpKeyValue, inspectRecord, recordIdOf } from './operations.js';
export type { ForgetRecordOptions, HttpRecordKey, InspectRecordOptions, RecordAddress } from './operations.js';
export { issueIdempotencyKey, verifyIdempotencyKey } from './signed-keys.js';
export type { IssueIdempotencyKeyOptions, SigningSecret } from './signed-keys.js';
