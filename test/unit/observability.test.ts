/** Structured log lines and EMF metrics: off by default, one line per event, never a key or payload. */

import { jest } from '@jest/globals';
import type { ClaimRequest, CompleteRequest, IdempotencyEvent, IdempotencyEventDetail, IdempotencyRecord, IdempotencyStore } from '../../lib/index.js';
import { cloudWatchLines, IdempotencyError, makeIdempotent } from '../../lib/index.js';
import { METRIC_NAMES } from '../../lib/observability.js';
import { withoutUnhandledRejections } from '../support/rejections.js';

/** A minimal in-memory store following the protocol's conditions. */
class MemoryStore implements IdempotencyStore {
  readonly records = new Map<string, IdempotencyRecord>();
  async claim(r: ClaimRequest) {
    const old = this.records.get(r.key);
    const live = old && old.expiresAt * 1000 > r.now && (old.status === 'COMPLETED' || (old.leaseUntil ?? 0) >= r.now);
    if (old && live) return { claimed: false as const, record: old };
    this.records.set(r.key, { key: r.key, status: 'INPROGRESS', owner: r.owner, expiresAt: r.expiresAt, leaseUntil: r.leaseUntil });
    return old ? { claimed: true as const, previous: old } : { claimed: true as const };
  }
  async complete(r: CompleteRequest) {
    const old = this.records.get(r.key);
    if (old?.owner !== r.owner || old.status !== 'INPROGRESS') return { completed: false as const, record: old };
    const { leaseUntil: _, ...rest } = old;
    this.records.set(r.key, { ...rest, status: 'COMPLETED', expiresAt: r.expiresAt, ...(r.response === undefined ? {} : { response: r.response }) });
    return { completed: true as const, responseStored: true };
  }
  async release(r: { key: string; owner: string }) {
    const old = this.records.get(r.key);
    if (old?.owner !== r.owner) return { released: false as const, record: old };
    this.records.delete(r.key);
    return { released: true as const };
  }
}

/** A store whose completions and releases fail with `error`, after its claims succeed: the function runs, then its bookkeeping fails. */
const storeFailingAfterClaim = (error: unknown): MemoryStore =>
  new (class extends MemoryStore {
    override async complete(): Promise<never> {
      throw error;
    }
    override async release(): Promise<never> {
      throw error;
    }
  })();

const SECRET = 'card-4111111111111111';

test('metrics and logs are off by default, on stdout, stderr and the console alike', async () => {
  const lines: string[] = [];
  const keep = (line: unknown) => (lines.push(String(line)), true);
  const spies = [
    jest.spyOn(process.stdout, 'write').mockImplementation(keep),
    jest.spyOn(process.stderr, 'write').mockImplementation(keep),
    ...(['log', 'info', 'warn', 'error', 'debug'] as const).map((method) =>
      jest.spyOn(console, method).mockImplementation((...args: unknown[]) => void lines.push(args.join(' '))),
    ),
  ];
  try {
    const fn = makeIdempotent(async (_: string) => 1, { store: new MemoryStore(), name: 'quiet' });
    await fn(SECRET);
    await fn(SECRET);
  } finally {
    for (const spy of spies) spy.mockRestore();
  }
  expect(lines.filter((l) => /lambda-idempotency|_aws|quiet|card-/.test(l))).toEqual([]);
});

