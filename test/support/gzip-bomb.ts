/** A gzip decompression bomb, for the tests that plant one where a stored response is read. */
import { once } from 'node:events';
import { createGzip } from 'node:zlib';
import { ITEM_LIMIT_BYTES } from '../../lib/stored-outcome.js';

const made = new Map<number, Promise<Buffer>>();

/**
 * `bytes` zeros, gzipped (about a thousandth of their size). Made once per size and test file
 * (gzipping hundreds of MiB takes a second or two), streamed through a 1 MiB buffer.
 */
export function gzippedZeros(bytes: number): Promise<Buffer> {
  let zipped = made.get(bytes);
  if (zipped === undefined) {
    zipped = (async () => {
      const gzip = createGzip();
      const parts: Buffer[] = [];
      gzip.on('data', (part: Buffer) => parts.push(part));
      const zeros = Buffer.alloc(1024 * 1024);
      for (let left = bytes; left > 0; left -= zeros.length) if (!gzip.write(zeros.subarray(0, Math.min(left, zeros.length)))) await once(gzip, 'drain');
      gzip.end();
      await once(gzip, 'end');
      return Buffer.concat(parts);
    })();
    made.set(bytes, zipped);
  }
  return zipped;
}

/**
 * Zeros one byte past what gzip makes of any value a store keeps (1,032 bytes for each of a DynamoDB
 * item's 400 KiB), gzipped to about 400 KB.
 */
export const gzipBomb = (): Promise<Buffer> => gzippedZeros(1032 * ITEM_LIMIT_BYTES + 1);
