import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/** The construct library's sources, and the demo stack's. */
const dirs = [fileURLToPath(new URL('../../lib/cdk/', import.meta.url)), fileURLToPath(new URL('../../infra/', import.meta.url))];

/** Every member of an exported props or options interface of the CDK entry point, with what its TSDoc lacks. */
function undocumentedMembers(): string[] {
  const problems: string[] = [];
  for (const file of dirs.flatMap((dir) => readdirSync(dir).flatMap((name) => (name.endsWith('.ts') ? [`${dir}${name}`] : [])))) {
    const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
    for (const statement of source.statements) {
      if (!ts.isInterfaceDeclaration(statement) || !statement.modifiers?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword)) continue;
      if (!/(Props|Options|Thresholds)$/.test(statement.name.text)) continue;
      for (const member of statement.members) {
        if (!ts.isPropertySignature(member)) continue;
        const name = `${file.slice(file.lastIndexOf('/') + 1)}: ${statement.name.text}.${member.name.getText(source)}`;
        if (!member.modifiers?.some((m) => m.kind === ts.SyntaxKind.ReadonlyKeyword)) problems.push(`${name} is not readonly`);
        const docs = ts.getJSDocCommentsAndTags(member).filter(ts.isJSDoc);
        if (docs.length === 0) problems.push(`${name} has no TSDoc`);
        else if (member.questionToken && !docs.some((doc) => doc.tags?.some((tag) => tag.tagName.text === 'default'))) problems.push(`${name} has no @default`);
      }
    }
  }
  return problems;
}

test('every member of a props or options interface of lambda-idempotency/cdk and the demo stack is readonly, documented, and says its @default when optional', () => {
  expect(undocumentedMembers()).toEqual([]);
});
