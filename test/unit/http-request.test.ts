/**
 * Request fingerprints (fast-check): two requests whose bytes differ in meaning never share a
 * fingerprint (numbers by their exact text, invalid UTF-8 by its bytes), while whitespace, member
 * order and the choice of string escapes never matter.
 */

import { isDeepStrictEqual } from 'node:util';
import * as zlib from 'node:zlib';
import { brotliCompressSync, constants, deflateSync, gzipSync } from 'node:zlib';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import fc from 'fast-check';
import { body, headerList, query } from '../../lib/http-request.js';
import { prng } from '../support/faults.js';
import { albEvent } from '../support/identity-events.js';

const SEED = Number(process.env.FC_SEED ?? 20_250_115);
const RUNS = { numRuns: 400, seed: SEED };

const request = (text: string | Buffer, isBase64Encoded = Buffer.isBuffer(text)) =>
  ({ version: '2.0', body: Buffer.isBuffer(text) ? text.toString('base64') : text, isBase64Encoded }) as unknown as APIGatewayProxyEventV2;
const printOf = (text: string | Buffer) => JSON.stringify(body(request(text)));
const queryOf = (raw: string) => JSON.stringify(Object.entries(query({ version: '2.0', rawQueryString: raw } as unknown as APIGatewayProxyEventV2)).sort());

// ---------------------------------------------------------------------------------------------
// JSON documents as trees of their text: numbers keep their literal, strings their value.

type Node =
  | { readonly kind: 'number'; readonly text: string }
  | { readonly kind: 'string'; readonly value: string }
  | { readonly kind: 'literal'; readonly text: 'true' | 'false' | 'null' }
  | { readonly kind: 'array'; readonly items: readonly Node[] }
  | { readonly kind: 'object'; readonly members: ReadonlyArray<readonly [string, Node]> };

const digits = (min: number, max: number) => fc.string({ unit: fc.constantFrom(...'0123456789'), minLength: min, maxLength: max });
const numberText = fc
  .tuple(
    fc.constantFrom('', '-'),
    fc.oneof(
      fc.constant('0'),
      fc.tuple(fc.constantFrom(...'123456789'), digits(0, 22)).map(([a, b]) => a + b),
    ),
    fc.option(
      digits(1, 20).map((d) => `.${d}`),
      { nil: '' },
    ),
    fc.option(
      fc.tuple(fc.constantFrom('e', 'E'), fc.constantFrom('', '+', '-'), digits(1, 4)).map((parts) => parts.join('')),
      { nil: '' },
    ),
  )
  .map((parts) => parts.join(''));
/** Any UTF-16 string, lone surrogates included. */
const text = fc.string({
  unit: fc.oneof(fc.constantFrom('a', 'é', '"', '\\', '/', '\n', '\u0000', '\u2028', '😀', '\ud800', '\udfff'), fc.string({ unit: 'binary', maxLength: 1 })),
  maxLength: 6,
});

const { node } = fc.letrec<{ node: Node }>((tie) => ({
  node: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    numberText.map((t): Node => ({ kind: 'number', text: t })),
    text.map((value): Node => ({ kind: 'string', value })),
    fc.constantFrom('true', 'false', 'null').map((t): Node => ({ kind: 'literal', text: t })),
    fc.array(tie('node'), { maxLength: 4 }).map((items): Node => ({ kind: 'array', items })),
    // Names repeat now and then: a name sent twice is part of what a body says.
    fc.array(fc.tuple(fc.oneof(text, fc.constantFrom('a', 'b')), tie('node')), { maxLength: 4 }).map((members): Node => ({ kind: 'object', members })),
  ),
}));

/** What a document means, written independently of the library: members in a stable name order. */
function meaning(n: Node): unknown {
  switch (n.kind) {
    case 'number':
      return ['number', n.text];
    case 'string':
      return ['string', n.value];
    case 'literal':
      return n.text;
    case 'array':
      return n.items.map(meaning);
    case 'object':
      return ['object', [...n.members].sort(([a], [b]) => (a === b ? 0 : a < b ? -1 : 1)).map(([name, value]) => [name, meaning(value)])];
  }
}

