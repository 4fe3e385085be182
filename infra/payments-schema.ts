import type { TableSchema } from '../lib/table-schema.js';

/**
 * The payments table of the demo service, defined once: the stack, the demo and the tests derive
 * their tables from it, and the payment service writes items keyed by it.
 */
export const paymentsTableSchema: TableSchema = Object.freeze({
  partitionKey: Object.freeze({ name: 'paymentId', type: 'S' as const }),
});
