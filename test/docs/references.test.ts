/**
 * What the documentation cites as proof exists: every repository path it names in a code span
 * (`test/integration/calls.test.ts`) is a file, and every test name docs/batch.md quotes for the batch
 * guarantees is part of a test's title in one of the files it names.
 */
import { existsSync, readFileSync } from 'node:fs';
import { posix } from 'node:path';
import { describe, expect, test } from '@jest/globals';
import { brokenLinks } from './links.js';
import { parseMarkdown } from './markdown.js';
import { documentationFiles, ROOT } from './snippets.js';

/** Code spans that are repository paths: a top-level folder of the repository, then a file. */
const PATH_SPAN = /`((?:bench|demo|docs|infra|lib|test|tools)\/[\w./-]+\.[a-z]+)`/g;

/** The prose lines of a Markdown text, with their 1-based numbers: fenced code blocks left out. */
function proseLines(text: string): Array<[number, string]> {
  const lines: Array<[number, string]> = [];
  let fence: string | undefined;
  text.split('\n').forEach((line, i) => {
    const marks = /^\s*(`{3,}|~{3,})/.exec(line)?.[1];
    if (marks !== undefined && (fence === undefined || (marks[0] === fence[0] && marks.length >= fence.length))) {
      fence = fence === undefined ? marks : undefined;
    } else if (fence === undefined) lines.push([i + 1, line]);
  });
  return lines;
}

/** Every path span of `doc` that names no file, as `README.md:12 test/unit/nowhere.test.ts`. */
function missingPaths(doc: string, text: string): string[] {
  const missing: string[] = [];
  for (const [line, prose] of proseLines(text)) {
    for (const [, path] of prose.matchAll(PATH_SPAN)) {
      const besideDoc = posix.join(posix.dirname(doc), path!);
      if (!existsSync(`${ROOT}/${path}`) && !existsSync(`${ROOT}/${besideDoc}`)) missing.push(`${doc}:${line} ${path}`);
    }
  }
  return missing;
}

/** The titles given to `test`, `it` and `describe` (also their `.each(…)(title, …)` form) in a test file's source. */
function testTitles(source: string): string[] {
  const titles: string[] = [];
  const title = /(?:\b(?:test|it|describe)(?:\.(?:only|skip|concurrent|failing))?|\))\(\s*(['"`])((?:\\.|(?!\1)[^\\])*)\1/g;
  for (const [, , text] of source.matchAll(title)) titles.push(text!.replace(/\\(.)/g, '$1'));
  return titles;
}

/**
 * The quoted test names of a page, each split into the parts around its `…` (an
 * omission), whitespace joined as the text wraps.
 */
function quotedNames(section: string): string[][] {
  const names = [...section.replace(/\s+/g, ' ').matchAll(/"([^"]+)"/g)].map(([, name]) => name!);
  return names.map((name) =>
    name
      .split('…')
      .map((part) => part.trim().replace(/^[,;:]\s*|[,;:]$/g, ''))
      .filter((part) => part !== ''),
  );
}

const documents = [...documentationFiles(), 'infra/README.md'];

describe('every repository path the documentation names is a file', () => {
  for (const doc of documents) {
    test(doc, () => {
      expect(missingPaths(doc, readFileSync(`${ROOT}/${doc}`, 'utf8'))).toEqual([]);
    });
  }

  test('a path to no file is reported, paths in code blocks and other spans are not', () => {
    const text = ['See `test/unit/nowhere.test.ts` and `lib/options.ts`.', '```sh', 'cat test/unit/gone.test.ts `lib/gone.ts`', '```', '`./lib/x.ts`'].join(
      '\n',
    );
    expect(missingPaths('README.md', text)).toEqual(['README.md:1 test/unit/nowhere.test.ts']);
    expect(missingPaths('infra/README.md', '`functions/payment.ts` and `infra/functions/payment.ts`; `lib/payment.ts`')).toEqual([
      'infra/README.md:1 lib/payment.ts',
    ]);
  });
});

test('the links of infra/README.md resolve (its snippets use a stack of their own, so readme.test.ts does not read it)', () => {
  expect(brokenLinks('infra/README.md', parseMarkdown(readFileSync(`${ROOT}/infra/README.md`, 'utf8')))).toEqual([]);
});

describe('the batch guarantees quote real test names', () => {
  const section = readFileSync(`${ROOT}/docs/batch.md`, 'utf8');
  const files = ['test/integration/batch.test.ts', 'test/integration/batch-pipes.test.ts', 'test/integration/store-timeouts.test.ts'];
  const titles = files.flatMap((file) => testTitles(readFileSync(`${ROOT}/${file}`, 'utf8')));

  test('the section names the file and quotes names', () => {
    for (const file of files) expect(section).toContain(`\`${file}\``);
    expect(quotedNames(section).length).toBeGreaterThan(15);
  });

  for (const parts of quotedNames(section)) {
    test(`"${parts.join(' … ')}" is in one title of the batch tests`, () => {
      expect(titles.filter((title) => parts.every((part) => title.includes(part)))).not.toEqual([]);
    });
  }

  test('titles are read from test, describe and each forms, quotes and escapes included', () => {
    const source = "test('a `b` c', f);\ndescribe.each([1])('%s, which \\'x\\'', f);\n  test.each(xs)(\n    '%s is refused', f);\nexpect(x).toBe('no title');";
    expect(testTitles(source)).toEqual(['a `b` c', "%s, which 'x'", '%s is refused']);
  });
});