/** One JSON text of the tree, with whitespace, member order and escapes chosen by `random`. */
function render(n: Node, random: () => number): string {
  const ws = () => ['', ' ', '\n', '\t', '\r\n  '][Math.floor(random() * 5)]!;
  const string = (value: string) => {
    let out = '"';
    for (const c of value) {
      const code = c.codePointAt(0)!;
      const lone = code >= 0xd800 && code <= 0xdfff; // no UTF-8 form: only its escape can carry it
      if (lone || c === '"' || c === '\\' || code < 0x20 || random() < 0.2) {
        out += Array.from({ length: c.length }, (_, i) => `\\u${c.charCodeAt(i).toString(16).padStart(4, '0')}`).join('');
      } else out += c;
    }
    return `${out}"`;
  };
  switch (n.kind) {
    case 'number':
    case 'literal':
      return n.text;
    case 'string':
      return string(n.value);
    case 'array':
      return `[${ws()}${n.items.map((item) => `${render(item, random)}${ws()}`).join(`,${ws()}`)}]`;
    case 'object': {
      // Shuffled by name: members that share a name keep their order (it carries meaning).
      const rank = new Map(n.members.map(([name]) => [name, random()]));
      const members = [...n.members].sort(([a], [b]) => rank.get(a)! - rank.get(b)!);
      return `{${ws()}${members.map(([name, value]) => `${string(name)}${ws()}:${ws()}${render(value, random)}${ws()}`).join(`,${ws()}`)}}`;
    }
  }
}

/** One small change somewhere in the tree (that may or may not change its meaning: the property checks). */
function mutated(n: Node, random: () => number): Node {
  const pick = random();
  switch (n.kind) {
    case 'number': {
      const last = n.text.search(/\d(?!.*\d)/);
      if (pick < 0.5) return { kind: 'number', text: `${n.text.slice(0, last)}${(Number(n.text[last]) + 1) % 10}${n.text.slice(last + 1)}` };
      return {
        kind: 'number',
        text: pick < 0.75 ? (n.text.startsWith('-') ? n.text.slice(1) : `-${n.text}`) : `${n.text}${n.text.includes('e') || n.text.includes('E') ? '' : '0'}`,
      };
    }
    case 'string':
      return { kind: 'string', value: pick < 0.5 ? `${n.value}\ud800` : n.value.slice(1) };
    case 'literal':
      return { kind: 'literal', text: n.text === 'null' ? 'false' : 'null' };
    case 'array':
      if (n.items.length > 0 && pick < 0.7) {
        const i = Math.floor(random() * n.items.length);
        return { kind: 'array', items: n.items.map((item, j) => (i === j ? mutated(item, random) : item)) };
      }
      return { kind: 'array', items: pick < 0.85 ? [...n.items].reverse() : [...n.items, { kind: 'literal', text: 'null' }] };
    case 'object':
      if (n.members.length > 0 && pick < 0.6) {
        const i = Math.floor(random() * n.members.length);
        return { kind: 'object', members: n.members.map(([name, value], j) => (i === j ? [name, mutated(value, random)] : [name, value])) };
      }
      if (n.members.length > 0 && pick < 0.8) return { kind: 'object', members: [...n.members.slice(1), n.members[0]!] };
      return { kind: 'object', members: [...n.members, ['a', { kind: 'literal', text: 'null' }]] };
  }
}

