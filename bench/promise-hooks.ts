/**
 * The process-wide cost of an active AsyncLocalStorage on this Node version. With `transactions:
 * true` our middleware enters one per request (so that `transaction()` finds its call); on Node 20
 * that switches on promise hooks for every promise in the process, the SDK's and a neighbouring
 * library's included. The default leaves them off; this is the price of opting in.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { PutItemCommand } from '@aws-sdk/client-dynamodb';
import { StandIn } from './stand-in.js';
import { measureCall, rotation, type Summary, summarize } from './stats.js';
import { bareSubject, lambdaContext, makeEvent } from './subjects.js';

interface OffOn {
  readonly off: Summary;
  readonly on: Summary;
}

/** Wall-clock and CPU µs per call, with the hooks off and on. */
export interface PromiseHookTax {
  readonly send: OffOn;
  readonly bareHandler: OffOn;
  readonly sendCpu: OffOn;
  readonly bareHandlerCpu: OffOn;
}

export async function measurePromiseHookTax(warmup: number, samples: number): Promise<PromiseHookTax> {
  const storage = new AsyncLocalStorage<object>();
  const client = new StandIn().client();
  const handler = bareSubject().handler;
  const context = lambdaContext();
  const event = makeEvent('hooks', 1024);
  const put = () => new PutItemCommand({ TableName: 'bench-stand-in', Item: { id: { S: 'k' }, status: { S: 'INPROGRESS' } } });
  const times: Record<string, number[]> = {};
  const record = (name: string, value: number) => (times[name] ??= []).push(value);
  for (let round = 0; round < warmup + samples; round++) {
    for (const state of rotation(['off', 'on'], round)) {
      if (state === 'on') storage.enterWith({});
      else storage.disable(); // the last enabled storage: the hooks go off again
      const send = await measureCall(() => client.send(put()));
      const bare = await measureCall(() => handler({ ...event }, context));
      if (round >= warmup) {
        record(`send ${state}`, send.wall);
        record(`send cpu ${state}`, send.cpu);
        record(`bare ${state}`, bare.wall);
        record(`bare cpu ${state}`, bare.cpu);
      }
    }
  }
  storage.disable();
  client.destroy();
  const pair = (name: string): OffOn => ({ off: summarize(times[`${name} off`]!), on: summarize(times[`${name} on`]!) });
  return { send: pair('send'), bareHandler: pair('bare'), sendCpu: pair('send cpu'), bareHandlerCpu: pair('bare cpu') };
}
