import { type AttributeValue, type DynamoDBClient, ScanCommand, type ScanCommandOutput } from '@aws-sdk/client-dynamodb';
import { THROTTLED_NAMES } from '../dynamodb/dynamodb-store.js';
import { type AttributeNames, otherAttributeNames } from '../dynamodb-store.js';
import type { RecordSummary } from '../store.js';
import { keyAttributeAdvice } from './format.js';

/** Where to look for stuck records. @internal */
export interface StuckQuery {
  readonly client: DynamoDBClient;
  readonly tableName: string;
  readonly attributes: AttributeNames;
  /** Only records of this namespace. */
  readonly name?: string;
  /**
   * Epoch milliseconds: leases that ended before it. Asked before the scan and again after each page,
   * whose answer may date a clock that is behind this one (the table's: see `tableClock`).
   */
  readonly now: () => number;
}

/**
 * INPROGRESS records whose lease ended before `now`: attempts that crashed or timed out and
 * whose key has not been called again since (the next call takes the record over). A paginated
 * Scan: it reads, and bills, every item of the table; yields each page's matches as they come.
 * Throws, before the page's matches, at the first page whose items lack `attributes.key`.
 * @internal
 */
export async function* stuckRecords(query: StuckQuery): AsyncGenerator<RecordSummary> {
  const a = query.attributes;
  const names: Record<string, string> = {
    '#id': a.key,
    '#status': a.status,
    '#exp': a.expiration,
    '#lease': a.leaseUntil,
    '#fp': a.fingerprint,
    '#owner': a.owner,
  };
  // The filter's names alone: DynamoDB refuses a name no expression uses.
  const { '#exp': _exp, '#fp': _fp, ...filterNames } = names;
  const values: Record<string, AttributeValue> = { ':inprogress': { S: 'INPROGRESS' }, ':now': { N: String(query.now()) } };
  // Every attempt of this library writes its owner: an INPROGRESS item without one is another
  // library's on a shared table (Powertools' in-progress record, its lease under the same name).
  let filter = '#status = :inprogress AND #lease < :now AND attribute_exists(#owner)';
  if (query.name !== undefined) {
    // Every record of this library holds a status: one of the namespace without it is written under
    // other attribute names, which would hide every stuck record of it (the scan reporting none).
    // Nor one that is INPROGRESS without the lease or the owner under these names: its store may name
    // them otherwise (its attempts then never match), which the item's other attribute names tell.
    filter = `begins_with(#id, :prefix) AND ((${filter}) OR attribute_not_exists(#status) OR (#status = :inprogress AND (attribute_not_exists(#lease) OR attribute_not_exists(#owner))))`;
    values[':prefix'] = { S: `${query.name}#` };
  }
  // Every item holds its table's key attribute: an item without `#id` says that the table is keyed
  // by another, and its records use other names than these, which would miss them all (the scan
  // reporting none) or list them without their ids. On a table keyed by `#id` this matches no item:
  // a correct table costs no request, and no byte, more than the scan itself.
  filter = `(${filter}) OR attribute_not_exists(#id)`;
  let start: Record<string, AttributeValue> | undefined;
  do {
    const page = await scanPage(
      query.client,
      new ScanCommand({
        TableName: query.tableName,
        FilterExpression: filter,
        // INPROGRESS records hold no response; read only what the summary shows. With a namespace, whole
        // items: the attribute names of one without a lease or an owner under these names tell why.
        ...(query.name === undefined ? { ProjectionExpression: '#id, #status, #exp, #lease, #fp' } : {}),
        ExpressionAttributeNames: query.name === undefined ? names : filterNames,
        ExpressionAttributeValues: values,
        ...(start === undefined ? {} : { ExclusiveStartKey: start }),
      }),
    );
    const items = page.Items ?? [];
    if (items.some((item) => item[a.key] === undefined)) {
      throw new Error(`Items of ${query.tableName} have no \`${a.key}\` attribute: ${keyAttributeAdvice(query.tableName, a.key)}`);
    }
    // Another library's records on a shared table hold no status under this name either (Powertools
    // configured with another `statusAttr`): only an id of this library's shape says that its records
    // use other names. Those others are left out, as are its records that hold a status.
    if (items.some((item) => query.name !== undefined && item[a.status] === undefined && isRecordIdOf(item[a.key]?.S, `${query.name}#`))) {
      throw new Error(
        `Records of ${query.name} in ${query.tableName} have no \`${a.status}\` attribute: they use other attribute names than these; give --attributes with every name the functions' store uses.`,
      );
    }
    const now = query.now();
    for (const item of items) {
      if (item[a.status] === undefined) continue;
      // Without a namespace the filter matched only attempts that hold both (the projection leaves out the owner).
      const missing = query.name === undefined ? undefined : [a.leaseUntil, a.owner].find((name) => item[name] === undefined);
      if (missing !== undefined) {
        // An INPROGRESS record without a lease (written by hand, or by an older version) is held until its
        // retention, not stuck; one that also holds attributes none of these names is, uses other names.
        if (isRecordIdOf(item[a.key]?.S, `${query.name}#`) && otherAttributeNames(item, a).length > 0) {
          throw new Error(
            `Records of ${query.name} in ${query.tableName} have no \`${missing}\` attribute: they use other attribute names than these; give --attributes with every name the functions' store uses.`,
          );
        }
        continue;
      }
      // Ended by this machine's clock, which the filter had, but not by the table's, which its answer dated: live.
      const leaseUntil = Number(item[a.leaseUntil]?.N);
      if (leaseUntil >= now) continue;
      // Scanned items are not checked as records are: one written by hand may have no expiration,
      // shown without one, as inspect shows it (a NaN would print as null in JSON).
      const expiration = item[a.expiration]?.N;
      yield {
        key: item[a.key]?.S ?? '(no id)',
        status: 'INPROGRESS',
        ...(expiration === undefined ? {} : { expiresAt: Number(expiration) }),
        leaseUntil,
        hasFingerprint: item[a.fingerprint] !== undefined,
        responseOmitted: false,
      };
    }
    start = page.LastEvaluatedKey;
  } while (start !== undefined);
}

/**
 * Whether `id` is a record id of this library under `prefix` (`<name>#`): a base64url SHA-256 (43
 * characters) follows it. Powertools' ids end in a base64 digest, whose length is a multiple of 4.
 */
function isRecordIdOf(id: string | undefined, prefix: string): boolean {
  return id !== undefined && id.length === prefix.length + 43 && id.startsWith(prefix) && /^[\w-]{43}$/.test(id.slice(prefix.length));
}

/** Waits after the SDK's own attempts of a page: 1, 2, 4, 8, 16 s, about half a minute in all. */
const PAGE_RETRIES = 5;

/**
 * One page of the scan. A page still throttled after the SDK's attempts is asked for again, from
 * where it starts, after a longer wait: failing would send the operator back to the first page of
 * a table that throttles at the same point each time.
 */
async function scanPage(client: DynamoDBClient, command: ScanCommand): Promise<ScanCommandOutput> {
  for (let retry = 0; ; retry++) {
    try {
      return await client.send(command);
    } catch (error) {
      // A page read faster than the table's capacity allows was not read, and can be asked for again.
      if (retry === PAGE_RETRIES || !THROTTLED_NAMES.includes((error as Error | null)?.name ?? '')) throw error;
      await new Promise((resolve) => setTimeout(resolve, 1000 * 2 ** retry));
    }
  }
}