describe('JSON bodies', () => {
  test('whitespace, member order and string escapes never change the fingerprint, base64-encoded or not', () => {
    fc.assert(
      fc.property(node, fc.integer(), fc.integer(), (tree, seedA, seedB) => {
        const a = render(tree, prng(seedA));
        const b = render(tree, prng(seedB));
        expect(printOf(b)).toBe(printOf(a));
        expect(printOf(Buffer.from(b, 'utf8'))).toBe(printOf(a));
      }),
      RUNS,
    );
  });

  test('documents that differ in meaning (a digit, a sign, a string, an order, a member) never share a fingerprint', () => {
    fc.assert(
      fc.property(node, fc.integer(), fc.integer(), (tree, seed, layout) => {
        const other = mutated(tree, prng(seed));
        fc.pre(!isDeepStrictEqual(meaning(other), meaning(tree)));
        expect(printOf(render(other, prng(layout)))).not.toBe(printOf(render(tree, prng(layout))));
      }),
      RUNS,
    );
  });

  test('two independent documents share a fingerprint only when they mean the same', () => {
    fc.assert(
      fc.property(node, node, fc.integer(), (a, b, layout) => {
        const same = isDeepStrictEqual(meaning(a), meaning(b));
        expect(printOf(render(a, prng(layout))) === printOf(render(b, prng(layout)))).toBe(same);
      }),
      RUNS,
    );
  });

  test('integers beyond 2^53 that round to one double are different requests', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 2n ** 53n, max: 2n ** 70n }), (n) => {
        expect(printOf(`{"accountId":${n + 1n}}`)).not.toBe(printOf(`{"accountId":${n}}`));
      }),
      RUNS,
    );
  });

  test.each([
    ['an integer above 2^53 and its neighbour', '{"accountId":9007199254740993}', '{"accountId":9007199254740992}'],
    ['decimals that round to one double', '[0.1]', '[0.10000000000000001]'],
    ['numbers beyond the double range', '[1e400]', '[1e401]'],
    ['an amount and its negative zero', '{"amount":0}', '{"amount":-0}'],
    ['a member sent twice and the member once', '{"a":1,"a":2}', '{"a":2}'],
    ['a member sent twice, in the other order', '{"a":1,"a":2}', '{"a":2,"a":1}'],
    ['two different lone surrogates', '"\\ud800"', '"\\udbff"'],
    ['a byte order mark before the document', '\ufeff{"a":1}', '{"a":1}'],
  ])('%s: different fingerprints', (_, a, b) => {
    expect(printOf(a)).not.toBe(printOf(b));
  });

  test.each([
    ['whitespace', '{"a":[1,2],"b":"x"}', ' {\n\t"a" : [ 1 , 2 ] ,\r\n "b":"x" } '],
    ['member order', '{"a":1,"b":{"c":true,"d":null}}', '{"b":{"d":null,"c":true},"a":1}'],
    ['escapes', '{"name":"é/A"}', '{"na\\u006de":"\\u00e9\\/\\u0041"}'],
    ['members sent twice, moved around other members', '{"a":1,"b":0,"a":2}', '{"b":0,"a":1,"a":2}'],
  ])('%s: the same fingerprint', (_, a, b) => {
    expect(printOf(b)).toBe(printOf(a));
  });

  test('a body nested 200 levels deep is compared by its canonical text; one nested 201 levels by its bytes', () => {
    const nested = (levels: number, gap: string) => `${`[${gap}`.repeat(levels)}1${`${gap}]`.repeat(levels)}`;
    expect(printOf(nested(200, ' '))).toBe(printOf(nested(200, '')));
    expect(printOf(nested(201, ' '))).not.toBe(printOf(nested(201, '')));
    expect(JSON.parse(printOf(nested(201, '')))).toEqual({ bytes: Buffer.from(nested(201, '')).toString('base64') });
  });

  test.each([
    ['a raw tab inside a string', '{"note":"a\tb"}'],
    ['a number with a leading zero', '{"amount":0100}'],
    ['a trailing comma', '[1,]'],
    ['a member without its colon', '{"a" 1}'],
  ])('%s is not JSON: compared by its bytes, not as the document it resembles', (_, text) => {
    expect(JSON.parse(printOf(text))).toEqual({ bytes: Buffer.from(text).toString('base64') });
  });

  test('a text that is not JSON never shares a fingerprint with the document it resembles', () => {
    expect(printOf('{"note":"a\tb"}')).not.toBe(printOf('{"note":"a\\tb"}'));
    expect(printOf('{"amount":0100}')).not.toBe(printOf('{"amount":100}'));
  });
});

