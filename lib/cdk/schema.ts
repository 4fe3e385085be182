import { type Attribute, AttributeType } from 'aws-cdk-lib/aws-dynamodb';
import type { TableSchema } from '../table-schema.js';

/** The key and TTL properties of a `dynamodb.Table` for a {@link TableSchema}. */
export interface SchemaTableProps {
  /** The schema's partition key. */
  readonly partitionKey: Attribute;
  /**
   * The schema's sort key.
   * @default - none: the schema has no sort key
   */
  readonly sortKey?: Attribute;
  /**
   * The schema's TTL attribute.
   * @default - none: the schema names no TTL attribute
   */
  readonly timeToLiveAttribute?: string;
}

const attribute = (key: TableSchema['partitionKey']): Attribute => ({
  name: key.name,
  type: key.type === 'S' ? AttributeType.STRING : AttributeType.NUMBER,
});

/**
 * Derives a table's key schema and TTL attribute from a {@link TableSchema}, so the CDK table, the
 * local tables of the demo and tests, and the code that writes the items share one definition.
 *
 * @example
 * ```ts
 * new dynamodb.Table(this, 'Orders', { ...tablePropsFromSchema(ordersSchema), billingMode: dynamodb.BillingMode.PAY_PER_REQUEST });
 * ```
 */
export function tablePropsFromSchema(schema: TableSchema): SchemaTableProps {
  return {
    partitionKey: attribute(schema.partitionKey),
    ...(schema.sortKey ? { sortKey: attribute(schema.sortKey) } : {}),
    ...(schema.timeToLiveAttribute ? { timeToLiveAttribute: schema.timeToLiveAttribute } : {}),
  };
}