test('each event writes one EMF line naming the function and one log line naming its record id, never the key', async () => {
  const lines: string[] = [];
  let now = 1_700_000_000_000;
  const store = new MemoryStore();
  const options = {
    store,
    name: 'payments',
    now: () => now,
    leaseSeconds: 10,
    observability: { metrics: true, logs: true, metricNamespace: 'Shop', write: (line: string) => lines.push(line) },
  };
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  const slow = makeIdempotent(async (_: string) => held, options);
  const fast = makeIdempotent(async (_: string) => 'ok', { ...options, cacheSize: 10 });

  const first = slow(SECRET); // miss
  await new Promise((r) => setImmediate(r));
  await expect(fast(SECRET)).rejects.toMatchObject({ code: 'IN_PROGRESS' }); // inProgress
  now += 11_000; // the slow attempt's lease ends
  expect(await fast(SECRET)).toBe('ok'); // takeover
  expect(await fast(SECRET)).toBe('ok'); // cacheReplay
  release();
  await expect(first).rejects.toBeInstanceOf(IdempotencyError); // superseded
  const emf = lines.map((l) => JSON.parse(l)).filter((l) => l._aws);
  expect(emf.map((l) => l._aws.CloudWatchMetrics[0].Metrics[0].Name)).toEqual(['Misses', 'InProgressRejections', 'Takeovers', 'CacheReplays', 'Superseded']);
  for (const line of emf) {
    expect(line._aws.CloudWatchMetrics[0]).toMatchObject({ Namespace: 'Shop', Dimensions: [['Function']] });
    expect(line.Function).toBe('payments');
    expect(line[line._aws.CloudWatchMetrics[0].Metrics[0].Name]).toBe(1);
  }
  const logs = lines.map((l) => JSON.parse(l)).filter((l) => !l._aws);
  expect(logs.map((l) => l.event)).toEqual(['miss', 'inProgress', 'takeover', 'cacheReplay', 'superseded']);
  // Log lines carry the record id (a hash) so an operator can find the record; metrics never do.
  const [recordId] = [...store.records.keys()];
  for (const line of logs) expect(line.recordId).toBe(recordId);
  for (const line of lines) expect(line).not.toContain(SECRET);
  for (const line of emf) expect(JSON.stringify(line)).not.toContain(recordId!.split('#')[1]);
});

test('an attempt that fails after another took its record over is superseded too: its release deletes nothing', async () => {
  const events: IdempotencyEvent[] = [];
  let now = 1_700_000_000_000;
  const store = new MemoryStore();
  const options = { store, name: 'payments', now: () => now, leaseSeconds: 10, observability: (event: IdempotencyEvent) => void events.push(event) };
  let fail!: () => void;
  const failing = new Promise<never>((_, reject) => (fail = () => reject(new Error('card declined'))));
  const slow = makeIdempotent(async (_: string) => failing, options);
  const first = slow(SECRET);
  await new Promise((r) => setImmediate(r));
  now += 11_000; // the slow attempt's lease ends: a retry takes over
  expect(await makeIdempotent(async (_: string) => 'ok', options)(SECRET)).toBe('ok');
  fail();
  await expect(first).rejects.toThrow('card declined');
  expect(events).toEqual(['miss', 'takeover', 'superseded']);
  expect([...store.records.values()][0]).toMatchObject({ status: 'COMPLETED' });
});

test('bad observability options throw at construction', () => {
  expect(() => makeIdempotent(async (_: string) => 1, { store: new MemoryStore(), name: 'x', observability: { metrics: 'yes' } as never })).toThrow(TypeError);
  // CloudWatch drops an EMF line whose namespace it does not accept: refused before any line is written.
  for (const metricNamespace of ['', '   ', 'AWS/Lambda', ':Payments', 'Payments!', 'x'.repeat(256), 5 as never]) {
    expect(() => cloudWatchLines({ metricNamespace })).toThrow(
      'cloudWatchLines: `options.metricNamespace` must be a CloudWatch namespace: 1 to 255 letters, digits, spaces or . - _ / # :, not starting with AWS/ or a colon.',
    );
  }
  expect(() => makeIdempotent(async (_: string) => 1, { store: new MemoryStore(), name: 'x', observability: { metrics: true, metricNamespace: '' } })).toThrow(
    '`observability.metricNamespace` must be a CloudWatch namespace',
  );
  for (const metricNamespace of ['Payments', 'Team A/payments-api_v2.1#eu:prod', 'Payments:', 'x'.repeat(255)])
    expect(() => cloudWatchLines({ metricNamespace })).not.toThrow();
});

/** The events of one scripted run: a miss, a cache replay, an in-progress rejection, a replay. */
async function scriptedRun(observability: NonNullable<Parameters<typeof makeIdempotent>[1]['observability']>, now: () => number, warnings: string[] = []) {
  const store = new MemoryStore();
  const options = { store, name: 'payments', now, observability, logger: { warn: (line: string) => void warnings.push(line) } };
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  const slow = makeIdempotent(async (_: string) => (await held, 'paid'), options);
  const other = makeIdempotent(async (_: string) => 'never', options);
  const first = slow(SECRET);
  await new Promise((r) => setImmediate(r));
  await expect(other(SECRET)).rejects.toMatchObject({ code: 'IN_PROGRESS' });
  release();
  expect(await first).toBe('paid');
  expect(await other(SECRET)).toBe('paid');
  return store;
}

