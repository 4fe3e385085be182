/**
 * Lambda Managed Instances with tenant isolation: several invocations of different tenants at once
 * in one process, the runtime's invocation store in its multi-concurrency mode (an
 * AsyncLocalStorage per invocation). A call given no context inside an invocation is that
 * invocation's: its tenant and its deadline, never another's, after awaits, in timers and in
 * emitters, and also in work the handler left running after its call returned.
 */

import { AsyncLocalStorage } from 'node:async_hooks';
import { EventEmitter } from 'node:events';
import { InvokeStoreBase } from '@aws/lambda-invoke-store';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { idempotency, inspectRecord, makeIdempotent, recordIdOf } from '../../lib/index.js';
import { readItem, useFreshTable } from '../support/dynamodb.js';
import { type Gate, gate } from '../support/gate.js';
import { lambdaContext } from '../support/lambda.js';

const T0 = 1_700_000_000_000;
const { client, tableName, store } = useFreshTable({ prefix: 'mi-tenants' });

const contextOf = (name: string, tenant: string, remainingMillis: number): Context =>
  ({ ...lambdaContext(name, remainingMillis), tenantId: tenant }) as Context;

/**
 * The runtime's store in multi-concurrency mode (AWS_LAMBDA_MAX_CONCURRENCY set), as
 * @aws/lambda-invoke-store's `InvokeStoreMulti` is: one AsyncLocalStorage, each invocation run in
 * a store of its own. (The package's own instance here is the single-invocation one, created by the
 * SDK before this file runs, without that variable.)
 */
class MultiInvokeStore extends InvokeStoreBase {
  readonly #als = new AsyncLocalStorage<Record<symbol, unknown>>();
  getContext() {
    return this.#als.getStore();
  }
  hasContext() {
    return this.#als.getStore() !== undefined;
  }
  get<T = unknown>(key: string | symbol): T | undefined {
    return this.#als.getStore()?.[key as symbol] as T | undefined;
  }
  set() {
    throw new Error('not used here');
  }
  run<T>(context: Record<symbol, unknown>, fn: () => T): T {
    return this.#als.run(context, fn);
  }
}
const runtime = new MultiInvokeStore();
const lambdaGlobal = globalThis as unknown as { awslambda: { InvokeStore?: unknown } };
let saved: unknown;
beforeAll(() => {
  saved = lambdaGlobal.awslambda.InvokeStore;
  lambdaGlobal.awslambda.InvokeStore = runtime;
});
afterAll(() => {
  lambdaGlobal.awslambda.InvokeStore = saved;
});

/** An invocation as the runtime starts it, its store holding the tenant id or (aws-lambda-ric 4) the request id only. */
function invocation<T>(requestId: string, tenant: string | undefined, fn: () => Promise<T>): Promise<T> {
  const store = {
    [InvokeStoreBase.PROTECTED_KEYS.REQUEST_ID]: requestId,
    ...(tenant === undefined ? {} : { [InvokeStoreBase.PROTECTED_KEYS.TENANT_ID]: tenant }),
  };
  return runtime.run(store, fn);
}

test('the invocation store is the multi-concurrency one: one invocation never reads another’s', async () => {
  const both = gate();
  const read = (tenant: string) =>
    invocation(`r-${tenant}`, tenant, async () => {
      await both.promise;
      return runtime.getTenantId();
    });
  const reads = Promise.all([read('blue'), read('green')]);
  both.open();
  expect(await reads).toEqual(['blue', 'green']);
});

/** Two arrivals at each named step, held until the test lets them both go on. */
class Steps {
  readonly #arrived = new Map<string, Gate<void>>();
  readonly #count = new Map<string, number>();
  readonly #go = new Map<string, Gate<void>>();
  #gate(map: Map<string, Gate<void>>, step: string): Gate<void> {
    let g = map.get(step);
    if (g === undefined) map.set(step, (g = gate()));
    return g;
  }
  enter(step: string): Promise<void> {
    const count = (this.#count.get(step) ?? 0) + 1;
    this.#count.set(step, count);
    if (count === 2) this.#gate(this.#arrived, step).open();
    return this.#gate(this.#go, step).promise;
  }
  both(step: string): Promise<void> {
    return this.#gate(this.#arrived, step).promise;
  }
  open(step: string): void {
    this.#gate(this.#go, step).open();
  }
}

const deadlines: Record<string, number> = { blue: 20_000, green: 40_000 };

