/**
 * The `@example` blocks of the library's TSDoc, run as written (tsdoc-examples.ts extracts them, the
 * runner of the Markdown snippets imports them): what an editor shows a user on hover is safe to copy.
 * The test gives only the names an example leaves out.
 */
import { afterAll, expect, test } from '@jest/globals';
import { callerIdentity, type HttpEvent, type HttpIdempotencyOptions } from '../../lib/index.js';
import { InMemoryStore } from '../../lib/testing/index.js';
import { ANONYMOUS, eventFor, httpEvent, IDENTITY_SHAPES } from '../support/identity-events.js';
import { SnippetRunner } from './run-snippet.js';
import { snippetUnder } from './snippets.js';
import { tsdocExamples } from './tsdoc-examples.js';
import { typeCheck } from './type-check.js';

const runner = new SnippetRunner();
afterAll(() => runner.dispose());

test("the examples of callerIdentity and HttpScope type-check in a user's strict project", () => {
  const document = tsdocExamples('lib/http-caller.ts');
  const examples = [
    {
      ...snippetUnder(document, 'callerIdentity'),
      context: "import { callerIdentity, httpIdempotency } from 'lambda-idempotency';\ndeclare const store: import('lambda-idempotency').IdempotencyStore;\n",
    },
    {
      ...snippetUnder(document, 'HttpScope'),
      context: "import type { APIGatewayProxyEvent } from 'aws-lambda';\nimport type { HttpScope } from 'lambda-idempotency';\n",
    },
  ];
  const checked = typeCheck([{ ...document, snippets: examples }]);
  expect(examples.flatMap((example) => checked.snippets.get(example)!.map((diagnostic) => `${diagnostic.location}: ${diagnostic.message}`))).toEqual([]);
});

test("callerIdentity's example scopes anonymous callers by their tenant header, and no header value shares an identified caller's records", async () => {
  const document = tsdocExamples('lib/http-caller.ts');
  const given: HttpIdempotencyOptions<HttpEvent>[] = [];
  await runner.run(document, snippetUnder(document, 'callerIdentity'), {
    store: new InMemoryStore(),
    callerIdentity,
    httpIdempotency: (options: HttpIdempotencyOptions<HttpEvent>) => given.push(options),
  });
  const { scope } = given[0]!;
  if (typeof scope !== 'function') throw new Error('the example sets no scope function');

  const identified = eventFor(IDENTITY_SHAPES[0]!, { tenant: 'tenant-a', user: 'alice' });
  expect(scope(identified)).toBe(callerIdentity(identified));
  // An HTTP API's header names arrive lower case; a REST API's as the client sent them.
  for (const [[, api, context], header] of [
    [ANONYMOUS[3]!, 'x-tenant'],
    [ANONYMOUS[0]!, 'X-Tenant'],
  ] as const) {
    const anonymous = (tenant: string): HttpEvent => {
      const event = httpEvent(api, context);
      return { ...event, headers: { ...event.headers, [header]: tenant } } as HttpEvent;
    };
    expect(scope(anonymous('acme'))).toBe(scope(anonymous('acme')));
    expect(scope(anonymous('acme'))).not.toBe(scope(anonymous('globex')));
    // An anonymous client that sends the identity text of a caller as its tenant does not share that caller's scope.
    expect(scope(anonymous(callerIdentity(identified)!))).not.toBe(scope(identified));
  }
});

test("HttpScope's example scopes keys by a tenant the request proves, not by one a client may claim", async () => {
  const document = tsdocExamples('lib/http-caller.ts');
  const { byTenant } = (await runner.run(document, snippetUnder(document, 'HttpScope'))) as { byTenant: (event: HttpEvent) => string | undefined };
  const claiming = (caller: { tenant: string; user: string }, header: string): HttpEvent => {
    const event = eventFor(IDENTITY_SHAPES[0]!, caller);
    return { ...event, headers: { ...event.headers, 'x-tenant-id': header } } as HttpEvent;
  };
  const acme = claiming({ tenant: 'acme', user: 'alice' }, 'acme');
  expect(byTenant(acme)).toBe(byTenant(claiming({ tenant: 'acme', user: 'bob' }, 'acme')));
  // A caller of another tenant that sends acme's name in the header does not share acme's records.
  expect(byTenant(claiming({ tenant: 'globex', user: 'mallory' }, 'acme'))).not.toBe(byTenant(acme));
});