test('cloudWatchLines() writes the lines of the deprecated options object, with metrics on by default', async () => {
  const fromObject: string[] = [];
  const fromModule: string[] = [];
  const metricsOnly: string[] = [];
  await scriptedRun({ metrics: true, logs: true, metricNamespace: 'Shop', write: (line) => void fromObject.push(line) }, () => 1_700_000_000_000);
  await scriptedRun(cloudWatchLines({ logs: true, metricNamespace: 'Shop', write: (line) => void fromModule.push(line) }), () => 1_700_000_000_000);
  await scriptedRun(cloudWatchLines({ write: (line) => void metricsOnly.push(line) }), () => 1_700_000_000_000);
  const normalize = (lines: string[]) => lines.map((line) => JSON.parse(line)).map((line) => ({ ...line, recordId: line.recordId ? 'id' : undefined }));
  expect(fromObject).toHaveLength(6);
  expect(normalize(fromModule)).toEqual(normalize(fromObject));
  expect(metricsOnly.map((line) => JSON.parse(line)._aws.CloudWatchMetrics[0])).toEqual(
    ['Misses', 'InProgressRejections', 'Replays'].map((name) => ({
      Namespace: 'LambdaIdempotency',
      Dimensions: [['Function']],
      Metrics: [{ Name: name, Unit: 'Count' }],
    })),
  );
  expect(() => cloudWatchLines({ logs: 'yes' } as never)).toThrow(new TypeError('cloudWatchLines: `options.logs` must be a boolean.'));
  expect(() => cloudWatchLines({ write: 'stdout' } as never)).toThrow('cloudWatchLines: `options.write` must be a function.');
});

test('a listener gets each event with the namespace, the record id and the call clock; what it throws changes no outcome and is logged once', async () => {
  const seen: Array<[IdempotencyEvent, IdempotencyEventDetail]> = [];
  const warnings: string[] = [];
  let now = 1_700_000_000_000;
  const store = await scriptedRun(
    (event, detail) => {
      seen.push([event, detail]);
      now += 1;
      throw new RangeError(`listener failure ${SECRET}`);
    },
    () => now,
    warnings,
  );
  const [recordId] = [...store.records.keys()];
  expect(seen.map(([event]) => event)).toEqual(['miss', 'inProgress', 'replay']);
  expect(seen.map(([, detail]) => detail)).toEqual(
    [1_700_000_000_000, 1_700_000_000_001, 1_700_000_000_002].map((time) => ({ namespace: 'payments', recordId, time })),
  );
  expect(store.records.get(recordId!)).toMatchObject({ status: 'COMPLETED', response: '"paid"' });
  // One line per function (the run has two), naming the error's type, never its message (which may quote anything).
  const warning = {
    level: 'WARN',
    message: "lambda-idempotency: makeIdempotent's observability listener failed; the call goes on, and later failures are not logged",
    error: 'RangeError',
  };
  expect(warnings.map((line) => JSON.parse(line))).toEqual([warning, warning]);
});

test('an async listener that rejects, or cloudWatchLines passed without calling it, is logged, not an unhandled rejection or a failed call', async () => {
  const rejecting: string[] = [];
  const events: IdempotencyEvent[] = [];
  await scriptedRun(
    async (event) => {
      events.push(event);
      throw new Error('metrics endpoint down');
    },
    Date.now,
    rejecting,
  );
  await new Promise((resolve) => setImmediate(resolve));
  expect(events).toEqual(['miss', 'inProgress', 'replay']);
  expect(rejecting.map((line) => JSON.parse(line).error)).toEqual(['Error', 'Error']);

  const uncalled: string[] = [];
  await scriptedRun(cloudWatchLines as never, Date.now, uncalled);
  // The function given itself, not its result: the warning says so.
  expect(uncalled.map((line) => JSON.parse(line))).toEqual(
    Array(2).fill(expect.objectContaining({ error: 'TypeError', reason: expect.stringContaining('give `observability` its result, `cloudWatchLines()`') })),
  );
});

