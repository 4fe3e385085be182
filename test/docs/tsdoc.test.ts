/**
 * The TSDoc an editor shows on hover: every export of every entry point (package.json `exports`) has
 * one, and so does every member of the types a user reads when handling an error or writing a store,
 * where a time without its unit (epoch seconds or milliseconds) invites a store that keeps records
 * a thousand times too long, or lets leases end at once. Each option of the docs/options.md table
 * shows its default on hover too, and each deprecation says what to do instead.
 */
import { readFileSync } from 'node:fs';
import { beforeAll, expect, test } from '@jest/globals';
import ts from 'typescript';
import { ENTRY_POINTS, ROOT } from './snippets.js';
import { COMPILER_OPTIONS } from './type-check.js';

/** Members a user hovers when catching an error or writing an `IdempotencyStore`. */
const READ_MEMBER_BY_MEMBER = [
  'IdempotencyError',
  'IdempotencyStore',
  'ClaimRequest',
  'CompleteRequest',
  'ReleaseRequest',
  'IdempotencyRecord',
  'RecordSummary',
];

let checker: ts.TypeChecker;
/** Each export of each entry point: `<entry point> <name>` and the symbol it names. */
let exported: Array<[string, ts.Symbol]>;

beforeAll(() => {
  const program = ts.createProgram(Object.values(ENTRY_POINTS), COMPILER_OPTIONS);
  checker = program.getTypeChecker();
  exported = Object.entries(ENTRY_POINTS).flatMap(([entry, file]) => {
    const module = checker.getSymbolAtLocation(program.getSourceFile(file)!)!;
    return checker
      .getExportsOfModule(module)
      .map((symbol): [string, ts.Symbol] => [`${entry} ${symbol.name}`, symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol]);
  });
}, 60_000);

const documentation = (symbol: ts.Symbol): string => ts.displayPartsToString(symbol.getDocumentationComment(checker)).trim();

/** The members of an exported class or interface that the library declares (not those of Error or of the AWS types). */
function ownMembers(symbol: ts.Symbol): ts.Symbol[] {
  const type = checker.getDeclaredTypeOfSymbol(symbol);
  return checker
    .getPropertiesOfType(type)
    .filter((member) => member.declarations?.some((declaration) => declaration.getSourceFile().fileName.startsWith(`${ROOT}/lib/`)))
    .filter(
      (member) =>
        !member.declarations?.some((declaration) => ts.getCombinedModifierFlags(declaration) & (ts.ModifierFlags.Private | ts.ModifierFlags.Protected)),
    );
}

test('every export of every entry point has TSDoc', () => {
  expect(exported.length).toBeGreaterThan(80);
  expect(exported.filter(([, symbol]) => documentation(symbol) === '').map(([name]) => name)).toEqual([]);
});

test('every member of the error and of the store contract has TSDoc', () => {
  const members = exported
    .filter(([, symbol]) => READ_MEMBER_BY_MEMBER.includes(symbol.name))
    .flatMap(([name, symbol]) => ownMembers(symbol).map((member): [string, ts.Symbol] => [`${name}.${member.name}`, member]));
  expect(members.length).toBeGreaterThan(50);
  expect([...new Set(members.filter(([, member]) => documentation(member) === '').map(([name]) => name))]).toEqual([]);
});

test('every `leaseUntil` and `expiresAt` of an exported type says whether it counts epoch seconds or milliseconds', () => {
  const times = exported
    .filter(([, symbol]) => symbol.flags & (ts.SymbolFlags.Interface | ts.SymbolFlags.Class | ts.SymbolFlags.TypeAlias))
    .flatMap(([name, symbol]) => ownMembers(symbol).map((member): [string, ts.Symbol] => [`${name}.${member.name}`, member]))
    .filter(([, member]) => member.name === 'leaseUntil' || member.name === 'expiresAt')
    .filter(([, member]) => checker.getNonNullableType(checker.getTypeOfSymbol(member)).flags & ts.TypeFlags.NumberLike);
  expect(times.length).toBeGreaterThan(5);
  expect([...new Set(times.filter(([, member]) => !/epoch (milli)?seconds/i.test(documentation(member))).map(([name]) => name))]).toEqual([]);
});

test("every option docs/options.md's table gives a default has that default in its TSDoc", () => {
  const text = readFileSync(`${ROOT}/docs/options.md`, 'utf8');
  const rows = text
    .slice(text.indexOf('\n## Options\n'), text.indexOf('\n## ', text.indexOf('\n## Options\n') + 1))
    .split('\n')
    .filter((line) => line.startsWith('| `'));
  const options = checker.getDeclaredTypeOfSymbol(exported.find(([name]) => name === 'lambda-idempotency IdempotencyOptions')![1]);
  const unlike = rows.flatMap((row) => {
    const [option = '', documented = ''] = row
      .slice(1, -1)
      .split(' | ')
      .map((cell) => cell.trim());
    const name = /`(\w+)/.exec(option)![1]!;
    if (documented === 'required' || documented === '—') return [];
    const tag = options
      .getProperty(name)
      ?.getJsDocTags(checker)
      .find((found) => found.name === 'default');
    const given = tag === undefined ? undefined : ts.displayPartsToString(tag.text).replaceAll('`', '');
    // A value (`0`, `'throw'`) must be the TSDoc's; a sentence, at least stated.
    const value = /^`([^`]+)`$/.exec(documented)?.[1];
    return given === undefined || (value !== undefined && !given.startsWith(value)) ? [`${name}: docs/options.md ${documented}, TSDoc ${given}`] : [];
  });
  expect(rows.length).toBeGreaterThan(15);
  expect(unlike).toEqual([]);
});

test('every `@deprecated` of the public API says what to do instead', () => {
  const tagged = (symbol: ts.Symbol): string[] => {
    const signatures =
      symbol.flags & ts.SymbolFlags.Class
        ? checker.getTypeOfSymbol(symbol).getConstructSignatures()
        : symbol.flags & ts.SymbolFlags.Function
          ? checker.getTypeOfSymbol(symbol).getCallSignatures()
          : [];
    return [...symbol.getJsDocTags(checker), ...signatures.flatMap((signature) => signature.getJsDocTags())]
      .filter((tag) => tag.name === 'deprecated')
      .map((tag) => ts.displayPartsToString(tag.text));
  };
  const deprecations = exported.flatMap(([name, symbol]) => [
    ...tagged(symbol).map((text): [string, string] => [name, text]),
    ...(symbol.flags & (ts.SymbolFlags.Interface | ts.SymbolFlags.Class) ? ownMembers(symbol) : []).flatMap((member) =>
      tagged(member).map((text): [string, string] => [`${name}.${member.name}`, text]),
    ),
  ]);
  expect(deprecations.length).toBeGreaterThan(3);
  expect([...new Set(deprecations.filter(([, text]) => !/\b(pass|use|read|remove)\b/i.test(text)).map(([name, text]) => `${name}: ${text}`))]).toEqual([]);
});
