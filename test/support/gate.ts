/** A promise the test resolves by hand: holds a handler while duplicates arrive, without sleeping. */
export interface Gate<T = void> {
  readonly promise: Promise<T>;
  open(value: T): void;
}

export function gate<T = void>(): Gate<T> {
  let open!: (value: T) => void;
  const promise = new Promise<T>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

/** Settles once every microtask and pending I/O callback queued so far has run. */
export const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Where a test holds every invocation of a handler: the handler awaits `enter()`, the test takes
 * each arrival with `next()` and decides when (and with what) it finishes.
 */
export class Turnstile<T = void> {
  /** How many invocations have entered. */
  count = 0;
  private readonly arrived: Gate<T>[] = [];
  private readonly waiting: ((arrival: Gate<T>) => void)[] = [];

  enter(): Promise<T> {
    this.count++;
    const arrival = gate<T>();
    const waiter = this.waiting.shift();
    if (waiter) waiter(arrival);
    else this.arrived.push(arrival);
    return arrival.promise;
  }

  next(): Promise<Gate<T>> {
    const arrival = this.arrived.shift();
    return arrival ? Promise.resolve(arrival) : new Promise((resolve) => this.waiting.push(resolve));
  }
}

/**
 * Of concurrent identical `calls` whose handler waits at `turnstile`, waits until one has entered
 * and every other has been answered while it is still inside; fails if a second one enters. Returns
 * the gate of the one inside, for the test to let it finish.
 */
export async function onlyOneEnters<T>(turnstile: Turnstile<T>, calls: readonly Promise<unknown>[]): Promise<Gate<T>> {
  let settled = 0;
  const othersSettled = gate();
  for (const call of calls) {
    call
      .then(
        () => undefined,
        () => undefined,
      )
      .finally(() => {
        if (++settled === calls.length - 1) othersSettled.open();
      });
  }
  const holder = await turnstile.next();
  await Promise.race([
    othersSettled.promise,
    turnstile.next().then(() => {
      throw new Error('a second execution entered the handler');
    }),
  ]);
  return holder;
}