/** A `write` that records each line and rejects, as a log shipper that awaits a network call that fails. */
function rejectingWrite(written: string[]): (line: string) => Promise<never> {
  return async (line) => {
    written.push(line);
    throw new Error('log shipper down');
  };
}

test('a `write` that returns a promise that rejects is logged once, not an unhandled rejection', async () => {
  const warnings: string[] = [];
  const written: string[] = [];
  // Typed `(line) => void`, an async function still type-checks.
  const write = rejectingWrite(written);
  await withoutUnhandledRejections(async () => {
    await scriptedRun(cloudWatchLines({ logs: true, write }), Date.now, warnings);
    await scriptedRun({ metrics: true, write }, Date.now, warnings);
  });
  expect(written).toHaveLength(9); // three events: two lines each, then one each
  expect(warnings.map((line) => JSON.parse(line).error)).toEqual(['Error', 'Error', 'Error', 'Error']);
});

test('a listener that throws a value that is no Error is logged by its type: its `name` may be data', async () => {
  const warnings: string[] = [];
  await scriptedRun(
    () => {
      throw { name: SECRET };
    },
    Date.now,
    warnings,
  );
  expect(warnings.map((line) => JSON.parse(line).error)).toEqual(['object', 'object']);
  for (const line of warnings) expect(line).not.toContain(SECRET);

  const nulls: string[] = [];
  await scriptedRun(
    () => {
      throw null;
    },
    Date.now,
    nulls,
  );
  expect(nulls.map((line) => JSON.parse(line).error)).toEqual(['null', 'null']);
});

test('a listener that fails behind a logger that throws still changes no outcome', async () => {
  const store = new MemoryStore();
  const throwingLogger = {
    warn: () => {
      throw new Error('log sink closed');
    },
  };
  const options = { store, name: 'payments', logger: throwingLogger };
  const sync = makeIdempotent(async (_: string) => 'paid', {
    ...options,
    observability: () => {
      throw new Error('listener failure');
    },
  });
  const async = makeIdempotent(async (_: string) => 'paid', { ...options, name: 'refunds', observability: async () => Promise.reject(new Error('down')) });
  expect(await sync(SECRET)).toBe('paid');
  expect(await sync(SECRET)).toBe('paid');
  expect(await async(SECRET)).toBe('paid');
  await new Promise((resolve) => setImmediate(resolve));
  expect([...store.records.values()].map((record) => record.status)).toEqual(['COMPLETED', 'COMPLETED']);
});

test('a logger whose `warn` returns a promise that rejects changes no outcome, and is not an unhandled rejection', async () => {
  const store = new MemoryStore();
  const rejectingLogger = { warn: async () => Promise.reject(new Error('log shipper down')) };
  const events: IdempotencyEvent[] = [];
  await withoutUnhandledRejections(async () => {
    const fn = makeIdempotent(async (_: string) => 'paid', {
      store,
      name: 'payments',
      logger: rejectingLogger,
      observability: (event) => {
        events.push(event);
        throw new Error('listener failure');
      },
    });
    expect(await fn(SECRET)).toBe('paid');
    expect(await fn(SECRET)).toBe('paid');
  });
  expect(events).toEqual(['miss', 'replay']);
  expect([...store.records.values()].map((record) => record.status)).toEqual(['COMPLETED']);
});

test('a logger that throws while reporting a failed completion or release does not fail a call', async () => {
  const throwingLogger = {
    warn: () => {
      throw new Error('log sink closed');
    },
  };
  const down = new Error('connection reset');
  const events: IdempotencyEvent[] = [];
  const options = {
    store: storeFailingAfterClaim(down),
    name: 'payments',
    logger: throwingLogger,
    observability: (event: IdempotencyEvent) => void events.push(event),
  };
  // The function ran: its result, not the logger's error, is the outcome.
  expect(await makeIdempotent(async (_: string) => 'paid', options)(SECRET)).toBe('paid');
  // The function failed: its own error, not the logger's, reaches the caller.
  const refused = new RangeError('card declined');
  await expect(makeIdempotent(async (_: string) => Promise.reject(refused), options)(`${SECRET}-2`)).rejects.toBe(refused);
  expect(events).toEqual(['miss', 'bookkeepingFailure', 'miss', 'bookkeepingFailure']);
});

