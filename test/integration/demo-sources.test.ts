/**
 * Users copy the demo functions into their own services: what they copy must be the library's
 * current API, not a deprecated option kept for old code.
 */
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const FUNCTIONS = fileURLToPath(new URL('../../infra/functions/', import.meta.url));
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** TypeScript's "'{0}' is deprecated." suggestion, for a reference to a deprecated symbol. */
const DEPRECATED = 6385;

/**
 * The properties of object literals in `file` that set an option marked `@deprecated` in the type
 * they are checked against: TypeScript reports deprecated references, not such properties.
 */
function deprecatedOptions(checker: ts.TypeChecker, file: ts.SourceFile): string[] {
  const found: string[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isObjectLiteralExpression(node)) {
      const type = checker.getContextualType(node);
      for (const property of node.properties) {
        const name = property.name && ts.isIdentifier(property.name) ? property.name.text : undefined;
        const symbol = name === undefined ? undefined : type?.getProperty(name);
        if (symbol?.getJsDocTags(checker).some((tag) => tag.name === 'deprecated')) {
          found.push(`${file.fileName.slice(ROOT.length)}:${file.getLineAndCharacterOfPosition(property.getStart()).line + 1}: option ${name} is deprecated`);
        }
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(file);
  return found;
}

test('the demo functions use no deprecated API of the library, nor a deprecated option', () => {
  const config = ts.getParsedCommandLineOfConfigFile(`${ROOT}tsconfig.json`, {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} });
  const files = readdirSync(FUNCTIONS)
    .filter((name) => name.endsWith('.ts'))
    .map((name) => `${FUNCTIONS}${name}`);
  expect(files.length).toBeGreaterThan(0);
  const host: ts.LanguageServiceHost = {
    getCompilationSettings: () => config!.options,
    getScriptFileNames: () => files,
    getScriptVersion: () => '1',
    getScriptSnapshot: (path) => (ts.sys.fileExists(path) ? ts.ScriptSnapshot.fromString(ts.sys.readFile(path)!) : undefined),
    getCurrentDirectory: () => ROOT,
    getDefaultLibFileName: (options) => ts.getDefaultLibFilePath(options),
    fileExists: ts.sys.fileExists,
    readFile: ts.sys.readFile,
    readDirectory: ts.sys.readDirectory,
  };
  const service = ts.createLanguageService(host);
  const program = service.getProgram()!;
  const deprecated = files.flatMap((file) => [
    ...service
      .getSuggestionDiagnostics(file)
      .filter((d) => d.code === DEPRECATED)
      .map((d) => `${file.slice(ROOT.length)}: ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`),
    ...deprecatedOptions(program.getTypeChecker(), program.getSourceFile(file)!),
  ]);
  expect(deprecated).toEqual([]);
});
