/**
 * What `inspect` and `stuck` print for a record, from the summary alone: how far an instant is from
 * now, in the largest unit that fits, and the lines an operator reads before forgetting a record.
 */
import { describeRecord, describeStuck, jsonText, relative } from '../../lib/cli/format.js';
import type { RecordSummary } from '../../lib/store.js';

test.each([
  [0, 'in 0 s'],
  [-1, '0 s ago'],
  [119_999, 'in 119 s'],
  [120_000, 'in 2 min'],
  [-7_199_999, '119 min ago'],
  [7_200_000, 'in 2 h'],
  [172_799_999, 'in 47 h'],
  [-172_800_000, '2 days ago'],
  [30 * 86_400_000, 'in 30 days'],
])('%d ms from now reads %s', (millis, text) => {
  expect(relative(millis)).toBe(text);
});

const now = Date.UTC(2026, 11, 2, 16, 8, 35, 123);
const record: RecordSummary = { key: 'orders#h', status: 'INPROGRESS', expiresAt: now / 1000 + 86_400 - 0.123, hasFingerprint: false, responseOmitted: false };

test('a lease that ends at this millisecond still holds the record; one that ended a millisecond ago says the next call takes it over', () => {
  const lease = (leaseUntil: number) => /\n {2}lease {8}(.*)\n/.exec(describeRecord({ ...record, leaseUntil }, now))![1];
  expect(lease(now)).toBe('2026-12-02T16:08:35.123Z (in 0 s)');
  expect(lease(now - 1)).toBe('2026-12-02T16:08:35.122Z (0 s ago), ended: the next call takes the record over');
});

test('a retention holds the record through the last millisecond of the second it names: inspect shows it ending then, and expired only after it', () => {
  const expires = (at: number) => /\n {2}expires {6}(.*)\n/.exec(describeRecord({ ...record, expiresAt: 1_796_400_000 }, at))![1];
  expect(expires(1_796_400_000_500)).toBe('2026-12-04T16:00:00.999Z (in 0 s)');
  expect(expires(1_796_400_000_999)).toBe('2026-12-04T16:00:00.999Z (in 0 s)');
  expect(expires(1_796_400_001_000)).toBe('2026-12-04T16:00:00.999Z (0 s ago), expired: the next call with this key runs again');
});

test('a COMPLETED record shows what a duplicate gets: a stored response, none, or a stored final error', () => {
  const completed: RecordSummary = { ...record, status: 'COMPLETED', hasFingerprint: true, responseBytes: 42 };
  expect(describeRecord(completed, now)).toContain('\n  fingerprint  stored\n  response     42 bytes\n  final error  none');
  expect(describeRecord({ ...completed, responseBytes: undefined, responseOmitted: true }, now)).toContain(
    '\n  response     not stored (too large, not serialisable, or the key provider failed at completion); duplicates get RESPONSE_NOT_STORED\n',
  );
  expect(describeRecord({ ...completed, responseBytes: undefined, errorBytes: 120 }, now)).toMatch(
    /\n {2}response {5}none\n {2}final error {2}120 bytes, replayed to duplicates$/,
  );
  expect(describeRecord({ ...completed, responseBytes: undefined, responseOmitted: true, errorOmitted: true }, now)).toMatch(
    /\n {2}response {5}none\n {2}final error {2}not stored \(the key provider failed at completion\); duplicates get ERROR_NOT_STORED$/,
  );
});

test('a record whose response or final error is sealed names the key that sealed it, after the final error; one stored in the clear has no such line', () => {
  const sealed: RecordSummary = { ...record, status: 'COMPLETED', responseBytes: 70, keyId: 'k-2024' };
  expect(describeRecord(sealed, now)).toMatch(/\n {2}response {5}70 bytes\n {2}final error {2}none\n {2}sealed with {2}key `k-2024`$/);
  expect(describeRecord({ ...sealed, responseBytes: undefined, errorBytes: 90 }, now)).toMatch(
    /\n {2}final error {2}90 bytes, replayed to duplicates\n {2}sealed with {2}key `k-2024`$/,
  );
  expect(describeRecord({ ...sealed, keyId: undefined }, now)).not.toContain('sealed with');
});

test('a key id read from the table is printed without its control or format characters: an escape sequence written into the record never reaches the terminal', () => {
  // Clears the screen, moves the cursor up over the lines above, sets the clipboard (OSC 52), reverses the text that follows.
  const keyId = 'k1\u001b[2J\u001b[1A\u009b0m\u001b]52;c;ZWNobyBoaQ==\u0007\u202e\u{e0041}';
  const text = describeRecord({ ...record, status: 'COMPLETED', responseBytes: 70, keyId }, now);
  expect(text.replaceAll('\n', '')).not.toMatch(/[\p{Cc}\p{Cf}]/u);
  expect(text).toMatch(/\n {2}sealed with {2}key `k1\\u001b\[2J\\u001b\[1A\\u009b0m\\u001b\]52;c;ZWNobyBoaQ==\\u0007\\u202e\\u\{e0041\}`$/);
});

test('--json writes the C1 controls and format characters JSON.stringify leaves as they are (an 8-bit CSI, a bidi override) as escapes, and reads back the same key id', () => {
  const keyId = 'k1\u001b[2J\u009b0m\u0085\u202e\u{e0041}';
  const text = jsonText({ ...record, keyId });
  expect(text.replaceAll('\n', '')).not.toMatch(/[\p{Cc}\p{Cf}]/u);
  expect(text).toContain('"keyId": "k1\\u001b[2J\\u009b0m\\u0085\\u202e\\udb40\\udc41"');
  expect(JSON.parse(text)).toEqual({ ...record, keyId });
});

test('stuck prints the record id, when its lease ended and when its retention ends', () => {
  expect(describeStuck({ ...record, expiresAt: 1_796_400_000, leaseUntil: now - 3 * 3_600_000 }, now)).toBe(
    'orders#h  lease ended 2026-12-02T13:08:35.123Z (3 h ago), expires 2026-12-04T16:00:00.999Z',
  );
});