test('EMF lines carry a whole-millisecond Timestamp, as the format requires, even from a fractional clock', async () => {
  const lines: string[] = [];
  await scriptedRun(cloudWatchLines({ write: (line) => void lines.push(line) }), () => 1_700_000_000_000.75);
  expect(lines.map((line) => JSON.parse(line)._aws.Timestamp)).toEqual([1_700_000_000_000, 1_700_000_000_000, 1_700_000_000_000]);
});

test('cloudWatchLines refuses an unknown option, so a misspelt namespace cannot send metrics where no alarm looks', () => {
  expect(() => cloudWatchLines({ namespace: 'Shop' } as never)).toThrow(
    new TypeError('cloudWatchLines: unknown option `options.namespace`. Known options of `options`: metrics, logs, metricNamespace, write.'),
  );
  // The deprecated object form of the option: a misspelt member is named by its path, as every nested option is.
  expect(() =>
    makeIdempotent(async (_: string) => 1, { store: new MemoryStore(), name: 'x', observability: { metrics: true, metricsNamespace: 'Shop' } as never }),
  ).toThrow(
    new TypeError('makeIdempotent: unknown option `observability.metricsNamespace`. Known options of `observability`: metrics, logs, metricNamespace, write.'),
  );
  expect(() => cloudWatchLines(null as never)).toThrow(new TypeError('cloudWatchLines: `options` must be an object.'));
});

test('by default each line goes to standard output, one line per write, and `logs: false` writes no log line', async () => {
  const writes: string[] = [];
  const spy = jest.spyOn(process.stdout, 'write').mockImplementation((chunk) => (writes.push(String(chunk)), true));
  try {
    await scriptedRun(cloudWatchLines({ logs: false }), () => 1_700_000_000_000);
  } finally {
    spy.mockRestore();
  }
  const lines = writes.filter((chunk) => chunk.includes('_aws') || chunk.includes('lambda-idempotency'));
  // CloudWatch reads one JSON document per line: two lines run together are neither metrics nor a log.
  for (const line of lines) expect(line).toMatch(/^\{[^\n]*\}\n$/);
  expect(lines.map((line) => JSON.parse(line)._aws.CloudWatchMetrics[0].Metrics[0].Name)).toEqual(['Misses', 'InProgressRejections', 'Replays']);
});

test('a name CloudWatch refuses as a dimension value gets no EMF line but a warning, and its log lines still', async () => {
  for (const name of ['paiements-é', 'x'.repeat(1025), '   ']) {
    const lines: string[] = [];
    const warnings: string[] = [];
    const fn = makeIdempotent(async (_: string) => 'paid', {
      store: new MemoryStore(),
      name,
      logger: { warn: (line: string) => void warnings.push(line) },
      observability: cloudWatchLines({ logs: true, write: (line) => void lines.push(line) }),
    });
    expect(await fn(SECRET)).toBe('paid');
    expect(await fn(SECRET)).toBe('paid');
    // CloudWatch would drop these metrics without a word: no line claims otherwise.
    expect(lines.map((line) => JSON.parse(line).event)).toEqual(['miss', 'replay']);
    // The warning says why: the library's own message (never the name, which may be anything).
    expect(warnings.map((line) => JSON.parse(line))).toEqual([
      expect.objectContaining({
        error: 'TypeError',
        reason: expect.stringMatching(
          /^cloudWatchLines writes no metrics for this function: its record namespace \(the `name` option\) must be 1 to 1,024 printable ASCII/,
        ),
      }),
    ]);
    expect(warnings.join('')).not.toContain(name.trim() === '' ? '"name":' : name.slice(0, 20));
  }
});

