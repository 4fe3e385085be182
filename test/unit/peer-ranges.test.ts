/**
 * The Redis clients' peer ranges hold every version the tests run on: the current major (6) and
 * the previous one (5, installed as the `ioredis5` and `redis5` aliases, and ioredis 5.0.0, the oldest, as `ioredis-oldest`). npm refuses to install a
 * package beside a peer outside its range, optional or not (ERESOLVE), so a range that missed the
 * current major would keep every user of it from installing the library.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  peerDependencies: Record<string, string>;
  peerDependenciesMeta: Record<string, { optional?: boolean }>;
};

/** Whether `version` satisfies `range`, a `||` of caret ranges on a major of 1 or more (all this manifest uses). */
function satisfies(version: string, range: string): boolean {
  const parse = (text: string): number[] => text.split('.').map(Number);
  const [major, minor, patch] = parse(version);
  return range.split('||').some((part) => {
    const match = /^\s*\^(\d+)\.(\d+)\.(\d+)\s*$/.exec(part);
    if (!match) throw new Error(`Not a caret range: '${part}'`);
    const [low, lowMinor, lowPatch] = match.slice(1).map(Number);
    if (major !== low) return false;
    return minor! > lowMinor! || (minor === lowMinor && patch! >= lowPatch!);
  });
}

const installed = (name: string): string => (require(`${name}/package.json`) as { version: string }).version;

test.each([
  ['ioredis', 'ioredis', 6],
  ['ioredis', 'ioredis5', 5],
  ['ioredis', 'ioredis-oldest', 5],
  ['redis', 'redis', 6],
  ['redis', 'redis5', 5],
])('the optional peer %s accepts the installed %s (major %d)', (peer, installedAs, major) => {
  const version = installed(installedAs);
  expect(Number(version.split('.')[0])).toBe(major);
  expect(manifest.peerDependenciesMeta[peer]?.optional).toBe(true);
  expect(satisfies(version, manifest.peerDependencies[peer]!)).toBe(true);
});

test('the range check refuses what a caret range refuses', () => {
  expect(satisfies('5.0.0', '^5.0.0')).toBe(true);
  expect(satisfies('6.3.1', '^5.0.0')).toBe(false);
  expect(satisfies('5.10.0', '^5.11.0')).toBe(false);
  expect(satisfies('6.0.0', '^5.0.0 || ^6.0.0')).toBe(true);
});