describe('bodies that are not JSON, or not UTF-8', () => {
  const invalidUtf8 = fc
    .tuple(fc.uint8Array({ maxLength: 16 }), fc.constantFrom(0x80, 0xbf, 0xc0, 0xc3, 0xed, 0xf5, 0xfe, 0xff), fc.uint8Array({ maxLength: 16 }))
    .map(([a, bad, b]) => Buffer.concat([Buffer.from(a), Buffer.from([bad]), Buffer.from(b)]));

  test('bytes that are not UTF-8 are fingerprinted by the bytes themselves: different bytes, different fingerprints', () => {
    fc.assert(
      fc.property(invalidUtf8, invalidUtf8, (a, b) => {
        fc.pre(!a.equals(b));
        expect(printOf(a)).not.toBe(printOf(b));
      }),
      RUNS,
    );
  });

  test('one byte changed anywhere in a JSON body changes its fingerprint, unless whitespace became whitespace', () => {
    const isSpace = (byte: number) => byte === 0x20 || byte === 0x09 || byte === 0x0a || byte === 0x0d;
    fc.assert(
      fc.property(node, fc.integer(), fc.nat(), fc.integer({ min: 0, max: 255 }), (tree, layout, at, byte) => {
        const x = Buffer.from(render(tree, prng(layout)), 'utf8');
        const y = Buffer.from(x);
        const i = at % x.length;
        y[i] = byte;
        // A hex digit of a \u escape may change case without changing the string.
        const [was, now] = [String.fromCharCode(x[i]!), String.fromCharCode(byte)];
        if (x.equals(y) || (/[a-f]/i.test(was) && was.toLowerCase() === now.toLowerCase())) return;
        if (printOf(y) === printOf(x)) expect(isSpace(x[i]!) && isSpace(byte)).toBe(true);
      }),
      { ...RUNS, numRuns: 3000 },
    );
  });

  test.each([
    ['invalid UTF-8 bytes inside a JSON string', Buffer.from('{"name":"\xff"}', 'latin1'), Buffer.from('{"name":"\xfe"}', 'latin1')],
    ['a lone invalid byte and another', Buffer.from([0xff]), Buffer.from([0xfe])],
    ['a truncated sequence and the replacement character', Buffer.from([0xe2, 0x82]), Buffer.from('\ufffd', 'utf8')],
  ])('%s: different fingerprints', (_, a, b) => {
    expect(printOf(a)).not.toBe(printOf(b));
  });

  test('a text body with a lone surrogate (no UTF-8 form) is not the replacement character', () => {
    expect(printOf('a\ud800')).not.toBe(printOf('a\udc00'));
    expect(printOf('a\ud800')).not.toBe(printOf('a\ufffd'));
  });

  test('the same bytes have one fingerprint whether or not API Gateway base64-encoded them', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme' }), (text) => {
        expect(printOf(Buffer.from(text, 'utf8'))).toBe(printOf(text));
      }),
      RUNS,
    );
  });
});