test('a name CloudWatch refuses as a dimension value, with a `write` whose promise rejects, is logged once, not an unhandled rejection', async () => {
  const warnings: string[] = [];
  const written: string[] = [];
  await withoutUnhandledRejections(async () => {
    const fn = makeIdempotent(async (_: string) => 'paid', {
      store: new MemoryStore(),
      name: 'paiements-é',
      logger: { warn: (line: string) => void warnings.push(line) },
      observability: cloudWatchLines({ logs: true, write: rejectingWrite(written) }),
    });
    expect(await fn(SECRET)).toBe('paid');
    expect(await fn(SECRET)).toBe('paid');
  });
  expect(written.map((line) => JSON.parse(line).event)).toEqual(['miss', 'replay']);
  expect(warnings.map((line) => JSON.parse(line).error)).toEqual(['TypeError']);
});

test('each event has the metric name the docs give it, counted once under the Function dimension, and an INFO log line naming the function and the record id', () => {
  const documented: Record<IdempotencyEvent, string> = {
    miss: 'Misses',
    takeover: 'Takeovers',
    replay: 'Replays',
    cacheReplay: 'CacheReplays',
    inProgress: 'InProgressRejections',
    payloadMismatch: 'PayloadMismatches',
    superseded: 'Superseded',
    storeFailure: 'StoreFailures',
    bookkeepingFailure: 'BookkeepingFailures',
  };
  // Failures and attempts that outlived their lease at the levels a function logging only `WARN` or `ERROR` keeps.
  const levels: Record<IdempotencyEvent, string> = {
    miss: 'INFO',
    takeover: 'WARN',
    replay: 'INFO',
    cacheReplay: 'INFO',
    inProgress: 'INFO',
    payloadMismatch: 'WARN',
    superseded: 'ERROR',
    storeFailure: 'ERROR',
    bookkeepingFailure: 'ERROR',
  };
  const detail = { namespace: 'payments', recordId: 'payments#0123abcd', time: 1_700_000_000_000 };
  for (const [event, name] of Object.entries(documented) as Array<[IdempotencyEvent, string]>) {
    const lines: string[] = [];
    cloudWatchLines({ logs: true, write: (line) => void lines.push(line) })(event, detail);
    expect(lines.map((line) => JSON.parse(line))).toEqual([
      {
        timestamp: '2023-11-14T22:13:20.000Z',
        level: levels[event],
        message: `lambda-idempotency: ${event}`,
        event,
        function: 'payments',
        recordId: 'payments#0123abcd',
      },
      {
        timestamp: '2023-11-14T22:13:20.000Z',
        level: levels[event],
        _aws: {
          Timestamp: 1_700_000_000_000,
          CloudWatchMetrics: [{ Namespace: 'LambdaIdempotency', Dimensions: [['Function']], Metrics: [{ Name: name, Unit: 'Count' }] }],
        },
        Function: 'payments',
        [name]: 1,
      },
    ]);
  }
});

test('logs without metrics: `metrics: false` in cloudWatchLines, or `logs` alone in the options object, writes log lines only', async () => {
  const fromModule: string[] = [];
  const fromObject: string[] = [];
  await scriptedRun(cloudWatchLines({ metrics: false, logs: true, write: (line) => void fromModule.push(line) }), () => 1_700_000_000_000);
  await scriptedRun({ logs: true, write: (line) => void fromObject.push(line) }, () => 1_700_000_000_000);
  for (const lines of [fromModule, fromObject]) {
    expect(lines.map((line) => JSON.parse(line))).toEqual(
      ['miss', 'inProgress', 'replay'].map((event) => expect.objectContaining({ level: 'INFO', event, function: 'payments' })),
    );
    for (const line of lines) expect(line).not.toContain('_aws');
  }
});

/** Thrown values whose name cannot be read: an Error with a `name` getter that throws, a proxy whose prototype trap throws. */
const unreadable = (): Array<[unknown, string]> => [
  [
    Object.defineProperty(new Error('declined'), 'name', {
      get() {
        throw new Error('name getter');
      },
    }),
    'Error',
  ],
  [
    new Proxy(
      {},
      {
        getPrototypeOf() {
          throw new Error('prototype trap');
        },
      },
    ),
    'object',
  ],
];

test('a listener that throws, or rejects with, a value whose name cannot be read changes no outcome, and is logged once by its type', async () => {
  for (const [value, type] of unreadable()) {
    const warnings: string[] = [];
    await withoutUnhandledRejections(async () => {
      await scriptedRun(
        () => {
          throw value;
        },
        Date.now,
        warnings,
      );
      await scriptedRun(async () => Promise.reject(value), Date.now, warnings);
    });
    expect(warnings.map((line) => JSON.parse(line).error)).toEqual([type, type, type, type]);
  }
});

