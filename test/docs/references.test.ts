/**
 * What the documentation cites as proof exists: every repository path it names in a code span
 * (`test/integration/calls.test.ts`) is a file, and every test name it quotes beside test files
 * (`test/integration/wrapper.test.ts`, "a clock that steps back …") is part of a test's title in one
 * of them; docs/batch.md's, for the batch guarantees, in one of the files the page names.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
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

/**
 * The `npx` commands and npm scripts of a page's shell blocks that a checkout of this repository
 * lacks, as `infra/README.md:48 npx lambda-idempotency`: `npx` of a name that is no installed bin
 * (as this package's own command, whose bin is the built `dist/`) fails with `sh: 1: …: not found`,
 * and, tried once before `npm run build`, keeps failing after it from npx's cache.
 */
function missingCommands(doc: string, bins: ReadonlySet<string>, scripts: ReadonlySet<string>): string[] {
  const missing: string[] = [];
  for (const block of parseMarkdown(readFileSync(`${ROOT}/${doc}`, 'utf8')).blocks.filter((b) => b.lang === 'sh')) {
    block.code.split('\n').forEach((line, i) => {
      const text = line.replace(/(^|\s)#.*$/, ''); // a comment runs nothing
      for (const [, bin] of text.matchAll(/\bnpx\s+([\w@./-]+)/g)) if (!bins.has(bin!)) missing.push(`${doc}:${block.line + 1 + i} npx ${bin}`);
      for (const [, script] of text.matchAll(/\bnpm run\s+([\w:-]+)/g))
        if (!scripts.has(script!)) missing.push(`${doc}:${block.line + 1 + i} npm run ${script}`);
    });
  }
  return missing;
}

test('the commands infra/README.md and docs/demo.md give, run in this repository, are ones it has (npx of an installed bin, npm run of a script)', () => {
  const bins = new Set(readdirSync(`${ROOT}/node_modules/.bin`));
  const scripts = new Set(Object.keys((JSON.parse(readFileSync(`${ROOT}/package.json`, 'utf8')) as { scripts: Record<string, string> }).scripts));
  expect(missingCommands('infra/README.md', bins, scripts)).toEqual([]);
  expect(missingCommands('docs/demo.md', bins, scripts)).toEqual([]);
  expect(bins.has('lambda-idempotency')).toBe(false); // the package's own command: only where it is installed
});

/**
 * The passages of a page's prose: paragraphs, list items and table rows, each joined into one line,
 * with their first line's number. Code blocks are left out.
 */
function passages(text: string): Array<[number, string]> {
  const found: Array<[number, string]> = [];
  let current: [number, string[]] | undefined;
  const end = (): void => {
    if (current) found.push([current[0], current[1].join(' ')]);
    current = undefined;
  };
  for (const [line, prose] of proseLines(text)) {
    if (prose.trim() === '' || /^\s*(?:[-*] |\d+\. |\||#)/.test(prose)) end();
    if (prose.trim() === '') continue;
    if (current) current[1].push(prose.trim());
    else current = [line, [prose.trim()]];
  }
  end();
  return found;
}

/** Whether `part` is part of a title of `title`'s form: `%s`, `%i`, `$name`… stand for any text. */
function inTitle(title: string, part: string): boolean {
  const literals = title.split(/%[sdifjop#]|\$\w+/);
  const literal = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  for (let first = 0; first < literals.length; first++) {
    if (literals[first]!.includes(part)) return true;
    for (let last = first + 1; last < literals.length; last++) {
      // The part overlaps the literal text on either side of the placeholders it spans, unless that text is empty.
      const suffixes = literals[first] === '' ? [''] : [...literals[first]!].map((_, i) => literal(literals[first]!.slice(i)));
      const prefixes = literals[last] === '' ? [''] : [...literals[last]!].map((_, i) => literal(literals[last]!.slice(0, i + 1)));
      const middle = literals.slice(first + 1, last).map(literal);
      if (suffixes[0] === '' && prefixes[0] === '' && middle.every((text) => text === '')) continue;
      const pattern = `^(?:${suffixes.join('|')})${['', ...middle, ''].join('[\\s\\S]*')}(?:${prefixes.join('|')})$`;
      if (new RegExp(pattern).test(part)) return true;
    }
  }
  return false;
}

/**
 * The test names a page quotes that no test of the files its passage names has in its title, as
 * `docs/x.md:12 "name" (test/unit/x.test.ts)`: in a passage that names test files, text quoted
 * within parentheses is a test's name.
 */
function staleTestNames(doc: string, text: string): string[] {
  const stale: string[] = [];
  for (const [line, passage] of passages(text)) {
    const files = [...new Set([...passage.matchAll(/`(test\/[\w./-]+\.test\.ts)`/g)].map(([, file]) => file!))].filter((file) => existsSync(`${ROOT}/${file}`));
    if (files.length === 0) continue;
    const titles = files.flatMap((file) => testTitles(readFileSync(`${ROOT}/${file}`, 'utf8')));
    const prose = passage.replace(/`[^`]*`/g, '');
    for (const quote of prose.matchAll(/"[^"]+"/g)) {
      const before = prose.slice(0, quote.index);
      if (before.split('(').length <= before.split(')').length) continue;
      const [parts] = quotedNames(quote[0]);
      if (!titles.some((title) => parts!.every((part) => inTitle(title, part)))) stale.push(`${doc}:${line} ${quote[0]} (${files.join(', ')})`);
    }
  }
  return stale;
}

describe('every test name the documentation quotes beside a test file is part of a title in it', () => {
  // docs/batch.md names its test files once for the whole page: the next describe checks it.
  for (const doc of documents.filter((doc) => doc !== 'docs/batch.md')) {
    test(doc, () => {
      expect(staleTestNames(doc, readFileSync(`${ROOT}/${doc}`, 'utf8'))).toEqual([]);
    });
  }

  test('a renamed test is reported; a template title matches its instances; quotes in passages without test files are not test names', () => {
    const text = [
      'Proven (`test/integration/faults.test.ts`, "a fault at complete", "a fault at release, on every attempt").',
      '',
      '- Refused (`test/integration/faults.test.ts`, "a test that was renamed").',
      '- Following the draft "The Idempotency-Key HTTP Header Field".',
      '- Read "as is" (`test/integration/faults.test.ts`).',
    ].join('\n');
    expect(staleTestNames('guide.md', text)).toEqual(['guide.md:3 "a test that was renamed" (test/integration/faults.test.ts)']);
    expect([
      inTitle('a fault at %s', 'fault at claim'),
      inTitle('%s, once: the SDK retry', 'a 500, once: the'),
      inTitle('a fault at %s', 'a fault in'),
    ]).toEqual([true, true, false]);
  });
});

describe('the batch guarantees quote real test names', () => {
  const section = readFileSync(`${ROOT}/docs/batch.md`, 'utf8');
  const files = [
    'test/integration/batch.test.ts',
    'test/integration/batch-middy.test.ts',
    'test/integration/batch-pipes.test.ts',
    'test/integration/batch-layers.test.ts',
    'test/integration/batch-faults.test.ts',
    'test/integration/store-timeouts.test.ts',
    'test/unit/batch-binary-key.test.ts',
  ];
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

describe('docs/architecture.md maps every file of lib/', () => {
  const text = readFileSync(`${ROOT}/docs/architecture.md`, 'utf8');
  const sources = (readdirSync(`${ROOT}/lib`, { recursive: true }) as string[])
    .filter((path) => path.endsWith('.ts') && posix.basename(path) !== 'index.ts')
    .sort();
  /** The `.ts` names the page gives, in prose and in its picture, as paths under lib/. */
  const named = new Set([...text.matchAll(/(?<![\w/.-])((?:[a-z]+\/)?[a-z][\w-]*\.ts)\b/g)].map(([, name]) => name!));

  /** Folders the page names whole (`cli/`). */
  const folders = new Set([...text.matchAll(/`([a-z]+)\/`/g)].map(([, name]) => name!));

  test('it names each source file (an entry point index.ts aside) by its path under lib/, or its folder whole', () => {
    expect(sources.length).toBeGreaterThan(50);
    expect(sources.filter((path) => !named.has(path) && !folders.has(posix.dirname(path)))).toEqual([]);
  });

  test('each file it names is a file of lib/', () => {
    expect([...named].filter((name) => !existsSync(`${ROOT}/lib/${name}`))).toEqual([]);
  });
});
