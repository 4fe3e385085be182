/**
 * The `@example` blocks of the library's TSDoc (what an editor shows on hover) as snippets, so that
 * the documentation tests can type-check and run them as they run the Markdown's.
 */
import { readFileSync } from 'node:fs';
import { type DocumentSnippets, ROOT, type Snippet } from './snippets.js';

/** The `@example` code blocks of `file` (relative to the repository root), each under the name of the declaration it documents. */
export function tsdocExamples(file: string): DocumentSnippets {
  const source = readFileSync(`${ROOT}/${file}`, 'utf8');
  const snippets: Snippet[] = [];
  for (const comment of source.matchAll(/\/\*\*[\s\S]*?\*\//g)) {
    const lines = comment[0].split('\n').map((line) => line.replace(/^\s*\*(?: |$)/, ''));
    const example = lines.findIndex((line) => line.trim() === '@example');
    if (example < 0) continue;
    const open = lines.findIndex((line, i) => i > example && line.startsWith('```'));
    const close = lines.findIndex((line, i) => i > open && line.startsWith('```'));
    const after = source.slice(comment.index + comment[0].length).split('\n');
    const heading = after.map((line) => /^export (?:declare )?(?:async )?(?:function|const|class|interface|type) (\w+)/.exec(line)?.[1]).find(Boolean) ?? '';
    const line = source.slice(0, comment.index).split('\n').length + open;
    snippets.push({ doc: file, line, heading, code: lines.slice(open + 1, close).join('\n'), context: '', path: `L${line}.ts` });
  }
  return { doc: file, markdown: { blocks: [], comments: [], anchors: new Set(), headings: [], links: [] }, snippets, files: [] };
}
