/**
 * Exact numbers in queue and stream messages (fast-check): a message JSON.parse reads faithfully
 * parses to the same value, and a number no double holds arrives as its exact text, so two
 * messages that differ in a digit are never one message.
 */

import fc from 'fast-check';
import { exactNumber, parseExactJson } from '../../lib/exact-json.js';

const RUNS = { numRuns: 300, seed: Number(process.env.FC_SEED ?? 20_251_201) };

test('a document of doubles, as JSON.stringify writes it, parses to what JSON.parse gives', () => {
  fc.assert(
    fc.property(fc.jsonValue(), (value) => {
      const text = JSON.stringify(value);
      expect(parseExactJson(text)).toEqual(JSON.parse(text));
    }),
    RUNS,
  );
});

test('two different integers never parse to one value; safe integers are numbers', () => {
  const integer = fc.oneof(fc.bigInt({ min: -(10n ** 30n), max: 10n ** 30n }), fc.bigInt({ min: 2n ** 53n - 5n, max: 2n ** 53n + 5n }));
  const parse = (n: bigint) => (parseExactJson(`{"id":${n}}`) as { id: number | string }).id;
  fc.assert(
    fc.property(integer, integer, (a, b) => {
      if (a !== b) expect(parse(a)).not.toEqual(parse(b));
      if (a >= -(2n ** 53n) && a <= 2n ** 53n) expect(parse(a)).toBe(Number(a));
    }),
    RUNS,
  );
});

test('a decimal is a number when it is the shortest text of its double (in any notation), else its exact text', () => {
  expect(['1.0', '1e2', '0.10', '-0.0', '1E-7', '0.00000001', '1e21', '123.4500e-2'].map(exactNumber)).toEqual([1, 100, 0.1, -0, 1e-7, 1e-8, 1e21, 1.2345]);
  expect(['0.1000000000000000000001', '1e400', '-1e400', '9007199254740993', '1e-400'].map(exactNumber)).toEqual([
    '0.1000000000000000000001',
    '1e400',
    '-1e400',
    '9007199254740993',
    '1e-400',
  ]);
});

test("a text that is not JSON throws JSON.parse's SyntaxError", () => {
  expect(() => parseExactJson('{"id":1234567890123456789,')).toThrow(SyntaxError);
});

test('a number with at most 15 significant digits and a 2-digit exponent is exact without the second pass', () => {
  const digits = fc.stringMatching(/^[1-9]\d{0,14}$/);
  fc.assert(
    fc.property(digits, fc.integer({ min: 0, max: 15 }), fc.integer({ min: -99, max: 99 }), fc.boolean(), (significant, point, exponent, negative) => {
      const at = Math.min(point, significant.length);
      const mantissa = at === 0 ? significant : `${significant.slice(0, at)}.${significant.slice(at)}`.replace(/\.$/, '');
      const text = `${negative ? '-' : ''}${mantissa}e${exponent}`;
      expect(exactNumber(text)).toBe(Number(text));
      expect(parseExactJson(`[${text}]`)).toEqual([Number(text)]);
    }),
    RUNS,
  );
});

test('a number beyond the doubles, too large or too small, arrives as its exact text, not as Infinity or 0', () => {
  expect(parseExactJson('{"n":1e400,"m":-1E-400,"k":[2.5e308]}')).toEqual({ n: '1e400', m: '-1E-400', k: ['2.5e308'] });
  expect(parseExactJson('{"n":1e400}')).not.toEqual(parseExactJson('{"n":1e401}'));
});

test('a decimal of more than 15 significant digits split by its point arrives exact: two amounts that round to one double stay two', () => {
  expect(parseExactJson('{"amount":1234567890.12345678}')).toEqual({ amount: '1234567890.12345678' });
  expect(parseExactJson('{"amount":1234567890.12345678}')).not.toEqual(parseExactJson('{"amount":1234567890.12345679}'));
});

test('digits inside a string after an escaped backslash or quote stay text, and the document parses as JSON.parse reads it', () => {
  for (const text of ['{"a":"\\\\","b":"12345678901234567890"}', '{"a":"x\\"","b":"1234567890123456789.5"}', '["\\\\\\"",12,"9007199254740993"]']) {
    expect(parseExactJson(text)).toEqual(JSON.parse(text));
  }
  expect(parseExactJson('{"a":"\\\\","b":[12345678901234567890]}')).toEqual({ a: '\\', b: ['12345678901234567890'] });
});
