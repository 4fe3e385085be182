/**
 * The documentation's TypeScript snippets compile as a user's strict ES-module project compiles
 * them, and its relative links and anchors resolve. The snippets that run are run by
 * readme-run.test.ts and readme-entry-points-run.test.ts.
 */
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, test } from '@jest/globals';
import type { ClaimRequest } from '../../lib/index.js';
import { makeIdempotent } from '../../lib/index.js';
import { InMemoryStore } from '../../lib/testing/index.js';
import { brokenLinks } from './links.js';
import { githubSlug } from './markdown.js';
import { type DocumentSnippets, documentationFiles, readDocument, type Snippet, snippetUnder, where } from './snippets.js';
import { type SnippetDiagnostic, type TypeCheckResult, typeCheck } from './type-check.js';

const documents = documentationFiles().map((doc) => readDocument(doc));

/** A snippet that must fail, proving that the checker reports errors and where. */
const WRONG_OPTION: Snippet = {
  doc: 'test/docs/readme.test.ts',
  line: 1,
  heading: '',
  context: "declare const store: import('lambda-idempotency').IdempotencyStore;\n",
  contextLine: 1,
  code: "import { makeIdempotent } from 'lambda-idempotency';\n\nexport const f = makeIdempotent(async (id: string) => id, { store, name: 'f', expiresAfter: 60 });",
  path: 'wrong-option.ts',
};
const probe: DocumentSnippets = {
  doc: WRONG_OPTION.doc,
  markdown: { blocks: [], comments: [], anchors: new Set(), headings: [], links: [] },
  snippets: [WRONG_OPTION],
  files: [],
};

let checked: TypeCheckResult;
beforeAll(() => {
  checked = typeCheck([...documents, probe]);
}, 120_000);

const format = (diagnostic: SnippetDiagnostic): string => `${diagnostic.location} TS${diagnostic.code}: ${diagnostic.message}`;

describe('every TypeScript snippet type-checks (strict, ES modules, the package mapped to lib/)', () => {
  for (const { snippets, files } of documents) {
    for (const snippet of snippets) {
      if (snippet.skip !== undefined) {
        test.skip(`${where(snippet)} (not checked: ${snippet.skip})`, () => undefined);
        continue;
      }
      test(`${where(snippet)} (${snippet.heading})`, () => {
        const diagnostics = checked.snippets.get(snippet)!;
        expect(diagnostics.map(format)).toEqual([]);
      });
    }
    for (const file of files) {
      test(`${where(file)} snippet-file ${file.path}`, () => {
        expect(checked.files.get(file)!.map(format)).toEqual([]);
      });
    }
  }

  test('a wrong option name is reported at its line in the document', () => {
    const messages = checked.snippets.get(WRONG_OPTION)!.map(format);
    expect(messages).toEqual([expect.stringMatching(/^test\/docs\/readme\.test\.ts:4:\d+ TS2353: .*'expiresAfter' does not exist/)]);
  });
});

test('the README Quickstart hides nothing: every name it uses is defined or imported in it', () => {
  // A newcomer copies it as it is: names declared only in an invisible snippet-context were
  // "Cannot find name 'charge'" in their project.
  const quickstart = snippetUnder(documents.find(({ doc }) => doc === 'README.md')!, 'Quickstart');
  expect(quickstart.context).toBe('');
});