describe('multipart bodies', () => {
  const boundary = fc.string({ unit: fc.constantFrom(...'ab-_0'), minLength: 1, maxLength: 8 });
  const parts = fc.array(fc.uint8Array({ maxLength: 12 }).map(Buffer.from), { minLength: 1, maxLength: 4 });
  const form = (pieces: readonly Buffer[], b: string) =>
    Buffer.concat([...pieces.flatMap((piece) => [Buffer.from(`--${b}\r\n`), piece, Buffer.from('\r\n')]), Buffer.from(`--${b}--\r\n`)]);
  const printOfForm = (bytes: Buffer, b: string) =>
    JSON.stringify(body({ ...request(bytes), headers: { 'content-type': `multipart/form-data; boundary=${b}` } } as APIGatewayProxyEventV2));
  /** The boundary occurs in none of the parts, as a client chooses it. */
  const fits = (pieces: readonly Buffer[], b: string) => pieces.every((piece) => !Buffer.concat([CRLF, piece, CRLF]).includes(`\r\n--${b}`));
  const CRLF = Buffer.from('\r\n');

  test('one form has one fingerprint whatever its boundary; two forms that differ in a byte never share one', () => {
    fc.assert(
      fc.property(parts, parts, boundary, boundary, (x, y, b1, b2) => {
        fc.pre(fits(x, b1) && fits(x, b2) && fits(y, b1) && fits(y, b2));
        expect(printOfForm(form(x, b2), b2)).toBe(printOfForm(form(x, b1), b1));
        if (!form(x, b1).equals(form(y, b1))) expect(printOfForm(form(y, b2), b2)).not.toBe(printOfForm(form(x, b1), b1));
      }),
      RUNS,
    );
  });

  test('a quoted boundary (`boundary="…"`, as some clients send it) is the boundary: a form resent with a new one is the same request', () => {
    const pieces = [Buffer.from('Content-Disposition: form-data; name="amount"\r\n\r\n1000')];
    const quoted = (b: string) =>
      JSON.stringify(body({ ...request(form(pieces, b)), headers: { 'content-type': `multipart/form-data; boundary="${b}"` } } as APIGatewayProxyEventV2));
    expect(quoted('b-2')).toBe(quoted('b-1'));
    expect(quoted('b-1')).toBe(printOfForm(form(pieces, 'b-1'), 'b-1'));
  });

  test('a Content-Type sent twice counts by its last value, as a load balancer passes it by default, with multi-value headers too', () => {
    const contentType = ['text/plain', 'multipart/form-data; boundary=b-1'];
    const bytes = form([Buffer.from('a')], 'b-1').toString();
    const [single, multi] = [false, true].map((multiValue) =>
      JSON.stringify(body(albEvent({ multiValue, headers: { 'content-type': contentType }, body: bytes }))),
    );
    expect(multi).toBe(single);
    expect(single).toBe(printOfForm(Buffer.from(bytes), 'b-1'));
  });

  test('the same bytes as a form and as another media type are two requests', () => {
    const bytes = form([Buffer.from('a')], 'b');
    expect(printOfForm(bytes, 'b')).not.toBe(printOf(bytes));
  });

  test('only a `multipart/` type with a boundary of one character or more counts by its pieces: other bodies with the same pieces differ', () => {
    const printAs = (text: string, contentType: string) =>
      JSON.stringify(body({ ...request(text), headers: { 'content-type': contentType } } as APIGatewayProxyEventV2));
    // Split at their boundaries, each pair is the pieces `p` and `q`.
    expect(printAs('p\r\n--bq', 'multipart/form-data; boundary=b')).toBe(printAs('p\r\n--cq', 'multipart/form-data; boundary=c'));
    expect(printAs('p\r\n--bq', 'multiparty/form-data; boundary=b')).not.toBe(printAs('p\r\n--cq', 'multiparty/form-data; boundary=c'));
    expect(printAs('p\r\n--q', 'multipart/form-data; boundary=')).not.toBe(printAs('p\r\n--bq', 'multipart/form-data; boundary=b'));
  });
});

