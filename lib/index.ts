export type {
  BatchEvent,
  BatchHandler,
  BatchRecord,
  BatchResponse,
  IdempotentBatchOptions,
  PipesBatchEvent,
  PipesKinesisRecord,
  RecordHandler,
  StreamChange,
} from './batch.js';
export { idempotentBatch } from './batch.js';
export type { AttributeNames, DynamoDBStoreOptions } from './dynamodb-store.js';
export { DEFAULT_ATTRIBUTE_NAMES, DynamoDBStore } from './dynamodb-store.js';
export { aesGcmEncryption, type OutcomeEncryption, type SealedFor } from './encryption.js';
export type { IdempotencyErrorCode, IdempotencyErrorOptions } from './errors.js';
export { describeStoreFailure, IdempotencyError, isIdempotencyError } from './errors.js';
export type { HttpEvent, HttpIdempotencyOptions, HttpResult } from './http.js';
export { httpIdempotency } from './http.js';
export { callerIdentity, type HttpScope } from './http-caller.js';
export { makeIdempotent } from './idempotent.js';
export { canonicalJson, hashKey } from './key.js';
export { idempotency } from './middleware.js';
export type { IdempotencyEvent, IdempotencyEventDetail, IdempotencyListener, ObservabilityOptions } from './observability.js';
export { cloudWatchLines } from './observability.js';
export type { ForgetRecordOptions, HttpRecordKey, InspectRecordOptions, RecordAddress } from './operations.js';
export { forgetRecord, httpKeyValue, inspectRecord, recordIdOf } from './operations.js';
export type { IdempotencyLogger, IdempotencyOptions, LambdaContextLike } from './options.js';
export type { EncryptionKey, ResponseEncryption } from './response-codec.js';
export type { IssueIdempotencyKeyOptions, SigningSecret, VerifyIdempotencyKeyOptions } from './signed-keys.js';
export { issueIdempotencyKey, verifyIdempotencyKey } from './signed-keys.js';
export type {
  ClaimCompletedRequest,
  ClaimRequest,
  ClaimResult,
  CompleteRequest,
  CompleteResult,
  IdempotencyRecord,
  IdempotencyStore,
  RecordItem,
  RecordStatus,
  RecordSummary,
  ReleaseRequest,
  ReleaseResult,
} from './store.js';
export type { TableSchema } from './table-schema.js';
export { idempotencyTableSchema } from './table-schema.js';
export type { Transaction, TransactionConditionCheck, TransactionDelete, TransactionPut, TransactionUpdate } from './transaction.js';
export { transaction } from './transaction.js';
export type { TransitionParams } from './transition.js';
export { transition } from './transition.js';
