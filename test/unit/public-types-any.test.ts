/**
 * No `any` in the public types, written here or taken from a dependency: a strict project that
 * calls the library, reads what it returns or implements one of its interfaces gets every value
 * typed. The walk covers every export of every entry point (package.json `exports`): the members,
 * parameters, results, type arguments and index signatures of the types declared in lib/, and the
 * type arguments of the dependencies' types they name. A dependency's own type (a Lambda event,
 * whose REST authorizer context @types/aws-lambda types as `{ [name: string]: any }`; a CDK
 * construct) is its own business and is not entered.
 */
import ts from 'typescript';
import { ENTRY_POINTS, ROOT } from '../docs/snippets.js';
import { COMPILER_OPTIONS } from '../docs/type-check.js';

/**
 * The `any`s that stay: DynamoDB item values, lib-dynamodb's `NativeAttributeValue` (an `any`), as
 * the commands they become take them. With `unknown` values, an item typed by an interface of the
 * user's (`Item: order`) would not compile: only an index signature of `any` takes an interface.
 */
const ALLOWED = new Set([
  'Expressions.ExpressionAttributeValues',
  'TransactionPut.Item',
  'TransactionUpdate.Key',
  'TransactionDelete.Key',
  'TransactionConditionCheck.Key',
  'TransitionParams.Key',
  'TransitionParams.set',
  'TransitionParams.condition',
]);

/** Where an `any` is reachable from: `<export>` or `<declaring type>.<member>` of the nearest member declared in lib/. */
function anyPlaces(): string[] {
  // The entry points are the roots, read as the sources they are; `aws-cdk-lib` keeps its mapping to
  // the core module (what lib/cdk imports from the package root), so that its 2,600 service modules are not read.
  const paths = { 'aws-cdk-lib': COMPILER_OPTIONS.paths!['aws-cdk-lib']! };
  const program = ts.createProgram(Object.values(ENTRY_POINTS), { ...COMPILER_OPTIONS, paths });
  const checker = program.getTypeChecker();
  const inLib = (declaration: ts.Declaration): boolean => declaration.getSourceFile().fileName.startsWith(`${ROOT}/lib/`);
  const places = new Set<string>();
  const seen = new Set<string>();
  const walk = (type: ts.Type, place: string, depth: number): void => {
    if (type.flags & ts.TypeFlags.Any) {
      places.add(place);
      return;
    }
    const id = `${(type as { id?: number }).id}@${place}`;
    if (depth > 12 || seen.has(id)) return;
    seen.add(id);
    if (type.isUnionOrIntersection()) {
      for (const member of type.types) walk(member, place, depth + 1);
      return;
    }
    for (const argument of type.aliasTypeArguments ?? []) walk(argument, place, depth + 1);
    if (!(type.flags & ts.TypeFlags.Object)) return;
    const object = type as ts.ObjectType;
    if (object.objectFlags & ts.ObjectFlags.Reference)
      for (const argument of checker.getTypeArguments(type as ts.TypeReference)) walk(argument, place, depth + 1);
    // A mapped type (`Record<string, T>`, under an alias of ours or not) is its values' type.
    if (object.objectFlags & ts.ObjectFlags.Mapped) {
      for (const info of checker.getIndexInfosOfType(type)) walk(info.type, place, depth + 1);
      for (const property of checker.getPropertiesOfType(type)) walk(checker.getTypeOfSymbol(property), place, depth + 1);
      return;
    }
    const symbol = type.getSymbol();
    if (symbol?.declarations !== undefined && !symbol.declarations.some(inLib)) return;
    for (const property of checker.getPropertiesOfType(type)) {
      const declarations = property.declarations ?? [];
      if (!declarations.some(inLib)) continue;
      const owner = (declarations[0]!.parent as ts.Node & { name?: ts.Identifier }).name?.text;
      walk(checker.getTypeOfSymbol(property), owner === undefined ? place : `${owner}.${property.name}`, depth + 1);
    }
    for (const kind of [ts.SignatureKind.Call, ts.SignatureKind.Construct]) {
      for (const signature of checker.getSignaturesOfType(type, kind)) {
        for (const parameter of signature.getParameters()) walk(checker.getTypeOfSymbol(parameter), place, depth + 1);
        for (const parameter of signature.getTypeParameters() ?? []) {
          for (const bound of [parameter.getConstraint(), parameter.getDefault()]) if (bound !== undefined) walk(bound, place, depth + 1);
        }
        walk(signature.getReturnType(), place, depth + 1);
      }
    }
    for (const info of checker.getIndexInfosOfType(type)) walk(info.type, place, depth + 1);
  };
  for (const entry of Object.values(ENTRY_POINTS)) {
    const module = checker.getSymbolAtLocation(program.getSourceFile(entry)!)!;
    for (const exported of checker.getExportsOfModule(module)) {
      const symbol = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
      if (symbol.flags & ts.SymbolFlags.Value) walk(checker.getTypeOfSymbol(symbol), exported.name, 0);
      if (symbol.flags & (ts.SymbolFlags.Class | ts.SymbolFlags.Interface | ts.SymbolFlags.TypeAlias))
        walk(checker.getDeclaredTypeOfSymbol(symbol), exported.name, 0);
    }
  }
  return [...places].sort();
}

test("no public type of any entry point is or holds `any`, but for the dependencies' types listed", () => {
  expect(anyPlaces().filter((place) => !ALLOWED.has(place))).toEqual([]);
});