describe.each([
  ['the invocation store holds the tenant id', true],
  ['the invocation store holds the request id only', false],
])('%s', (_title, storeHoldsTenant) => {
  const suffix = storeHoldsTenant ? 'store' : 'ctx';

  test('calls given no context, interleaved across two tenants’ invocations, are each their own invocation’s: tenant and lease', async () => {
    const name = `mi-t-${suffix}`;
    const steps = new Steps();
    const charge = makeIdempotent(
      async (payment: { paymentId: string }) => {
        await steps.enter(payment.paymentId);
        return payment.paymentId;
      },
      { store, name: `${name}-charge`, key: (payment) => payment.paymentId, now: () => T0 },
    );
    const handler = middy(async (order: { tenant: string }, context: Context) => {
      const results: string[] = [];
      results.push(await charge({ paymentId: 'p-direct' }));
      results.push(await new Promise<string>((resolve, reject) => setTimeout(() => charge({ paymentId: 'p-timer' }).then(resolve, reject), 0)));
      const emitter = new EventEmitter();
      const emitted = new Promise<string>((resolve, reject) => emitter.once('go', () => charge({ paymentId: 'p-emitter' }).then(resolve, reject)));
      await Promise.resolve();
      emitter.emit('go');
      results.push(await emitted);
      return { tenant: context.tenantId, order: order.tenant, results };
    }).use(idempotency({ store, name, key: (order: { tenant: string }) => order.tenant, now: () => T0 }));
    const invoke = (tenant: string) =>
      invocation(`r-${tenant}`, storeHoldsTenant ? tenant : undefined, () => handler({ tenant }, contextOf(name, tenant, deadlines[tenant]!)));
    const answers = Promise.all([invoke('blue'), invoke('green')]);
    for (const step of ['p-direct', 'p-timer', 'p-emitter']) {
      await steps.both(step);
      // Both in flight: each record is its own tenant's, leased until its own invocation's deadline.
      for (const tenant of ['blue', 'green']) {
        const item = await readItem(client, tableName, recordIdOf({ name: `${name}-charge`, key: step, tenant }));
        expect(item).toMatchObject({ status: { S: 'INPROGRESS' }, leaseUntil: { N: String(T0 + deadlines[tenant]!) } });
      }
      steps.open(step);
    }
    const results = ['p-direct', 'p-timer', 'p-emitter'];
    expect(await answers).toEqual([
      { tenant: 'blue', order: 'blue', results },
      { tenant: 'green', order: 'green', results },
    ]);
    expect(await inspectRecord({ store, name: `${name}-charge`, key: 'p-timer' })).toBeUndefined();
  });

  test('a call given no context in work the handler left running is still its invocation’s tenant’s', async () => {
    const name = `mi-left-${suffix}`;
    let runs = 0;
    const notify = makeIdempotent(async (message: { messageId: string }) => ({ messageId: message.messageId, run: ++runs }), {
      store,
      name: `${name}-notify`,
      key: (message) => message.messageId,
    });
    const leftRunning: Promise<unknown>[] = [];
    const handler = middy(async (order: { tenant: string }) => {
      // Started now, it calls once the handler has returned (fire and forget, as a user may).
      leftRunning.push(new Promise((resolve) => setTimeout(resolve, 0)).then(() => notify({ messageId: 'm-1' })));
      return order.tenant;
    }).use(idempotency({ store, name, key: (order: { tenant: string }) => order.tenant }));
    const invoke = (tenant: string) =>
      invocation(`r-${tenant}`, storeHoldsTenant ? tenant : undefined, () => handler({ tenant }, contextOf(name, tenant, deadlines[tenant]!)));
    expect(await Promise.all([invoke('blue'), invoke('green')])).toEqual(['blue', 'green']);
    const outcomes = await Promise.all(leftRunning);
    // Each tenant's notification ran, under its own tenant's record. Keyed without the tenant, the
    // second met the first's record and was answered with the other tenant's result.
    expect(outcomes.map((outcome) => (outcome as { run: number }).run).sort()).toEqual([1, 2]);
    for (const tenant of ['blue', 'green'])
      expect(await inspectRecord({ store, name: `${name}-notify`, key: 'm-1', tenant })).toMatchObject({ status: 'COMPLETED' });
    expect(await inspectRecord({ store, name: `${name}-notify`, key: 'm-1' })).toBeUndefined();
  });
});