test("the README Install installs the optional peers that middy's declarations import, which a strict type-check (skipLibCheck: false) resolves", () => {
  // Following the Install section on Node 22 (middy 7) without them, tsc failed in
  // node_modules/@middy/core/index.d.ts: "Cannot find module '@aws/durable-execution-sdk-js'".
  const middy = JSON.parse(readFileSync('node_modules/@middy/core/package.json', 'utf8')) as { peerDependenciesMeta?: Record<string, { optional?: boolean }> };
  const declarations = readFileSync('node_modules/@middy/core/index.d.ts', 'utf8');
  const imported = [...declarations.matchAll(/from ['"]([^.'"][^'"]*)['"]/g)].map(([, name]) => name!.replace(/^(@[^/]+\/[^/]+|[^@/][^/]*).*$/, '$1'));
  const optionalPeers = [...new Set(imported)].filter((name) => middy.peerDependenciesMeta?.[name]?.optional);
  expect(optionalPeers).not.toEqual([]);
  const install = readFileSync('README.md', 'utf8').split('## Install')[1]!.split('\n## ')[0]!;
  const installed = [...install.matchAll(/^npm install (.*)$/gm)].flatMap(([, args]) => args!.split('#')[0]!.trim().split(/\s+/));
  for (const name of optionalPeers) expect(installed).toContain(name);
  expect(install).toMatch(/skipLibCheck: false`[^.]*`@middy\/core`[^.]*`makeIdempotent` alone/);
});

test("the README's Before you deploy comes right after the Quickstart and states the lease and retention a call gets by default", async () => {
  // A user reads what to decide before deploying ahead of the entry points, not only in docs/.
  const readme = documents.find(({ doc }) => doc === 'README.md')!;
  const headings = readme.markdown.headings.map(({ text }) => text);
  expect(headings.indexOf('Before you deploy')).toBe(headings.indexOf('Quickstart') + 1);
  const section = readFileSync('README.md', 'utf8').split('## Before you deploy')[1]!.split('\n## ')[0]!.replace(/\s+/g, ' ');
  const leaseSeconds = Number(/`leaseSeconds` \(default (\d+)\)/.exec(section)?.[1]);
  const retentionHours = Number(/`expiresAfterSeconds`, default (\d+) hours/.exec(section)?.[1]);

  const T0 = 1_700_000_000_000;
  const store = new InMemoryStore();
  const claims: ClaimRequest[] = [];
  const claim = store.claim.bind(store);
  store.claim = (request) => (claims.push(request), claim(request));
  await makeIdempotent(async (_: string) => 1, { store, name: 'defaults', now: () => T0 })('k');
  expect(claims).toHaveLength(1);
  expect(claims[0]!.leaseUntil - T0).toBe(leaseSeconds * 1000);
  expect(claims[0]!.expiresAt - T0 / 1000).toBe(retentionHours * 3600);
});

describe('snippet comments', () => {
  const text = [
    '# Guide', // 1
    '<!-- snippet-file src/orders.ts: export interface Order { id: string } -->',
    '<!-- snippet-context: declare const store: Store;', // 3
    'type Store = object; -->',
    '',
    '```ts', // 6
    '// src/ship.ts: ships orders',
    '```',
    '<!-- snippet: skip (a shell session) -->', // 9
    '```typescript',
    '```',
    '- item',
    '   ```ts', // 13
    '   const indented = 1;',
    '   ```',
  ].join('\n');

  test('declare context, files, skips and paths; an indented block loses its indentation', () => {
    const { snippets, files } = readDocument('guide.md', text);
    expect(files).toEqual([{ doc: 'guide.md', line: 2, path: 'src/orders.ts', code: 'export interface Order { id: string }' }]);
    expect(snippets).toEqual([
      expect.objectContaining({
        line: 6,
        heading: 'Guide',
        path: 'src/ship.ts',
        context: 'declare const store: Store;\ntype Store = object;\n',
        contextLine: 3,
      }),
      expect.objectContaining({ line: 10, skip: 'a shell session', context: '' }),
      expect.objectContaining({ line: 13, path: 'L13.ts', code: 'const indented = 1;' }),
    ]);
  });

  test('an unknown directive is an error, not an unchecked block', () => {
    expect(() => readDocument('guide.md', '<!-- snippet-contxt: declare const x: 1; -->\n```ts\nx;\n```')).toThrow('guide.md:2: unknown snippet directive');
  });
});

describe('every relative link and #anchor resolves', () => {
  for (const { doc, markdown } of documents) {
    test(doc, () => {
      expect(brokenLinks(doc, markdown)).toEqual([]);
    });
  }

  test("anchors follow GitHub's slugs", () => {
    expect(githubSlug('HTTP APIs: Idempotency-Key')).toBe('http-apis-idempotency-key');
    expect(githubSlug('What happened to this key? Inspect, forget, find stuck records')).toBe('what-happened-to-this-key-inspect-forget-find-stuck-records');
    expect(githubSlug('Durable functions, Managed Instances and concurrent duplicates')).toBe('durable-functions-managed-instances-and-concurrent-duplicates');
    expect(githubSlug('snake_case and  two spaces')).toBe('snake_case-and--two-spaces');
  });

  test('a link to a missing heading or file is reported', () => {
    const markdown = {
      blocks: [],
      comments: [],
      anchors: new Set(['quickstart']),
      headings: [],
      links: [
        { line: 3, target: '#quick-start' },
        { line: 4, target: 'docs/nowhere.md' },
        { line: 5, target: 'docs/testing.md#with-jest' },
      ],
    };
    expect(brokenLinks('README.md', markdown)).toEqual([
      'README.md:3 #quick-start: no heading in README.md has the anchor #quick-start',
      'README.md:4 docs/nowhere.md: docs/nowhere.md does not exist',
    ]);
  });
});
