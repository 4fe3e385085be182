/**
 * Just enough Markdown for checking the documentation: fenced code blocks with the HTML comments
 * right before them, headings as GitHub turns them into anchors, and relative links.
 */

/** A fenced code block, its fence indentation removed. */
export interface CodeBlock {
  /** 1-based line of the opening fence. */
  readonly line: number;
  /** The info string's first word (`ts`, `sh`…), lower case. */
  readonly lang: string;
  readonly code: string;
  /** The HTML comments right before the fence (only blank lines between), their text trimmed, in document order. */
  readonly comments: readonly string[];
}

/** A link or image destination written in the document. */
export interface Link {
  readonly line: number;
  readonly target: string;
}

export interface MarkdownDocument {
  readonly blocks: readonly CodeBlock[];
  /** Every HTML comment outside code blocks, with the line it starts on. */
  readonly comments: ReadonlyArray<{ readonly line: number; readonly text: string }>;
  /** The anchors headings get (GitHub's slugs, duplicates numbered), plus `id`/`name` anchors of HTML tags. */
  readonly anchors: ReadonlySet<string>;
  readonly headings: ReadonlyArray<{ readonly line: number; readonly text: string }>;
  readonly links: readonly Link[];
}

const FENCE = /^(\s*)(`{3,}|~{3,})\s*([^\s`]*)/;

/**
 * GitHub's heading anchor: the rendered text in lower case, punctuation and symbols removed except
 * `-` and `_`, each space a `-`.
 */
export function githubSlug(heading: string): string {
  const rendered = heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1') // links and images keep their text
    .replace(/<[^>]+>/g, ''); // inline HTML tags render as nothing
  return rendered
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}_\s-]/gu, '')
    .replace(/ /g, '-');
}

/** Inline code spans hold text, not links: blank them out (keeping the line's length). */
function withoutCodeSpans(line: string): string {
  return line.replace(/(`+)([\s\S]*?[^`])\1(?!`)/g, (span) => ' '.repeat(span.length));
}

const INLINE_LINK = /!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^\s)>]+)>?(?:\s+(?:"[^"]*"|'[^']*'))?\s*\)/g;
const REFERENCE_DEFINITION = /^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)/;
const HTML_HREF = /<(?:a|img)\s[^>]*(?:href|src)\s*=\s*"([^"]+)"/gi;
const HTML_ANCHOR = /<[a-z][^>]*\s(?:id|name)\s*=\s*"([^"]+)"/gi;

export function parseMarkdown(text: string): MarkdownDocument {
  const lines = text.split('\n');
  const blocks: CodeBlock[] = [];
  const comments: Array<{ line: number; text: string }> = [];
  const headings: Array<{ line: number; text: string }> = [];
  const links: Link[] = [];
  const anchors = new Set<string>();
  const slugCounts = new Map<string, number>();
  // Comments seen since the last line that was neither blank nor a comment: they precede the next fence.
  let pending: string[] = [];

  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const fence = FENCE.exec(line);
    if (fence) {
      const [, indent = '', marks = '', info = ''] = fence;
      const body: string[] = [];
      let j = i + 1;
      for (; j < lines.length; j++) {
        const close = /^\s*(`{3,}|~{3,})\s*$/.exec(lines[j]!);
        if (close && close[1]![0] === marks[0] && close[1]!.length >= marks.length) break;
        body.push(lines[j]!.startsWith(indent) ? lines[j]!.slice(indent.length) : lines[j]!.trimStart());
      }
      blocks.push({ line: i + 1, lang: info.toLowerCase(), code: body.join('\n'), comments: pending });
      pending = [];
      i = j;
      continue;
    }
    if (line.trimStart().startsWith('<!--')) {
      const start = i;
      let comment = line;
      while (!comment.includes('-->') && i + 1 < lines.length) comment += `\n${lines[++i]}`;
      const inner = comment.slice(comment.indexOf('<!--') + 4, comment.lastIndexOf('-->')).trim();
      comments.push({ line: start + 1, text: inner });
      pending.push(inner);
      continue;
    }
    if (line.trim() !== '') pending = [];

    const heading = /^ {0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$/.exec(line);
    if (heading) {
      const text = heading[2]!.replace(/`/g, '').replace(/\*\*|__/g, '');
      headings.push({ line: i + 1, text });
      const slug = githubSlug(text);
      const seen = slugCounts.get(slug) ?? 0;
      anchors.add(seen === 0 ? slug : `${slug}-${seen}`);
      slugCounts.set(slug, seen + 1);
    }
    const prose = withoutCodeSpans(line);
    for (const match of prose.matchAll(INLINE_LINK)) links.push({ line: i + 1, target: match[1]! });
    for (const match of prose.matchAll(HTML_HREF)) links.push({ line: i + 1, target: match[1]! });
    for (const match of prose.matchAll(HTML_ANCHOR)) anchors.add(match[1]!);
    const definition = REFERENCE_DEFINITION.exec(prose);
    if (definition) links.push({ line: i + 1, target: definition[1]! });
  }
  return { blocks, comments, anchors, headings, links };
}
