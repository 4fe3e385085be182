/**
 * Type-checks every snippet in one TypeScript program, as a user's strict ES-module project would:
 * the package's entry points map to the sources under lib/, everything else comes from node_modules.
 */
import ts from 'typescript';
import { checkedText, type DeclaredFile, type DocumentSnippets, ENTRY_POINTS, ROOT, SNIPPET_ROOT, type Snippet, virtualPath, where } from './snippets.js';

/** One problem in a snippet, located in its Markdown document. */
export interface SnippetDiagnostic {
  readonly code: number;
  /** `README.md:81:12` (a position in the code block), or `README.md:79 (snippet-context)`. */
  readonly location: string;
  readonly message: string;
}

/** The options of a user's strict ES-module project, the package's entry points mapped to lib/. */
export const COMPILER_OPTIONS: ts.CompilerOptions = {
  target: ts.ScriptTarget.ES2022,
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  lib: ['lib.es2023.d.ts'],
  types: ['node'],
  strict: true,
  esModuleInterop: true,
  skipLibCheck: true,
  noEmit: true,
  paths: {
    ...Object.fromEntries(Object.entries(ENTRY_POINTS).map(([name, source]) => [name, [source]])),
    // The package root re-exports every AWS service module (2,600 declaration files); what it
    // exports itself is `core`, which the service modules import from the same file, so the types
    // are identical and only the services a snippet uses are read.
    'aws-cdk-lib': [`${ROOT}/node_modules/aws-cdk-lib/core/index.d.ts`],
  },
};

/**
 * Vitest is not a dependency of this project. The examples use only the part of its API that
 * mirrors Jest's (`expect`, `test`, `vi.fn` and its mock methods), so Jest's types stand in for it.
 */
const VITEST_TYPES = `declare module 'vitest' {
  export { expect, test } from '@jest/globals';
  import type { jest } from '@jest/globals';
  export const vi: typeof jest;
}
`;

function formatLocation(snippet: Snippet, codeStartLine: number, file: ts.SourceFile, start: number | undefined): string {
  if (start === undefined) return where(snippet);
  const { line, character } = file.getLineAndCharacterOfPosition(start);
  if (line < codeStartLine) return `${snippet.doc}:${snippet.contextLine ?? snippet.line} (snippet-context)`;
  return `${snippet.doc}:${snippet.line + 1 + line - codeStartLine}:${character + 1}`;
}

export interface TypeCheckResult {
  /** The diagnostics of every checked snippet (skipped snippets are absent). */
  readonly snippets: Map<Snippet, SnippetDiagnostic[]>;
  /** The diagnostics of every `snippet-file`. */
  readonly files: Map<DeclaredFile, SnippetDiagnostic[]>;
}

export function typeCheck(documents: readonly DocumentSnippets[]): TypeCheckResult {
  const virtual = new Map<string, string>([[`${SNIPPET_ROOT}/vitest.d.ts`, VITEST_TYPES]]);
  const checked = new Map<string, { snippet: Snippet; codeStartLine: number }>();
  for (const document of documents) {
    for (const file of document.files) virtual.set(virtualPath(file.doc, file.path), file.code);
    for (const snippet of document.snippets) {
      if (snippet.skip !== undefined) continue;
      const { text, codeStartLine } = checkedText(snippet);
      const path = virtualPath(snippet.doc, snippet.path);
      virtual.set(path, text);
      checked.set(path, { snippet, codeStartLine });
    }
  }

  const host = ts.createCompilerHost(COMPILER_OPTIONS, true);
  const { getSourceFile, fileExists, readFile } = host;
  host.fileExists = (path) => virtual.has(path) || fileExists.call(host, path);
  host.readFile = (path) => virtual.get(path) ?? readFile.call(host, path);
  // Module resolution looks into a directory only if it exists: the virtual project's do.
  const { directoryExists } = host;
  host.directoryExists = (path) => path === SNIPPET_ROOT || path.startsWith(`${SNIPPET_ROOT}/`) || (directoryExists?.call(host, path) ?? true);
  host.getSourceFile = (path, languageVersion, onError, shouldCreate) => {
    const text = virtual.get(path);
    if (text === undefined) return getSourceFile.call(host, path, languageVersion, onError, shouldCreate);
    return ts.createSourceFile(path, text, languageVersion, true);
  };
  host.getCurrentDirectory = () => ROOT;
  const program = ts.createProgram({ rootNames: [...virtual.keys()], options: COMPILER_OPTIONS, host });

  const global = [...program.getOptionsDiagnostics(), ...program.getGlobalDiagnostics()];
  if (global.length > 0) throw new Error(ts.formatDiagnostics(global, host));
  const diagnose = (path: string, locate: (file: ts.SourceFile, start: number | undefined) => string): SnippetDiagnostic[] => {
    const file = program.getSourceFile(path)!;
    return [...program.getSyntacticDiagnostics(file), ...program.getSemanticDiagnostics(file)].map((diagnostic) => ({
      code: diagnostic.code,
      location: locate(file, diagnostic.start),
      message: ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n'),
    }));
  };
  const snippets = new Map<Snippet, SnippetDiagnostic[]>();
  for (const [path, { snippet, codeStartLine }] of checked) {
    snippets.set(
      snippet,
      diagnose(path, (file, start) => formatLocation(snippet, codeStartLine, file, start)),
    );
  }
  const files = new Map<DeclaredFile, SnippetDiagnostic[]>();
  for (const document of documents) {
    for (const declared of document.files)
      files.set(
        declared,
        diagnose(virtualPath(declared.doc, declared.path), () => `${where(declared)} (snippet-file)`),
      );
  }
  return { snippets, files };
}
