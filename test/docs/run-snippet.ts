/**
 * Runs documentation snippets as they are written. A snippet becomes a module in a scratch
 * directory of the repository (so that jest compiles it and node_modules resolves), next to the
 * other snippets of its document at the paths they name; the package's entry points are pointed at
 * lib/. The names its `snippet-context` only declares, or imports from the user's own modules
 * (user code such as `charge`), are given by the test, and every top-level name it defines is
 * exported, so the test can call `chargeOnce` or `refund`.
 */

import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import ts from 'typescript';
import { type DocumentSnippets, ENTRY_POINTS, ROOT, type Snippet } from './snippets.js';

/** The names a binding pattern or declaration name introduces. */
function boundNames(name: ts.BindingName): string[] {
  if (ts.isIdentifier(name)) return [name.text];
  return name.elements.flatMap((element) => (ts.isOmittedExpression(element) ? [] : boundNames(element.name)));
}

const hasModifier = (node: ts.Node, kind: ts.SyntaxKind): boolean =>
  ts.canHaveModifiers(node) && (ts.getModifiers(node) ?? []).some((modifier) => modifier.kind === kind);

/** Top-level names a module defines without exporting them. */
function unexportedNames(file: ts.SourceFile): string[] {
  const names: string[] = [];
  for (const statement of file.statements) {
    if (hasModifier(statement, ts.SyntaxKind.ExportKeyword) || hasModifier(statement, ts.SyntaxKind.DeclareKeyword)) continue;
    if (ts.isVariableStatement(statement)) names.push(...statement.declarationList.declarations.flatMap((declaration) => boundNames(declaration.name)));
    else if ((ts.isFunctionDeclaration(statement) || ts.isClassDeclaration(statement)) && statement.name) names.push(statement.name.text);
  }
  return names;
}

/** The values a `import { a, type B } from '…'` brings in (`['a']`); undefined for default or namespace imports. */
function givenValues(statement: ts.ImportDeclaration): string[] | undefined {
  const clause = statement.importClause;
  if (clause === undefined || clause.isTypeOnly) return [];
  if (clause.name !== undefined || clause.namedBindings === undefined || !ts.isNamedImports(clause.namedBindings)) return undefined;
  return clause.namedBindings.elements.filter((element) => !element.isTypeOnly).map((element) => element.name.text);
}

/** The module a snippet runs as: bindings first, entry points pointed at lib/, its own names exported. */
function runtimeModule(code: string, bindings: readonly string[], bindingKey: string): string {
  const file = ts.createSourceFile('snippet.ts', code, ts.ScriptTarget.ES2022, true);
  const defined = unexportedNames(file);
  const clash = bindings.find((name) => defined.includes(name));
  if (clash) throw new Error(`The snippet defines \`${clash}\` itself: it cannot also be given.`);
  // Edits from the last to the first, so earlier offsets stay valid: entry points pointed at lib/,
  // and imports of the user's own modules (`./charge.js`) whose values the test gives dropped.
  const edits: { start: number; end: number; text: string }[] = [];
  for (const statement of file.statements) {
    if (!(ts.isImportDeclaration(statement) || ts.isExportDeclaration(statement)) || !statement.moduleSpecifier) continue;
    const specifier = statement.moduleSpecifier;
    if (!ts.isStringLiteral(specifier)) continue;
    if (specifier.text in ENTRY_POINTS) {
      edits.push({ start: specifier.getStart(file), end: specifier.getEnd(), text: JSON.stringify(ENTRY_POINTS[specifier.text]) });
    } else if (ts.isImportDeclaration(statement) && specifier.text.startsWith('.')) {
      const values = givenValues(statement);
      if (values !== undefined && values.length > 0 && values.every((name) => bindings.includes(name))) {
        edits.push({ start: statement.getStart(file), end: statement.getEnd(), text: '' });
      }
    }
  }
  let text = code;
  for (const { start, end, text: replacement } of edits.reverse()) text = `${text.slice(0, start)}${replacement}${text.slice(end)}`;
  const given = bindings.length > 0 ? `const { ${bindings.join(', ')} } = Reflect.get(globalThis, Symbol.for(${JSON.stringify(bindingKey)}));\n` : '';
  const exported = defined.length > 0 ? `\nexport { ${defined.join(', ')} };\n` : '\n';
  return `${given}${text}${exported}`;
}

/** Runs snippets; `dispose()` removes the scratch directory. */
export class SnippetRunner {
  private readonly directory = mkdtempSync(`${ROOT}/.scratch-snippets-`);

  /**
   * Imports `snippet` (a module of `document`) with `bindings` as the values of names it does not
   * define, and returns its exports (its top-level names).
   */
  async run(document: DocumentSnippets, snippet: Snippet, bindings: Readonly<Record<string, unknown>> = {}): Promise<Record<string, unknown>> {
    const key = `lambda-idempotency.docs.${randomUUID()}`;
    const base = `${this.directory}/${key}`;
    const write = (path: string, text: string): void => {
      mkdirSync(dirname(`${base}/${path}`), { recursive: true });
      writeFileSync(`${base}/${path}`, text);
    };
    // The other snippets and files of the document, for the relative imports between them.
    for (const file of document.files) write(file.path, runtimeModule(file.code, [], key));
    for (const other of document.snippets) if (other !== snippet) write(other.path, runtimeModule(other.code, [], key));
    write(snippet.path, runtimeModule(snippet.code, Object.keys(bindings), key));
    Reflect.set(globalThis, Symbol.for(key), bindings);
    try {
      return (await import(`${base}/${snippet.path}`)) as Record<string, unknown>;
    } finally {
      Reflect.deleteProperty(globalThis, Symbol.for(key));
    }
  }

  dispose(): void {
    rmSync(this.directory, { recursive: true, force: true });
  }
}
