/** Relative links of the documentation: the file exists, and a `#anchor` into Markdown is a heading there. */
import { existsSync, readFileSync } from 'node:fs';
import { posix } from 'node:path';
import { type MarkdownDocument, parseMarkdown } from './markdown.js';
import { ROOT } from './snippets.js';

const ABSOLUTE = /^(?:[a-z][a-z\d+.-]*:|\/\/)/i;

/**
 * Every relative link of `doc` that does not resolve, as `README.md:19 #the-demo-service: no such
 * heading in README.md`.
 */
export function brokenLinks(doc: string, markdown: MarkdownDocument): string[] {
  const parsed = new Map<string, MarkdownDocument>([[doc, markdown]]);
  const anchorsOf = (target: string): ReadonlySet<string> => {
    let document = parsed.get(target);
    if (!document) {
      document = parseMarkdown(readFileSync(`${ROOT}/${target}`, 'utf8'));
      parsed.set(target, document);
    }
    return new Set(document.anchors);
  };

  const broken: string[] = [];
  for (const { line, target } of markdown.links) {
    if (ABSOLUTE.test(target)) continue;
    const hash = target.indexOf('#');
    const path = decodeURI(hash === -1 ? target : target.slice(0, hash));
    const anchor = hash === -1 ? undefined : decodeURIComponent(target.slice(hash + 1));
    const resolved = path === '' ? doc : posix.normalize(posix.join(posix.dirname(doc), path)).replace(/\/$/, '');
    const at = `${doc}:${line} ${target}`;
    if (resolved.startsWith('../') || !existsSync(`${ROOT}/${resolved}`)) {
      broken.push(`${at}: ${resolved} does not exist`);
    } else if (anchor !== undefined && resolved.endsWith('.md') && !anchorsOf(resolved).has(anchor)) {
      broken.push(`${at}: no heading in ${resolved} has the anchor #${anchor}`);
    }
  }
  return broken;
}
