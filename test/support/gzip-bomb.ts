/** A gzip decompression bomb, for the tests that plant one where a stored response is read. */
import { once } from 'node:events';
import { createGzip } from 'node:zlib';

let made: Promise<Buffer> | undefined;

/**
 * 440 MiB of zeros, gzipped to about 440 KB: more than gzip makes of any value a store keeps. Made
 * once per test file (gzipping it takes a second or two), streamed through a 1 MiB buffer.
 */
export function gzipBomb(): Promise<Buffer> {
  made ??= (async () => {
    const gzip = createGzip();
    const parts: Buffer[] = [];
    gzip.on('data', (part: Buffer) => parts.push(part));
    const zeros = Buffer.alloc(1024 * 1024);
    for (let mebibyte = 0; mebibyte < 440; mebibyte++) if (!gzip.write(zeros)) await once(gzip, 'drain');
    gzip.end();
    await once(gzip, 'end');
    return Buffer.concat(parts);
  })();
  return made;
}