test("a listener's error whose name is free text is logged as `Error`: a name set to a message may quote a payload", async () => {
  const warnings: string[] = [];
  await scriptedRun(
    () => {
      throw Object.assign(new Error('declined'), { name: `Declined ${SECRET}` });
    },
    Date.now,
    warnings,
  );
  expect(warnings.map((line) => JSON.parse(line).error)).toEqual(['Error', 'Error']);
  for (const line of warnings) expect(line).not.toContain(SECRET);
});

test('a store error whose name cannot be read, reported for a failed claim, completion or release, is named `Error` and changes no outcome', async () => {
  const [unreadableError] = unreadable()[0]!;
  const warnings: string[] = [];
  const events: IdempotencyEvent[] = [];
  const options = {
    store: storeFailingAfterClaim(unreadableError),
    name: 'payments',
    logger: { warn: (line: string) => void warnings.push(line) },
    observability: (event: IdempotencyEvent) => void events.push(event),
  };
  // The function ran: its result, then its own error, is the outcome.
  expect(await makeIdempotent(async (_: string) => 'paid', options)(SECRET)).toBe('paid');
  const refused = new RangeError('card declined');
  await expect(makeIdempotent(async (_: string) => Promise.reject(refused), options)(`${SECRET}-2`)).rejects.toBe(refused);
  expect(events).toEqual(['miss', 'bookkeepingFailure', 'miss', 'bookkeepingFailure']);
  expect(warnings.map((line) => JSON.parse(line).error)).toEqual(['Error', 'Error']);
  // The function did not run: a STORE_FAILURE, as for any store that cannot be reached.
  class Unreachable extends MemoryStore {
    override async claim(): Promise<never> {
      throw unreadableError;
    }
  }
  const failure = await makeIdempotent(async (_: string) => 'paid', { ...options, store: new Unreachable() })(SECRET).catch((error: unknown) => error);
  expect(failure).toBeInstanceOf(IdempotencyError);
  expect(failure).toMatchObject({ code: 'STORE_FAILURE' });
});

test('a `write` whose log line’s promise rejects and whose EMF line then throws is logged once, not an unhandled rejection', async () => {
  const warnings: string[] = [];
  const written: string[] = [];
  // A log shipper that queues the first line, then refuses the next one at once (its buffer full).
  const write = (line: string): Promise<never> => {
    written.push(line);
    if (written.length % 2 === 1) return Promise.reject(new Error('log shipper down'));
    throw new RangeError('log buffer full');
  };
  await withoutUnhandledRejections(async () => {
    const fn = makeIdempotent(async (_: string) => 'paid', {
      store: new MemoryStore(),
      name: 'payments',
      logger: { warn: (line: string) => void warnings.push(line) },
      observability: cloudWatchLines({ logs: true, write }),
    });
    expect(await fn(SECRET)).toBe('paid');
    expect(await fn(SECRET)).toBe('paid');
  });
  expect(written.map((line) => JSON.parse(line).event ?? 'emf')).toEqual(['miss', 'emf', 'replay', 'emf']);
  expect(warnings.map((line) => JSON.parse(line).error)).toEqual(['RangeError']);
});

test('a `write` that throws on the log line still gets the EMF line of the event, and the failure is logged once', async () => {
  const warnings: string[] = [];
  const written: string[] = [];
  const write = (line: string): void => {
    if (JSON.parse(line).event !== undefined) throw new RangeError('log buffer full');
    written.push(line);
  };
  const fn = makeIdempotent(async (_: string) => 'paid', {
    store: new MemoryStore(),
    name: 'payments',
    logger: { warn: (line: string) => void warnings.push(line) },
    observability: cloudWatchLines({ logs: true, write }),
  });
  expect(await fn(SECRET)).toBe('paid');
  expect(await fn(SECRET)).toBe('paid');
  expect(written.map((line) => Object.keys(JSON.parse(line)).at(-1))).toEqual(['Misses', 'Replays']);
  expect(warnings.map((line) => JSON.parse(line).error)).toEqual(['RangeError']);
});

