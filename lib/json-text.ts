/*
 * Canonical form of a JSON text, for request fingerprints. Parsing to JavaScript values first would
 * make distinct requests equal: 9007199254740993 and 9007199254740992 are one double, and 1e400 is
 * Infinity. Here numbers keep their exact text, strings are compared by what they decode to, and
 * only whitespace and member order are dropped. A member name sent twice keeps both members, in
 * their order (parsers disagree on which one wins, so the order carries meaning).
 */

/** Deeper texts are left to their bytes: the parser recurses, and no real request body nests this far. */
const MAX_DEPTH = 200;

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

class NotJson extends Error {}

class Reader {
  at = 0;
  constructor(private readonly text: string) {}

  space(): void {
    for (let c = this.text.charCodeAt(this.at); c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09; c = this.text.charCodeAt(++this.at));
  }

  value(depth: number): string {
    this.space();
    const c = this.text[this.at];
    if (c === '{' || c === '[') {
      if (depth >= MAX_DEPTH) throw new NotJson();
      return c === '{' ? this.object(depth) : this.array(depth);
    }
    if (c === '"') return JSON.stringify(this.string());
    for (const literal of ['true', 'false', 'null']) {
      if (this.text.startsWith(literal, this.at)) {
        this.at += literal.length;
        return literal;
      }
    }
    NUMBER.lastIndex = this.at;
    const number = NUMBER.exec(this.text);
    if (number === null) throw new NotJson();
    this.at += number[0].length;
    return number[0];
  }

  private object(depth: number): string {
    const members: Array<[name: string, text: string]> = [];
    this.at++;
    this.space();
    if (this.text[this.at] === '}') {
      this.at++;
      return '{}';
    }
    do {
      this.space();
      if (this.text[this.at] !== '"') throw new NotJson();
      const name = this.string();
      this.space();
      if (this.text[this.at++] !== ':') throw new NotJson();
      members.push([name, `${JSON.stringify(name)}:${this.value(depth + 1)}`]);
      this.space();
    } while (this.text[this.at++] === ',');
    if (this.text[this.at - 1] !== '}') throw new NotJson();
    // A stable sort: members sent twice keep their relative order.
    members.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${members.map(([, text]) => text).join(',')}}`;
  }

  private array(depth: number): string {
    const items: string[] = [];
    this.at++;
    this.space();
    if (this.text[this.at] === ']') {
      this.at++;
      return '[]';
    }
    do items.push(this.value(depth + 1));
    while ((this.space(), this.text[this.at++] === ','));
    if (this.text[this.at - 1] !== ']') throw new NotJson();
    return `[${items.join(',')}]`;
  }

  /** The decoded string at the cursor (an opening quote); JSON.parse decodes the escapes exactly, lone surrogates included. */
  private string(): string {
    const start = this.at;
    for (let i = start + 1; i < this.text.length; i++) {
      const c = this.text.charCodeAt(i);
      if (c === 0x5c) i++;
      else if (c === 0x22) {
        this.at = i + 1;
        try {
          return JSON.parse(this.text.slice(start, this.at)) as string;
        } catch {
          throw new NotJson(); // a control character or a malformed escape
        }
      }
    }
    throw new NotJson();
  }
}

/**
 * The canonical text of a JSON document: no insignificant whitespace, members sorted by name,
 * numbers exactly as written, strings re-escaped from their decoded value; `undefined` when the
 * text is not JSON or nests deeper than 200 levels.
 * @internal
 */
export function canonicalJsonText(text: string): string | undefined {
  const reader = new Reader(text);
  try {
    const canonical = reader.value(0);
    reader.space();
    return reader.at === text.length ? canonical : undefined;
  } catch (error) {
    if (error instanceof NotJson) return undefined;
    throw error;
  }
}
