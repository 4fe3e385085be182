/** The room a completion leaves a record's outcome, and how the outcome is fitted into it. */
import { DEFAULT_ATTRIBUTE_NAMES } from '../../lib/dynamodb-store-options.js';
import { ResponseCodec } from '../../lib/response-codec.js';
import { encodeOutcome, ITEM_LIMIT_BYTES, outcomeBudget } from '../../lib/stored-outcome.js';

const codec = new ResponseCodec(ITEM_LIMIT_BYTES, undefined);

test("the outcome's room is the item limit less every other attribute of a COMPLETED record, a fingerprint's included even when none is stored", () => {
  const request = { key: 'charge#abc', owner: 'owner-1', expiresAt: 1_700_086_400 };
  const others =
    'id'.length +
    request.key.length +
    'status'.length +
    'COMPLETED'.length +
    // DynamoDB counts a number a little over its digits: one byte more is kept for it.
    'expiration'.length +
    String(request.expiresAt).length +
    1 +
    'owner'.length +
    request.owner.length +
    // The completion cannot see whether the claim stored a fingerprint (SHA-256 in hex): room is kept for one.
    'fingerprint'.length +
    64;
  expect(outcomeBudget(DEFAULT_ATTRIBUTE_NAMES, request)).toBe(ITEM_LIMIT_BYTES - others);
});

test('a response that does not fit is omitted, and the flag that says so is counted before the final error is fitted', async () => {
  const budget = 1000;
  const error = JSON.stringify({ name: 'Error', message: 'e'.repeat(990 - 29) });
  expect(Buffer.byteLength(error)).toBe(990);
  const stored = await encodeOutcome(codec, DEFAULT_ATTRIBUTE_NAMES, { key: 'charge#abc', response: JSON.stringify('x'.repeat(2000)), error }, budget);
  expect(stored.omitted).toBe(true);
  expect(stored.response).toBeUndefined();
  // 1000 bytes less `responseOmitted` (15 + 1) less the name `error` (5): 979 bytes for the error's text.
  expect(stored.storedError).toBeDefined();
  expect(Buffer.byteLength(stored.storedError!)).toBeLessThanOrEqual(979);
  expect(stored.error).toEqual({ S: stored.storedError });
});

test('a final error that fits is stored as it is, and not reported as cut short', async () => {
  const error = JSON.stringify({ name: 'Error', message: 'declined', code: 'DECLINED' });
  const stored = await encodeOutcome(codec, DEFAULT_ATTRIBUTE_NAMES, { key: 'charge#abc', response: undefined, error }, 1000);
  expect(stored).toStrictEqual({ omitted: false, error: { S: error } });
});

test('a final error cut short keeps its name, code and the small fields that fit, never losing the name and code to fields', async () => {
  const fields = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`reason${i}`, 'r'.repeat(40)]));
  const error = JSON.stringify({ name: 'CardDeclined', message: 'm'.repeat(2000), code: 'DECLINED', statusCode: 402, ...fields });
  const stored = await encodeOutcome(codec, DEFAULT_ATTRIBUTE_NAMES, { key: 'charge#abc', response: undefined, error }, 600);
  const kept = JSON.parse(stored.storedError!) as Record<string, unknown>;
  // 600 bytes less the name `error` (5): the stored text fills at most the rest.
  expect(Buffer.byteLength(stored.storedError!)).toBeLessThanOrEqual(595);
  expect(kept).toMatchObject({ name: 'CardDeclined', code: 'DECLINED', statusCode: 402, message: expect.stringMatching(/^m*…$/), reason0: 'r'.repeat(40) });
  // The fields that did not fit are dropped, not cut.
  expect(Object.keys(kept).length).toBeLessThan(4 + 40);
});

test('a final error that fills its room to the byte is stored as it is, its large fields included; one byte more and it is cut short', async () => {
  const error = JSON.stringify({ name: 'CardDeclined', message: 'declined', code: 'DECLINED', details: { attempts: [1, 2, 3] } });
  // The room less the name `error` (5 bytes) is exactly the error's text.
  const budget = Buffer.byteLength(error) + 5;
  const fits = await encodeOutcome(codec, DEFAULT_ATTRIBUTE_NAMES, { key: 'charge#abc', response: undefined, error }, budget);
  expect(fits).toStrictEqual({ omitted: false, error: { S: error } });
  const cut = await encodeOutcome(codec, DEFAULT_ATTRIBUTE_NAMES, { key: 'charge#abc', response: undefined, error }, budget - 1);
  expect(JSON.parse(cut.storedError!)).toStrictEqual({ name: 'CardDeclined', message: 'declined', code: 'DECLINED' });
});

test('a final error cut short keeps a string field of up to 256 characters whole, and drops a longer one rather than cut it', async () => {
  const error = JSON.stringify({ name: 'CardDeclined', message: 'm'.repeat(4000), code: 'DECLINED', reason: 'r'.repeat(256), detail: 'd'.repeat(257) });
  const stored = await encodeOutcome(codec, DEFAULT_ATTRIBUTE_NAMES, { key: 'charge#abc', response: undefined, error }, 2000);
  const kept = JSON.parse(stored.storedError!) as Record<string, unknown>;
  expect(kept).toMatchObject({ name: 'CardDeclined', code: 'DECLINED', reason: 'r'.repeat(256), message: expect.stringMatching(/^m+…$/) });
  expect(kept).not.toHaveProperty('detail');
});

test.each([
  ['a number', 429],
  ['a boolean', false],
  ['null (an API error\'s `"code": null`)', null],
])('a final error cut short keeps a code that is %s as it is', async (_what, code) => {
  const error = JSON.stringify({ name: 'ThrottlingError', message: 'm'.repeat(4000), code });
  const stored = await encodeOutcome(codec, DEFAULT_ATTRIBUTE_NAMES, { key: 'charge#abc', response: undefined, error }, 1000);
  expect(JSON.parse(stored.storedError!)).toStrictEqual({ name: 'ThrottlingError', code, message: expect.stringMatching(/^m+…$/) });
});

test('a final error cut short keeps the first 256 characters of a longer name and code, so that it still fits', async () => {
  const error = JSON.stringify({ name: 'N'.repeat(5000), message: 'declined', code: 'C'.repeat(5000) });
  const stored = await encodeOutcome(codec, DEFAULT_ATTRIBUTE_NAMES, { key: 'charge#abc', response: undefined, error }, 1000);
  expect(stored.omitted).toBe(false);
  expect(JSON.parse(stored.storedError!)).toStrictEqual({ name: 'N'.repeat(256), code: 'C'.repeat(256), message: 'declined' });
});