test('cloudWatchLines given `metrics: undefined`, as its type allows, writes metrics as by default', async () => {
  const lines: string[] = [];
  // As a configuration that sets the option only to turn metrics off: `metrics: off ? false : undefined`.
  await scriptedRun(cloudWatchLines({ metrics: undefined, logs: true, write: (line) => void lines.push(line) }), () => 1_700_000_000_000);
  expect(lines.filter((line) => line.includes('_aws')).map((line) => JSON.parse(line)._aws.CloudWatchMetrics[0].Metrics[0].Name)).toEqual([
    'Misses',
    'InProgressRejections',
    'Replays',
  ]);
});

test('log lines carry the event time as an RFC 3339 timestamp: without one, Lambda takes a JSON line as INFO and its log-level filter drops an ERROR line', () => {
  const detail = { namespace: 'payments', recordId: 'payments#0123abcd', time: 1_700_000_000_000.75 };
  const lines: string[] = [];
  cloudWatchLines({ logs: true, metrics: false, write: (line) => void lines.push(line) })('storeFailure', detail);
  expect(lines.map((line) => JSON.parse(line))).toEqual([expect.objectContaining({ level: 'ERROR', timestamp: '2023-11-14T22:13:20.000Z' })]);
  // A clock past what a Date holds writes its line without a timestamp, rather than failing the listener.
  const far: string[] = [];
  cloudWatchLines({ logs: true, write: (line) => void far.push(line) })('miss', { ...detail, time: 9e15 });
  expect(far.map((line) => Object.keys(JSON.parse(line)))).toEqual([
    ['level', 'message', 'event', 'function', 'recordId'],
    ['level', '_aws', 'Function', 'Misses'],
  ]);
});

test('metric lines carry the level and timestamp of their event: a function logging JSON at WARN or ERROR keeps the metrics its alarms watch', () => {
  // What Lambda's log-level filter keeps at an application log level: a JSON line with a `level` beside
  // a valid RFC 3339 `timestamp`, at that level or above; any other line counts as INFO.
  const RANK: Record<string, number> = { TRACE: 0, DEBUG: 1, INFO: 2, WARN: 3, ERROR: 4, FATAL: 5 };
  const kept = (line: string, applicationLevel: string): boolean => {
    const { level, timestamp } = JSON.parse(line) as { level?: unknown; timestamp?: unknown };
    const valid = typeof timestamp === 'string' && !Number.isNaN(Date.parse(timestamp)) && typeof level === 'string' && level in RANK;
    return (valid ? RANK[level]! : RANK.INFO!) >= RANK[applicationLevel]!;
  };
  const lines: string[] = [];
  const listener = cloudWatchLines({ write: (line) => void lines.push(line) });
  for (const event of Object.keys(METRIC_NAMES) as IdempotencyEvent[]) {
    listener(event, { namespace: 'payments', recordId: 'payments#0123abcd', time: 1_700_000_000_000 });
  }
  const metricsKept = (applicationLevel: string) =>
    lines.filter((line) => kept(line, applicationLevel)).map((line) => JSON.parse(line)._aws.CloudWatchMetrics[0].Metrics[0].Name);
  expect(metricsKept('ERROR')).toEqual(['Superseded', 'StoreFailures', 'BookkeepingFailures']);
  expect(metricsKept('WARN')).toEqual(['Takeovers', 'PayloadMismatches', 'Superseded', 'StoreFailures', 'BookkeepingFailures']);
  expect(metricsKept('INFO')).toHaveLength(9);
});

test('when both lines of an event fail to write, the warning names the first failure, the log line', async () => {
  const warnings: string[] = [];
  const write = (line: string) => {
    throw JSON.parse(line)._aws === undefined ? new RangeError('log line') : new TypeError('metric line');
  };
  const fn = makeIdempotent(async (_: string) => 'paid', {
    store: new MemoryStore(),
    name: 'payments',
    logger: { warn: (line: string) => void warnings.push(line) },
    observability: cloudWatchLines({ logs: true, write }),
  });
  expect(await fn(SECRET)).toBe('paid');
  expect(warnings.map((line) => JSON.parse(line).error)).toEqual(['RangeError']);
});
