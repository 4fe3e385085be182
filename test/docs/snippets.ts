/**
 * The TypeScript snippets of README.md and docs/*.md, each with the context its HTML comments
 * declare, laid out as files of a virtual project under `.snippets/` so that a snippet can import
 * another one by the path its first line names (`// src/charge.ts`).
 *
 * Comments right before a block (rendered invisibly on GitHub and npm):
 * - `<!-- snippet-context: CODE -->` declarations the snippet refers to but does not show (user
 *   code such as `charge` or `Order`); type-level only, they are not part of a run.
 * - `<!-- snippet: skip (reason) -->` the block is deliberately not checked.
 * Anywhere in a document: `<!-- snippet-file PATH: CODE -->` a file the snippets import that the
 * document does not show (`src/payments.ts`).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type MarkdownDocument, parseMarkdown } from './markdown.js';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url)).replace(/\/$/, '');

/** Where the virtual project of the snippets lives (nothing is written there). */
export const SNIPPET_ROOT = `${ROOT}/.snippets`;

/** The package's entry points (from package.json's `exports`) and the sources they are built from. */
export const ENTRY_POINTS: Readonly<Record<string, string>> = Object.fromEntries(
  Object.entries((JSON.parse(readFileSync(`${ROOT}/package.json`, 'utf8')) as { exports: Record<string, string | { default: string }> }).exports)
    .filter(([, target]) => typeof target === 'object')
    .map(([subpath, target]) => [
      posix.join('lambda-idempotency', subpath),
      `${ROOT}/${(target as { default: string }).default.replace(/^\.\/dist\//, '').replace(/\.js$/, '.ts')}`,
    ]),
);

export interface Snippet {
  /** The document, relative to the repository root (`README.md`, `docs/testing.md`). */
  readonly doc: string;
  /** 1-based line of the opening fence. */
  readonly line: number;
  /** The heading the snippet appears under. */
  readonly heading: string;
  readonly code: string;
  /** Declarations from `snippet-context` comments ('' when none). */
  readonly context: string;
  /** 1-based line of the first `snippet-context` comment. */
  readonly contextLine?: number;
  /** Why the block is not checked, from `<!-- snippet: skip (reason) -->`. */
  readonly skip?: string;
  /** Path of the snippet inside its document's virtual project, e.g. `src/charge.ts` or `L74.ts`. */
  readonly path: string;
}

/** A file declared by a `snippet-file` comment. */
export interface DeclaredFile {
  readonly doc: string;
  readonly line: number;
  readonly path: string;
  readonly code: string;
}

export interface DocumentSnippets {
  readonly doc: string;
  readonly markdown: MarkdownDocument;
  readonly snippets: readonly Snippet[];
  readonly files: readonly DeclaredFile[];
}

const TYPESCRIPT = new Set(['ts', 'typescript']);

/** README.md and docs/*.md, relative to the repository root. */
export function documentationFiles(): string[] {
  const docs = readdirSync(`${ROOT}/docs`)
    .filter((name) => name.endsWith('.md'))
    .sort();
  return ['README.md', ...docs.map((name) => `docs/${name}`)];
}

/** The path a block's first line names (`// src/charge.ts: the handler`), if any. */
function declaredPath(code: string): string | undefined {
  return /^\/\/ ((?:[\w.-]+\/)*[\w.-]+\.ts)\b/.exec(code)?.[1];
}

function directive(comment: string): { name: string; rest: string } | undefined {
  const match = /^(snippet[\w-]*)\b\s*([\s\S]*)$/.exec(comment);
  return match ? { name: match[1]!, rest: match[2]! } : undefined;
}

/** The snippets of `doc` (its text read from the repository unless given). */
export function readDocument(doc: string, text = readFileSync(`${ROOT}/${doc}`, 'utf8')): DocumentSnippets {
  const markdown = parseMarkdown(text);
  const files: DeclaredFile[] = [];
  for (const comment of markdown.comments) {
    const found = directive(comment.text);
    if (found?.name !== 'snippet-file') continue;
    const match = /^((?:[\w.-]+\/)*[\w.-]+\.ts):\s*([\s\S]*)$/.exec(found.rest);
    if (!match) throw new Error(`${doc}:${comment.line}: a snippet-file comment reads "snippet-file PATH.ts: CODE".`);
    files.push({ doc, line: comment.line, path: match[1]!, code: match[2]! });
  }

  const snippets: Snippet[] = [];
  const taken = new Set(files.map((file) => file.path));
  for (const block of markdown.blocks) {
    if (!TYPESCRIPT.has(block.lang)) continue;
    let context = '';
    let contextLine: number | undefined;
    let skip: string | undefined;
    for (const comment of block.comments) {
      const found = directive(comment);
      if (!found || found.name === 'snippet-file') continue;
      if (found.name === 'snippet-context' && found.rest.startsWith(':')) {
        context += `${found.rest.slice(1).trim()}\n`;
        contextLine ??= commentLine(markdown, block.line, comment);
      } else if (found.name === 'snippet' && /^:\s*skip\s*\(.+\)$/s.test(found.rest)) {
        skip = /\((.+)\)$/s.exec(found.rest)![1]!;
      } else {
        throw new Error(`${doc}:${block.line}: unknown snippet directive "${comment}" (snippet-context: CODE, or snippet: skip (reason)).`);
      }
    }
    // A block names its file on its first line; a second block naming the same file (the same test
    // for another runner) gets a file of its own next to it.
    const named = declaredPath(block.code);
    const path = named && !taken.has(named) ? named : named ? posix.join(posix.dirname(named), `L${block.line}-${posix.basename(named)}`) : `L${block.line}.ts`;
    taken.add(path);
    const heading = [...markdown.headings].reverse().find((h) => h.line < block.line)?.text ?? '';
    snippets.push({ doc, line: block.line, heading, code: block.code, context, ...(contextLine ? { contextLine } : {}), ...(skip ? { skip } : {}), path });
  }
  return { doc, markdown, snippets, files };
}

function commentLine(markdown: MarkdownDocument, blockLine: number, text: string): number | undefined {
  return [...markdown.comments].reverse().find((comment) => comment.line < blockLine && comment.text === text)?.line;
}

/** Absolute path of a snippet (or declared file) in the virtual project. */
export const virtualPath = (doc: string, path: string): string => `${SNIPPET_ROOT}/${doc}/${path}`;

/** What the type checker compiles for a snippet: its context, then its code, as one module. */
export function checkedText(snippet: Snippet): { text: string; codeStartLine: number } {
  const context = snippet.context;
  const codeStartLine = context === '' ? 0 : context.split('\n').length - 1;
  return { text: `${context}${snippet.code}\nexport {};\n`, codeStartLine };
}

/** `docs/testing.md:59` */
export const where = (snippet: Pick<Snippet, 'doc' | 'line'>): string => `${snippet.doc}:${snippet.line}`;

/** The `index`-th TypeScript snippet under the heading `heading` of `document`; throws when there is none. */
export function snippetUnder(document: DocumentSnippets, heading: string, index = 0): Snippet {
  const found = document.snippets.filter((snippet) => snippet.heading === heading)[index];
  if (!found) throw new Error(`${document.doc} has no TypeScript snippet #${index + 1} under the heading "${heading}".`);
  return found;
}
