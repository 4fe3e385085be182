/**
 * The shipped stores are `IdempotencyStore`s in a user's project that sets
 * `exactOptionalPropertyTypes` (a strict option outside `strict`): a test that passes an
 * `InMemoryStore` where the handler takes an `IdempotencyStore`, or the handler module that passes a
 * `DynamoDBStore`, compiles there too.
 */
import ts from 'typescript';
import { ROOT } from '../docs/snippets.js';
import { COMPILER_OPTIONS } from '../docs/type-check.js';

const USER_FILE = `${ROOT}/.exact-optional/app.ts`;
const USER_CODE = `
import type { IdempotencyStore } from 'lambda-idempotency';
import { DynamoDBStore } from 'lambda-idempotency';
import { RedisStore } from 'lambda-idempotency/redis';
import { InMemoryStore } from 'lambda-idempotency/testing';

export const stores: IdempotencyStore[] = [new InMemoryStore(), new DynamoDBStore({ tableName: 'idempotency' }), null as unknown as RedisStore];

/** A user's store with only the members the interface requires. */
export const own: IdempotencyStore = {
  claim: async () => ({ claimed: true }),
  complete: async () => ({ completed: true, responseStored: true }),
  release: async () => ({ released: true }),
};
`;

test('InMemoryStore, DynamoDBStore and RedisStore are IdempotencyStores under exactOptionalPropertyTypes', () => {
  const options: ts.CompilerOptions = { ...COMPILER_OPTIONS, exactOptionalPropertyTypes: true };
  const host = ts.createCompilerHost(options, true);
  const { fileExists, readFile, getSourceFile } = host;
  host.fileExists = (path) => path === USER_FILE || fileExists.call(host, path);
  host.readFile = (path) => (path === USER_FILE ? USER_CODE : readFile.call(host, path));
  host.getSourceFile = (path, version, onError, shouldCreate) =>
    path === USER_FILE ? ts.createSourceFile(path, USER_CODE, version, true) : getSourceFile.call(host, path, version, onError, shouldCreate);
  host.getCurrentDirectory = () => ROOT;
  const program = ts.createProgram({ rootNames: [USER_FILE], options, host });
  const file = program.getSourceFile(USER_FILE)!;
  const messages = [...program.getSyntacticDiagnostics(file), ...program.getSemanticDiagnostics(file)].map((diagnostic) =>
    ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n'),
  );
  expect(messages).toEqual([]);
});