describe('compressed bodies (Content-Encoding)', () => {
  const encoded = (bytes: Buffer, coding: string) =>
    JSON.stringify(body({ ...request(bytes), headers: { 'Content-Encoding': coding, 'content-type': 'application/json' } } as APIGatewayProxyEventV2));
  /** gzip bytes with the header's modification time (seconds) as given, as a client compressing anew for a retry writes it. */
  const gzipAt = (content: Buffer, mtime: number) => {
    const bytes = gzipSync(content);
    bytes.writeUInt32LE(mtime, 4);
    return bytes;
  };

  test('a body compressed anew for a retry (another gzip time stamp, another level, another coding) has the fingerprint of its content', () => {
    fc.assert(
      fc.property(fc.json(), fc.uint8Array({ maxLength: 64 }).map(Buffer.from), (json, binary) => {
        for (const content of [Buffer.from(json), binary]) {
          const plain = printOf(content);
          const prints = [
            encoded(gzipAt(content, 1_700_000_000), 'gzip'),
            encoded(gzipAt(content, 1_700_000_003), 'x-gzip'),
            encoded(gzipSync(content, { level: 1 }), 'GZIP'),
            encoded(deflateSync(content), 'deflate'),
            encoded(brotliCompressSync(content), ' br '),
          ];
          expect(prints).toEqual(prints.map(() => plain));
        }
      }),
      { ...RUNS, numRuns: 100 },
    );
  });

  test('two contents never share a fingerprint compressed; a body that does not decode, or sent without its coding, counts by its bytes', () => {
    const a = Buffer.from('{"amount":2500}');
    const b = Buffer.from('{"amount":2501}');
    expect(encoded(gzipSync(a), 'gzip')).not.toBe(encoded(gzipSync(b), 'gzip'));
    const garbled = Buffer.from('not gzip at all');
    expect(encoded(garbled, 'gzip')).toBe(printOf(garbled));
    expect(printOf(gzipSync(a))).not.toBe(printOf(a)); // no Content-Encoding: the compressed bytes themselves
    expect(encoded(gzipSync(a), 'gzip, br')).toBe(printOf(gzipSync(a))); // two codings: not undone
    expect(encoded(gzipSync(a), 'identity')).toBe(printOf(gzipSync(a)));
  });

  test('bytes after the compressed data, which a decoder leaves unread, make a body count by its bytes: two such bodies never read alike', () => {
    const content = Buffer.from('{"amount":2500}');
    for (const [coding, compressed] of [
      ['deflate', deflateSync(content)],
      ['br', brotliCompressSync(content)],
      ['gzip', gzipSync(content)],
    ] as const) {
      const [a, b] = ['A', 'B'].map((tail) => Buffer.concat([compressed, Buffer.from(tail)]));
      expect([coding, encoded(a!, coding)]).toEqual([coding, printOf(a!)]);
      expect(encoded(a!, coding)).not.toBe(encoded(b!, coding));
    }
    // A text that br reads as an empty stream followed by the rest: "7500" and "9000" are two bodies.
    expect(encoded(Buffer.from('7500'), 'br')).not.toBe(encoded(Buffer.from('9000'), 'br'));
    // A coding only some Node.js versions read (zstd: not 20) leaves the body as sent, so its fingerprint never changes with the runtime.
    const zstd = (zlib as unknown as Record<string, ((bytes: Buffer) => Buffer) | undefined>).zstdCompressSync;
    const zstdBody = zstd?.(content) ?? Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00]);
    expect(encoded(zstdBody, 'zstd')).toBe(printOf(zstdBody));
    expect(encoded(content, 'constructor')).toBe(printOf(content)); // no coding of that name, whatever the prototype holds
  });

  test('a body that decodes past 32 MB (a few kilobytes of br can decode to gigabytes) counts by its bytes as sent', () => {
    const bomb = brotliCompressSync(Buffer.alloc(33 * 1024 * 1024), { params: { [constants.BROTLI_PARAM_QUALITY]: 1 } });
    expect(bomb.length).toBeLessThan(64 * 1024);
    expect(encoded(bomb, 'br')).toBe(printOf(bomb));
  });
});

describe('HTTP API query strings', () => {
  test.each([
    ['different invalid UTF-8 escapes', 'amount=%FF', 'amount=%FE'],
    ['an escape and its replacement character', 'amount=%FF', 'amount=%EF%BF%BD'],
    ['the values of one name in another order', 'a=1&a=2', 'a=2&a=1'],
    ['a value and the same value twice', 'a=1', 'a=1&a=1'],
  ])('%s: different fingerprints', (_, a, b) => {
    expect(queryOf(a)).not.toBe(queryOf(b));
  });

  test('the order of different names does not matter', () => {
    const pair = fc.tuple(fc.stringMatching(/^[a-z%0-9]{1,4}$/), fc.stringMatching(/^[a-z%0-9=]{0,4}$/));
    fc.assert(
      fc.property(fc.uniqueArray(pair, { selector: ([name]) => name, maxLength: 6 }), (pairs) => {
        const raw = (list: typeof pairs) => list.map(([name, value]) => `${name}=${value}`).join('&');
        expect(queryOf(raw([...pairs].reverse()))).toBe(queryOf(raw(pairs)));
      }),
      RUNS,
    );
  });
});

