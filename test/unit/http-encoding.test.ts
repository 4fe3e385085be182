import { once } from 'node:events';
import { brotliCompressSync, constants, createBrotliCompress, deflateSync, gunzipSync, gzipSync } from 'node:zlib';
import { acceptance, forAcceptEncoding } from '../../lib/http-encoding.js';
import type { HttpResult } from '../../lib/index.js';
import { BYTES } from '../../lib/streamed-response.js';

const TEXT = JSON.stringify({ receipt: 'r'.repeat(200) });
const stored = (coding: string, bytes: Buffer): HttpResult => ({
  statusCode: 200,
  headers: { 'content-encoding': coding, 'Content-Length': String(bytes.length), Vary: 'Accept-Encoding' },
  body: bytes.toString('base64'),
  isBase64Encoded: true,
});

describe('acceptance: the weight an Accept-Encoding value gives a coding (RFC 9110 §12.5.3)', () => {
  test.each([
    [undefined, 'identity', 1],
    [undefined, 'gzip', 0],
    ['gzip, br', 'br', 1],
    ['GZIP;Q=0.5', 'gzip', 0.5],
    ['x-gzip', 'gzip', 1],
    ['gzip', 'x-gzip', 1],
    ['br;q=0, *', 'br', 0],
    ['br;q=0, *', 'gzip', 1],
    ['*;q=0', 'identity', 0],
    ['*;q=0, identity', 'identity', 1],
    ['br', 'identity', 1],
    ['', 'identity', 1],
    ['gzip;q=x', 'gzip', 0],
    ['gzip, gzip;q=0', 'gzip', 1],
    ['x-gzip;q=0.2, gzip;q=0.7, gzip;q=0', 'gzip', 0.7],
  ])('%j gives %s the weight %s', (accepted, coding, weight) => {
    expect(acceptance(accepted, coding)).toBe(weight);
  });
});

describe('forAcceptEncoding', () => {
  test('re-codes a stored br answer for a gzip client, dropping the stale Content-Length and keeping the other headers', () => {
    const replay = forAcceptEncoding(stored('br', brotliCompressSync(TEXT)), 'gzip');
    expect(replay.headers).toEqual({ Vary: 'Accept-Encoding', 'Content-Encoding': 'gzip' });
    expect(replay.isBase64Encoded).toBe(true);
    expect(gunzipSync(Buffer.from(replay.body!, 'base64')).toString()).toBe(TEXT);
  });

  test('re-coded, a strong ETag becomes weak (another coding is another representation, with the same content) and digests of the stored bytes are dropped', () => {
    const result = stored('gzip', gzipSync(TEXT));
    const replay = forAcceptEncoding(
      {
        ...result,
        headers: { ...result.headers, ETag: '"v7"', 'Content-MD5': 'x', 'Content-Digest': 'sha-256=:x:', 'Repr-Digest': 'sha-256=:y:', Digest: 'SHA-256=z' },
        multiValueHeaders: { etag: ['"v7"'], 'content-digest': ['sha-256=:x:'] },
      },
      undefined,
    );
    expect([replay.body, replay.headers, replay.multiValueHeaders]).toEqual([TEXT, { Vary: 'Accept-Encoding', ETag: 'W/"v7"' }, { etag: ['W/"v7"'] }]);
    const weak = forAcceptEncoding({ ...result, headers: { ...result.headers, etag: 'W/"v7"' } }, undefined);
    expect(weak.headers).toEqual({ Vary: 'Accept-Encoding', etag: 'W/"v7"' });
  });

  test('a body that decodes to more than any Lambda answer carries (br of 300 MiB) is replayed as stored, not decoded', async () => {
    // Streamed from one 1 MiB buffer: 300 MiB allocated at once take seconds of page faults.
    const brotli = createBrotliCompress({ params: { [constants.BROTLI_PARAM_QUALITY]: 1 } });
    const parts: Buffer[] = [];
    brotli.on('data', (part: Buffer) => parts.push(part));
    const mebibyte = Buffer.alloc(1024 * 1024, 'a');
    for (let written = 0; written < 300; written++) if (!brotli.write(mebibyte)) await once(brotli, 'drain');
    brotli.end();
    await once(brotli, 'end');
    const bomb = Buffer.concat(parts);
    const result = stored('br', bomb);
    expect(forAcceptEncoding(result, undefined)).toBe(result);
    expect(forAcceptEncoding(result, 'gzip')).toBe(result);
  });

  test('decodes deflate for a client that accepts no coding, into text', () => {
    expect(forAcceptEncoding(stored('deflate', deflateSync(TEXT)), undefined)).toEqual({
      statusCode: 200,
      headers: { Vary: 'Accept-Encoding' },
      body: TEXT,
      isBase64Encoded: false,
    });
  });

  test('decoded bytes that are not UTF-8 stay base64', () => {
    const binary = Buffer.from([0xff, 0xfe, 0x00, 0x81]);
    const replay = forAcceptEncoding(stored('gzip', gzipSync(binary)), 'identity');
    expect([replay.body, replay.isBase64Encoded]).toEqual([binary.toString('base64'), true]);
  });

  test('stream bytes (a streamed answer) are re-coded in their stored form', () => {
    const result: HttpResult = {
      statusCode: 200,
      headers: { 'Content-Encoding': 'br' },
      body: { [BYTES]: brotliCompressSync(TEXT).toString('base64') } as unknown as string,
    };
    const replay = forAcceptEncoding(result, 'identity');
    expect(replay.headers).toEqual({});
    expect(Buffer.from((replay.body as unknown as Record<string, string>)[BYTES]!, 'base64').toString()).toBe(TEXT);
  });

  test('a Content-Encoding that also lists identity is the other coding alone', () => {
    const replay = forAcceptEncoding(stored('identity, gzip', gzipSync(TEXT)), undefined);
    expect([replay.body, replay.headers]).toEqual([TEXT, { Vary: 'Accept-Encoding' }]);
  });

  test('an answer with both headers and multiValueHeaders (API Gateway REST, ALB) naming one coding is decoded once, from both', () => {
    const gzipped = stored('gzip', gzipSync(TEXT));
    const replay = forAcceptEncoding(
      { ...gzipped, multiValueHeaders: { 'Content-Encoding': ['gzip'], 'Content-Length': ['9'], Vary: ['Accept-Encoding'] } },
      undefined,
    );
    expect([replay.body, replay.headers, replay.multiValueHeaders]).toEqual([TEXT, { Vary: 'Accept-Encoding' }, { Vary: ['Accept-Encoding'] }]);
  });

  test.each([
    ['a coding the client accepts', stored('br', brotliCompressSync(TEXT)), 'br'],
    ['no coding', { statusCode: 200, body: TEXT }, undefined],
    ['a coding nothing here decodes', stored('compress', Buffer.from('x')), undefined],
    ['two codings, even when the outer one decodes', stored('gzip, gzip', gzipSync(gzipSync(TEXT))), undefined],
    ['bytes that do not decode', stored('gzip', Buffer.from('not gzip')), undefined],
  ])('leaves an answer with %s as stored', (_, result, accepted) => {
    expect(forAcceptEncoding(result, accepted)).toBe(result);
  });
});
