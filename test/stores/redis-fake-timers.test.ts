/**
 * RedisStore under a unit test's fake timers (docs/testing.md): node-redis writes its commands on a
 * `setImmediate`, so a call on it waits, unbounded (the call's own bounds are timers too), while
 * `setImmediate` is faked, as Jest's and Vitest's defaults fake it, and the client stays stuck once the
 * timers are real again; kept real, the call answers. A call on ioredis answers under every default fake.
 */
import { randomUUID } from 'node:crypto';
import { jest } from '@jest/globals';
import { makeIdempotent } from '../../lib/index.js';
import { RedisStore } from '../../lib/redis/index.js';
import { CLIENT_KINDS, ioredisClient } from '../support/redis.js';

// Captured before a test fakes them: the test's own waits run on real time.
const realSetTimeout = setTimeout;
const realClearTimeout = clearTimeout;
afterEach(() => jest.useRealTimers());

/** What `call` settled to within `millis` of real time, or `pending`. */
async function within(call: Promise<unknown>, millis: number): Promise<unknown> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise((resolve) => (timer = realSetTimeout(resolve, millis, 'pending')));
  return Promise.race([call, late]).finally(() => realClearTimeout(timer));
}

const nodeRedis = CLIENT_KINDS.find((kind) => kind.name === 'node-redis')!;

/** A call on a fresh node-redis client, its timers faked as `fake` says. */
async function onNodeRedis(fake: () => void): Promise<{ first: unknown; second: unknown }> {
  const { client, close } = await nodeRedis.open();
  try {
    let runs = 0;
    const once = makeIdempotent(async (id: string) => ({ id, run: ++runs }), { store: new RedisStore({ client }), name: 'fake-timers-node-redis' });
    const key = `k-${randomUUID()}`;
    fake();
    const first = await within(once(key), 1_000);
    return { first, second: first === 'pending' ? 'pending' : await within(once(key), 1_000) };
  } finally {
    jest.useRealTimers();
    await close();
  }
}

test('on node-redis, a call waits, unbounded, while setImmediate is faked (the default fake timers): nothing is sent', async () => {
  expect(await onNodeRedis(() => jest.useFakeTimers())).toEqual({ first: 'pending', second: 'pending' });
});

test('on node-redis, a client that sent a call while setImmediate was faked stays stuck once the timers are real again: its write was scheduled on the faked one', async () => {
  const { client, close } = await nodeRedis.open();
  try {
    let runs = 0;
    const once = makeIdempotent(async (id: string) => ({ id, run: ++runs }), { store: new RedisStore({ client }), name: 'fake-timers-node-redis-after' });
    jest.useFakeTimers();
    expect(await within(once(`k-${randomUUID()}`), 1_000)).toBe('pending');
    jest.useRealTimers();
    expect(await within(once(`k-${randomUUID()}`), 1_000)).toBe('pending');
    expect(runs).toBe(0);
  } finally {
    await close();
  }
});

test('on node-redis with setImmediate kept real, a call answers under fake timers, and a duplicate replays', async () => {
  const answer = { id: expect.any(String), run: 1 };
  expect(await onNodeRedis(() => jest.useFakeTimers({ doNotFake: ['setImmediate'] }))).toEqual({ first: answer, second: answer });
});

test('on ioredis, a call answers under the default fake timers', async () => {
  const client = ioredisClient();
  try {
    await new Promise((resolve) => client.once('ready', resolve)); // connected before the timers are faked
    let runs = 0;
    const once = makeIdempotent(async (id: string) => ({ id, run: ++runs }), { store: new RedisStore({ client }), name: 'fake-timers-ioredis' });
    const key = `k-${Date.now()}`;
    jest.useFakeTimers();
    expect(await within(once(key), 5_000)).toEqual({ id: key, run: 1 });
    expect(await within(once(key), 5_000)).toEqual({ id: key, run: 1 });
  } finally {
    jest.useRealTimers();
    client.disconnect();
  }
}, 15_000);
