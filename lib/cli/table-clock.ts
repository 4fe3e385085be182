import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';

/**
 * The clock a command judges leases by. A lease is the functions' deadline, on their clock; an
 * operator's laptop, VM or WSL clock can run ahead of it by seconds or minutes (the SDK corrects
 * its own offset only for signing), and by such a clock a live attempt would look ended: forget
 * would delete it and the next call run the handler a second time. So a lease has ended only once
 * both this machine's clock and the table's say so: the `Date` of DynamoDB's latest answer, whole
 * seconds, is never later than the table's time when it arrives. Without that header, this
 * machine's clock alone. @internal
 */
export interface TableClock {
  /** Epoch milliseconds: this machine's time, or the table's where that is earlier. */
  readonly now: () => number;
  /** How far this machine's clock was ahead of the table's `Date` at its latest answer, in milliseconds; 0 when behind. */
  readonly ahead: () => number;
}

/** The clock of the commands sent through `client`, which it watches from now on. @internal */
export function tableClock(client: DynamoDBClient, local: () => number): TableClock {
  // The table's time minus this machine's, from the latest answer that carried a Date.
  let offset = 0;
  client.middlewareStack.add(
    (next) => async (args) => {
      const output = await next(args);
      const date = Date.parse((output.response as { headers?: Record<string, string> } | undefined)?.headers?.date ?? '');
      if (!Number.isNaN(date)) offset = date - local();
      return output;
    },
    { step: 'deserialize', name: 'idempotencyTableClock' },
  );
  return { now: () => local() + Math.min(0, offset), ahead: () => Math.max(0, -offset) };
}
