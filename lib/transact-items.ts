import type { TransactWriteItem } from '@aws-sdk/client-dynamodb';

/** The table a transaction action writes or checks, whichever of the four kinds it is. @internal */
export const actionTable = (action: TransactWriteItem): string | undefined =>
  (action.Put ?? action.Update ?? action.Delete ?? action.ConditionCheck)?.TableName;
