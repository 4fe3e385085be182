/**
 * DynamoDB's documented item-size rules ("DynamoDB item sizes and formats", Developer Guide) and
 * the capacity units they imply. Sizes are what DynamoDB meters, not what travels on the wire.
 */
import type { AttributeValue } from '@aws-sdk/client-dynamodb';

const utf8 = (text: string): number => Buffer.byteLength(text, 'utf8');

/** 1 byte per two significant digits, plus 1; leading and trailing zeroes do not count. */
function numberSize(text: string): number {
  const mantissa = text.replace(/^[-+]/, '').replace(/[eE].*$/, '');
  const digits = mantissa.replace('.', '').replace(/^0+/, '').replace(/0+$/, '');
  return Math.ceil(Math.max(1, digits.length) / 2) + 1;
}

function binarySize(value: Uint8Array | string): number {
  return typeof value === 'string' ? Buffer.from(value, 'base64').byteLength : value.byteLength;
}

/** The size of a value, without its attribute name. */
export function valueSize(value: AttributeValue): number {
  if (value.S !== undefined) return utf8(value.S);
  if (value.N !== undefined) return numberSize(value.N);
  if (value.B !== undefined) return binarySize(value.B as Uint8Array | string);
  if (value.BOOL !== undefined || value.NULL !== undefined) return 1;
  if (value.SS !== undefined) return value.SS.reduce((sum, s) => sum + utf8(s), 0);
  if (value.NS !== undefined) return value.NS.reduce((sum, n) => sum + numberSize(n), 0);
  if (value.BS !== undefined) return value.BS.reduce((sum, b) => sum + binarySize(b as Uint8Array | string), 0);
  // A List or Map: 3 bytes of overhead, plus 1 byte per element.
  if (value.L !== undefined) return 3 + value.L.reduce((sum, element) => sum + valueSize(element) + 1, 0);
  if (value.M !== undefined) return 3 + Object.entries(value.M).reduce((sum, [name, element]) => sum + utf8(name) + valueSize(element) + 1, 0);
  throw new TypeError(`Unknown AttributeValue: ${JSON.stringify(Object.keys(value))}`);
}

/** Item size in bytes: attribute names plus values. */
export function itemSize(item: Record<string, AttributeValue>): number {
  return Object.entries(item).reduce((sum, [name, value]) => sum + utf8(name) + valueSize(value), 0);
}

/** Write units: 1 per started KB (a write of nothing, e.g. a refused write on no item, costs 1). */
export const writeUnits = (bytes: number): number => Math.max(1, Math.ceil(bytes / 1024));

/** Read units: 1 per started 4 KB for a strongly consistent read, half for an eventually consistent one. */
export const readUnits = (bytes: number, consistent: boolean): number => Math.max(1, Math.ceil(bytes / 4096)) * (consistent ? 1 : 0.5);