describe('Application Load Balancer query strings (passed as the client encoded them)', () => {
  const albQueryOf = (raw: string, multiValue = true) => JSON.stringify(Object.entries(query(albEvent({ query: raw, multiValue }))).sort());
  /** Any well-formed text, the characters a query's grammar uses among them. */
  const text = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 5 }),
    fc.string({ unit: fc.constantFrom('+', ' ', '%', '&', '=', 'a', 'é', '😀'), maxLength: 5 }),
  );
  const params = fc.array(fc.tuple(text, text), { maxLength: 4 });
  const percentEncoded = (list: ReadonlyArray<readonly [string, string]>) =>
    list.map(([name, value]) => `${encodeURIComponent(name)}=${encodeURIComponent(value)}`).join('&');

  test('one list of parameters has one fingerprint however it is spelled: `%20` or `+`, escaped or not, in either header mode', () => {
    fc.assert(
      fc.property(params, fc.boolean(), (list, multiValue) => {
        const form = new URLSearchParams(list.map(([name, value]): [string, string] => [name, value])).toString(); // spaces as `+`
        expect(albQueryOf(form, multiValue)).toBe(albQueryOf(percentEncoded(list), multiValue));
      }),
      RUNS,
    );
  });

  test('two lists of parameters that differ share no fingerprint', () => {
    fc.assert(
      fc.property(params, params, (a, b) => {
        const meaning = (list: typeof a) => {
          const values = new Map<string, string[]>();
          for (const [name, value] of list) values.set(name, [...(values.get(name) ?? []), value]);
          return JSON.stringify([...values].sort());
        };
        fc.pre(meaning(a) !== meaning(b));
        expect(albQueryOf(percentEncoded(a))).not.toBe(albQueryOf(percentEncoded(b)));
      }),
      RUNS,
    );
  });

  test.each([
    ['different invalid UTF-8 escapes', 'amount=%FF', 'amount=%FE'],
    ['an escape and its replacement character', 'amount=%FF', 'amount=%EF%BF%BD'],
    ['an invalid escape and the escaped text of it', 'amount=%FF', 'amount=%25FF'],
    ['a name that does not decode and one that does', '%FF=1', '%EF%BF%BD=1'],
    ['an encoded plus and a space', 'q=a%2Bb', 'q=a+b'],
  ])('%s: different fingerprints', (_, a, b) => {
    expect(albQueryOf(a)).not.toBe(albQueryOf(b));
  });
});

describe('headerList: every value of a list header', () => {
  const event = (fields: object) => fields as unknown as APIGatewayProxyEventV2;
  test.each([
    [
      'repeated in multiValueHeaders (a REST API keeps the last in headers)',
      { headers: { 'Accept-Encoding': 'br' }, multiValueHeaders: { 'Accept-Encoding': ['gzip', 'br'] } },
      'gzip, br',
    ],
    ['under two spellings of its name', { multiValueHeaders: { 'accept-encoding': ['gzip'], 'ACCEPT-ENCODING': ['br'] } }, 'gzip, br'],
    ['in headers only', { headers: { 'accept-encoding': 'gzip, br' } }, 'gzip, br'],
    ['absent', { headers: { 'content-type': 'application/json' } }, undefined],
  ])('%s', (_, fields, expected) => {
    expect(headerList(event(fields), 'accept-encoding')).toBe(expected);
  });
});

test('a JSON body whose strings hold escaped quotes and backslashes is still compared by its members, not its bytes', () => {
  expect(printOf('{"b":1,"a":"say \\"hi\\" \\\\"}')).toBe(printOf('{ "a" : "say \\u0022hi\\" \\\\", "b" : 1 }'));
  expect(printOf('{"a":"say \\"hi\\""}')).toContain('"json"');
});
