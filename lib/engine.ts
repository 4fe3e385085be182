import { randomUUID } from 'node:crypto';
import { type AnswerBy, Call, type CallMode } from './call.js';
import { asksForRetry, claimAnswer, commitError, completeAnswer, isResumable, parseStored, resumable, storeFailure } from './call-errors.js';
import { answerByOf, answered, type Deadline, DeadlineTimeout, delay, overrunOf, sealByOf, waitableMillis, waitLeft } from './deadline.js';
import { claimedOf, durableOwner, type Hold, holdsOf, invocationOf, metOwnOutcome } from './durable-calls.js';
import { errorTypeOf, IdempotencyError, isFaultOfCode, isIdempotencyError, storeFailureDetail } from './errors.js';
import { reviveError, serializeError } from './final-error.js';
import { durableExecutionOf, isDurableInvocationInput, remainingMillisOf, tenantOf } from './invocation.js';
import { canonicalKey, fingerprintJson, keyHash, namespaceOf, recordKey, sha256 } from './key.js';
import type { Emit, Observe } from './observability.js';
import { type IdempotencyLogger, type IdempotencyOptions, type LambdaContextLike, logLine, validateOptions, wholeNumber } from './options.js';
import { RecordCache } from './record-cache.js';
import { FLIGHT_RECHECK_MILLIS, type Flight, waitOn, waitsOnCaller } from './single-flight.js';
import {
  type ClaimResult,
  type CompleteRequest,
  type CompleteResult,
  DURABLE_OWNER,
  type IdempotencyRecord,
  type IdempotencyStore,
  type ReleaseResult,
} from './store.js';
import { deadlineCallAround, holderAround, inCall, isWithin, tenantAround } from './transaction.js';
import { volatileEventOf } from './whole-event-key.js';

export type { IdempotencyLogger, IdempotencyOptions, LambdaContextLike } from './options.js';

/** How a call starts: run it (it holds its record, or has none to hold), or answer it with a stored outcome. @internal */
export type Start =
  | {
      readonly kind: 'run';
      readonly call: Call;
      /**
       * The call is a durable execution's, resuming on the record an earlier invocation of it
       * claimed: the execution has run on that record (its steps may have charged), so the request
       * was accepted then, and what is judged of it by the clock (a key's age) stays as judged then.
       */
      readonly resumed?: boolean;
    }
  | {
      readonly kind: 'replay';
      readonly value: unknown;
      /**
       * The outcome is the durable execution's own, stored by an earlier invocation of it whose
       * answer never reached the durable service (it crashed or timed out after the record
       * completed): no other attempt's, so it answers as that invocation did, not as a duplicate.
       */
      readonly own?: boolean;
    };

/**
 * How a call ended, as the entry point reports it to `end`:
 * - `return`: the function returned `value`; `final: false` releases the key instead of storing it
 *   (an HTTP 5xx answer);
 * - `throw`: the function threw (stored when `isFinalError` says so, else the key is released;
 *   `final: false` releases it in any case: the function never ran);
 * - `abandon`: the outcome is unknown (the function may still run): nothing is written and the
 *   record lapses at its lease. @internal
 */
export type Ending =
  | {
      readonly kind: 'return';
      readonly value: unknown;
      readonly final?: boolean;
      /** The function's own response, judged not final (an HTTP 5xx): an atomic call reads its record, as for a thrown error. */
      readonly answeredNonFinal?: boolean;
    }
  | { readonly kind: 'throw'; readonly error: unknown; readonly final?: boolean }
  | { readonly kind: 'abandon' };

/** What the caller gets: a value or an error, its own or (`replayed`) another attempt's stored outcome. @internal */
export type Outcome =
  | { readonly kind: 'value'; readonly value: unknown; readonly replayed: boolean }
  | { readonly kind: 'error'; readonly error: unknown; readonly replayed: boolean };

/**
 * The tenant of a call: its context's, else that of the call it is nested in (a call given no
 * context inside a tenant's handler, in a runtime whose invocation store holds no tenant id: aws-lambda-ric
 * 4 puts only the request and trace ids there), also in work that call left running, else none.
 */
const tenantOfCall = (context: unknown): string | undefined => tenantOf(context) ?? tenantAround();

/** `request` with the time the call must answer by, when it has one: a store that sends it again after a transient failure starts no resend after it. */
const resendingUntil = <T extends object>(request: T, answerBy: AnswerBy | undefined): T & { readonly resendBy?: number } =>
  answerBy === undefined ? request : { ...request, resendBy: answerBy.at };

/** What claiming a call's record needs, settled once by `start`. */
interface Claiming {
  readonly key: string;
  readonly fingerprint: string | undefined;
  readonly deadline: Deadline | undefined;
  readonly tenant: string | undefined;
  /** The durable execution the call is made in: the record is held as the execution's. */
  readonly execution: string | undefined;
  /** Until when the call may wait for another process's attempt. */
  readonly waitForOtherUntil: number;
  /** The records this invocation's durable calls hold, and the keys they claimed (see `holdsOf`, `claimedOf`). */
  readonly holds: Map<string, Hold> | undefined;
  readonly claimed: Set<string> | undefined;
}

/** Where a call's flight lives: the map of its flights (all calls', or its invocation's) and its key there. */
interface FlightPlace {
  readonly flights: Map<string, Flight>;
  readonly key: string;
}

/**
 * The one implementation of claim → run → complete | release, shared by every entry point. A call
 * starts with `start` (which claims its record) and ends with `end`; the `Call` in between carries
 * its whole state. @internal
 */
export class IdempotencyEngine<TInput, TContext = LambdaContextLike> {
  readonly #store: IdempotencyStore;
  readonly #options: IdempotencyOptions<TInput, TContext>;
  /** How long a completed record is kept, seconds: the option, else the store's, else a day. @internal */
  readonly retentionSeconds: number;
  readonly #cache: RecordCache | undefined;
  /** The clock of leases, retention and waits, epoch milliseconds: the `now` option, else `Date.now`. @internal */
  readonly now: () => number;
  readonly #logger: IdempotencyLogger;
  readonly #emit: Emit;
  readonly #transactional: boolean;
  readonly #singleFlight: boolean;
  readonly #selects: boolean;
  readonly #where: string;
  #warnedWholeEvent = false;
  readonly #flights = new Map<string, Flight>();
  /**
   * The flights of durable calls, by invocation: a durable call follows only a call of the same
   * invocation of its own execution (one of another execution, or of an earlier invocation, may
   * stay suspended for days). A call whose invocation suspends never ends in this process: its
   * flight goes with the invocation's Lambda context, never before, however many calls run at once.
   */
  readonly #durableFlights = new WeakMap<object, Map<string, Flight>>();
  /** The flight each leading call settles when it ends. */
  readonly #leading = new WeakMap<Call, Flight>();
  /** Where each durable call that holds its record is registered (see `holdsOf` in durable-calls.ts). */
  readonly #holding = new WeakMap<Call, Map<string, Hold>>();

  /**
   * `observe` turns the `observability` option into events: entry points choose which forms they take.
   * `selects`: the `key` option is the user's selector, not a default that passes the payload on
   * (by default, whether a `key` is given: read once the options are known to be an object).
   */
  constructor(where: string, given: IdempotencyOptions<TInput, TContext>, observe: Observe, selects?: boolean) {
    const options = validateOptions(where, given) as unknown as IdempotencyOptions<TInput, TContext>;
    this.#options = options;
    this.#selects = selects ?? options.key !== undefined;
    this.#where = where;
    this.#store = options.store;
    this.retentionSeconds = options.expiresAfterSeconds ?? options.store.expiresAfterSeconds ?? 86_400;
    // A store of one's own may give any value: one that is no retention would be written as a record's expiry.
    const refused = options.expiresAfterSeconds === undefined ? wholeNumber(1, 'seconds')(this.retentionSeconds) : undefined;
    if (refused) throw new TypeError(`${where}: the store's \`expiresAfterSeconds\` (the retention, with no \`expiresAfterSeconds\` option) ${refused}.`);
    this.#cache = options.cacheSize ? new RecordCache(options.cacheSize) : undefined;
    // Read at each call, not captured: fake timers installed after the handler was built still apply.
    this.now = options.now ?? (() => Date.now());
    this.#logger = options.logger ?? console;
    this.#emit = observe(where, options.observability, this.now, (message, fields) => logLine(this.#logger, 'warn', message, fields));
    this.#singleFlight = options.singleFlight !== false;
    this.#transactional = typeof (options.atomic ? this.#store.claimCompleted : this.#store.completeWithWrites) === 'function';
  }

  /** The entry point's name (`idempotency`, `httpIdempotency`…), which its errors begin with. */
  get where(): string {
    return this.#where;
  }

  /** A warning through the `logger` option about something outside any record (another middleware's cleanup). */
  warn(message: string): void {
    logLine(this.#logger, 'warn', message);
  }

  /**
   * The record key of a call: `<namespace>#<hash of the selected value>`, or `undefined` when the
   * selector finds no value and `onMissingKey` is 'skip'.
   */
  keyOf(input: TInput, context: TContext | undefined): string | undefined {
    // Wrapped around `withDurableExecution` instead of inside it, the call would see every
    // invocation as new (or, with 'skip', run unkeyed) and never stop a duplicate execution.
    if (durableExecutionOf(context) === undefined && isDurableInvocationInput(input)) {
      throw new TypeError(
        `${this.#where} was given a durable function's invocation input, new on every invocation: make the handler idempotent inside withDurableExecution (withDurableExecution(makeIdempotent(handler, options)), or middy's executionModeDurableContext).`,
      );
    }
    let selected: unknown;
    try {
      selected = this.#options.key ? this.#options.key(input, context) : input;
    } catch (error) {
      throw new IdempotencyError('INVALID_KEY', 'The idempotency key selector threw.', { cause: error });
    }
    if (!this.#options.key && !this.#warnedWholeEvent) this.#checkWholeEvent(input);
    const canonical = canonicalKey(selected, this.#selects);
    if (typeof canonical !== 'string') {
      if (this.#options.onMissingKey === 'skip') return undefined;
      throw new IdempotencyError('KEY_MISSING', canonical.missing);
    }
    const namespace = this.#options.name ?? ((context as LambdaContextLike | undefined)?.functionName || process.env.AWS_LAMBDA_FUNCTION_NAME);
    if (!namespace) {
      throw new TypeError('No namespace for idempotency records: set the `name` option (no Lambda context or AWS_LAMBDA_FUNCTION_NAME).');
    }
    return recordKey(namespace, keyHash(canonical, tenantOfCall(context)));
  }

  /**
   * Starts a call: claims its record, or answers it from the local cache, an in-process duplicate
   * already running (single-flight), or the stored outcome of an earlier call. Throws the
   * rejections (`IN_PROGRESS`, `PAYLOAD_MISMATCH`, `STORE_FAILURE`, key errors): they hold nothing.
   */
  async start(input: TInput, context: TContext | undefined, knownKey?: string): Promise<Start> {
    const key = knownKey ?? this.keyOf(input, context);
    const tenant = tenantOfCall(context);
    // A call given no Lambda context, nested in a call that knows its invocation's deadline, ends by it too.
    // The monotonic clock is read before the time left, and the `now` clock after it: a pause between
    // the reads (the process descheduled, a GC) then brings the bound earlier, never past the
    // deadline, and the lease (`now` + the time left) later, never before it.
    const read = performance.now();
    const given = remainingMillisOf(context) ?? overrunOf(context);
    // Also once that deadline has passed: the record is then held until it, not for `leaseSeconds`.
    const around = deadlineCallAround();
    const inherited = around?.timeLeft?.();
    const now = this.now();
    // A clock that returns a Date or text would make leases no store accepts: a STORE_FAILURE on every call.
    if (!Number.isFinite(now)) throw new TypeError(`${this.#where}: \`now\` must return epoch milliseconds, a finite number (got ${String(now)}).`);
    const remaining = given ?? (Number.isFinite(inherited) ? inherited : undefined);
    const deadline =
      remaining === undefined ? undefined : { at: now + remaining, answerBy: given === undefined ? around?.answerBy : answerByOf(context, given, read) };
    if (key === undefined) return { kind: 'run', call: this.#call('', '', undefined, 'unkeyed', now, deadline, tenant) };
    // A call nested in the call that holds its key (a function calling itself with its own key)
    // would wait for a record that completes only once it has answered, or, past that call's
    // lease, take the record over from its own caller and run again: it answers at once, and sends
    // nothing, as on meeting that call's record (another payload: PAYLOAD_MISMATCH). An atomic call
    // too (another wrapper of the name): its commit would meet that record, or, past its lease,
    // replace it. (An atomic call holds no record while it runs: one nested in it runs and commits.)
    const holder = holderAround(key);
    const fingerprint = this.#fingerprintOf(input);
    if (holder !== undefined) {
      this.#checkFingerprint(holder, fingerprint);
      throw this.#nestedInHolder(key, holder.leaseUntil);
    }
    const execution = durableExecutionOf(context);
    // Calls of one execution hold the record as one owner: they follow each other even without single-flight.
    const flights = execution !== undefined || this.#singleFlight ? this.#flightsOf(execution, context) : undefined;
    const place: FlightPlace | undefined = flights === undefined ? undefined : { flights, key: execution === undefined ? key : `${key}\u0000${execution}` };
    const invocation = execution === undefined || this.#options.atomic ? undefined : invocationOf(context);
    const holds = invocation === undefined ? undefined : holdsOf(invocation);
    const claimed = execution === undefined ? undefined : claimedOf(context);
    // Every wait of this call (for an in-process leader, for another process) ends in time to answer.
    const waitUntil = now + waitableMillis(remaining);
    // Until when this call may wait for another process's attempt: counted from its start, also
    // when it claims only after following an in-process leader.
    const waitForOtherUntil = Math.min(now + (this.#options.waitForInProgressMillis ?? 0), waitUntil);
    const claiming: Claiming = { key, fingerprint, deadline, tenant, execution, waitForOtherUntil, holds, claimed };
    for (;;) {
      const cached = this.#cache?.get(key, this.now());
      if (cached) {
        this.#checkFingerprint(cached, fingerprint);
        const own = metOwnOutcome(cached, execution, claimed, key);
        if (!own) this.#emit('cacheReplay', key);
        return { kind: 'replay', value: this.#replay(cached), own };
      }
      const leader = place?.flights.get(place.key);
      // A leader past its lease is as good as gone: claim (and take over) as another process would.
      // Its last millisecond still belongs to it (stores take over a record only after its lease).
      const leaseLeft = leader?.leaseUntil === undefined ? Number.POSITIVE_INFINITY : leader.leaseUntil - this.now();
      if (leader === undefined || (execution === undefined && leaseLeft < 0)) {
        // Another call of this invocation is claiming the record (one of another engine): its answer
        // tells whether it holds it (then this call meets it, in `#lead`) or not.
        const pending = holds?.get(key);
        if (pending instanceof Promise) {
          await pending;
          continue;
        }
        return this.#lead(claiming, place);
      }
      // Nested in the leader's own function, the call would wait for itself: it meets the record as another process does.
      // Not once that function has returned: work it left running follows its outcome, as any duplicate does.
      if (leader.call !== undefined && !leader.call.hasReturned && isWithin(leader.call)) return this.#lead(claiming);
      // So would a call whose leader waits, through calls nested in it, on a call this one is part of
      // (two calls that each call the other's function with the other's key): it meets the record.
      if (execution === undefined && leader.call !== undefined && !leader.call.hasReturned && waitsOnCaller(leader.call)) return this.#lead(claiming);
      if (execution !== undefined) {
        // A leader of the same invocation of this execution holds the record as this call would (as
        // the execution), past any lease: it ends in this invocation, or the invocation ends with
        // both, and this call, replayed, follows it again. So no timer: a suspended invocation
        // leaves nothing behind that could fire in a later one.
        const record = await leader.done;
        const own = leader.ownOutcome === true;
        if (record !== undefined) return { kind: 'replay', value: this.#settle(record, fingerprint, this.now(), false, !own), own };
        if (leader.invocationEnded !== undefined) {
          // Refused by the leader's failed claim (a leader that never held the record; also one given
          // up on at the deadline): a store failure of this call too.
          if (leader.call === undefined) this.#emit('storeFailure', key);
          throw leader.invocationEnded;
        }
        continue;
      }
      const left = waitLeft(waitUntil, this.now(), deadline);
      // Out of time to wait, it answers as on meeting the leader's record.
      if (left <= 0) {
        if (leader.call !== undefined) this.#checkFingerprint(leader.call, fingerprint);
        throw this.#inProgress(key, leader.leaseUntil);
      }
      // Looked at again at least every second: the `now` clock may move faster than the timers (a
      // test's manual clock advanced past the lease), and a wait for the whole lease would not see it.
      const bound = Math.min(leaseLeft + 1, left, FLIGHT_RECHECK_MILLIS);
      const expiry = bound < Number.POSITIVE_INFINITY ? delay(bound) : undefined;
      // A leader still claiming has no lease yet: once it holds the record, the wait is bounded by its lease.
      let forget = (): void => undefined;
      const news = new Promise<void>((resolve) => (forget = leader.watch(resolve)));
      const unwait = leader.call === undefined ? undefined : waitOn(leader.call);
      await Promise.race([news, ...(expiry === undefined ? [] : [expiry.elapsed])]).finally(() => {
        expiry?.cancel();
        forget();
        unwait?.();
      });
      const record = leader.landed?.record;
      if (record !== undefined) return { kind: 'replay', value: this.#settle(record, fingerprint, this.now()) };
      if (leader.claimFailed !== undefined) {
        // Refused as the leader was: one more call the StoreFailures alarm counts, as without single-flight.
        this.#emit('storeFailure', key);
        // A copy: followers are other invocations, and what one's code sets on its error (a field, an
        // error tracker's mark that it was reported) must not reach another's.
        // The mark that ends only a durable invocation is the failure's, and is kept.
        const { code, message, cause } = leader.claimFailed;
        const own = new IdempotencyError(code, message, { cause });
        throw isResumable(leader.claimFailed) ? resumable(own) : own;
      }
      if (leader.outOfTime !== undefined && waitLeft(waitForOtherUntil, this.now(), deadline) <= 0) {
        return { kind: 'replay', value: this.#settle(leader.outOfTime, fingerprint, this.now()) };
      }
      // The leader released the key, its outcome is unknown, its lease ended, it was out of time to
      // wait for another process, or this call is out of time to wait: the first follower to get here leads next.
    }
  }

  async #lead(claiming: Claiming, place?: FlightPlace): Promise<Start> {
    const { key, fingerprint, execution, holds, claimed } = claiming;
    // Another call of this invocation holds the record (one of another engine: this engine's wait
    // in flights): it is another attempt's, as it is outside durable executions, not this call's to run.
    const holder = holds?.get(key);
    if (holder instanceof Call) {
      this.#checkFingerprint(holder, fingerprint);
      throw this.#inProgress(key, holder.leaseUntil);
    }
    // Every replay of a durable execution holds the record as its own: its owner is derived from the execution.
    const owner = execution === undefined ? randomUUID() : durableOwner(execution);
    const flight = place === undefined ? undefined : this.#fly(place.key, place.flights);
    // Until its claim is answered, the call holds the key with it: a call of another engine waits for the answer (in `start`).
    let answered = (): void => undefined;
    const pending = new Promise<void>((resolve) => (answered = resolve));
    holds?.set(key, pending);
    try {
      const start = await this.#claim(claiming, owner).catch((error: unknown) => {
        if (flight !== undefined) {
          // Followers fail closed with the store's failure of this claim rather than send it again one
          // after another; not with a claim given up on at this call's own deadline: those with time of their own claim.
          if (error instanceof IdempotencyError && !(error.cause instanceof DeadlineTimeout)) flight.claimFailed = error;
          this.#land(flight, undefined, error);
        }
        throw error;
      });
      if (start.kind === 'replay') {
        const own = metOwnOutcome(start.record, execution, claimed, key);
        // Another process holds the key and this call was out of time to wait for it (a durable call
        // never waits): followers with more time wait on their own, as they would without this one.
        if (flight !== undefined && execution === undefined && start.record.status === 'INPROGRESS') {
          flight.outOfTime = start.record;
          flight.settle(undefined);
        } else if (flight !== undefined) {
          if (own) flight.ownOutcome = true;
          flight.settle(start.record);
        }
        return { kind: 'replay', value: this.#settle(start.record, fingerprint, this.now(), false, !own), own };
      }
      claimed?.add(key);
      if (flight !== undefined) {
        flight.hold(start.call, start.leaseUntil);
        this.#leading.set(start.call, flight);
      }
      if (holds !== undefined && start.call.mode === 'claimed') {
        holds.set(key, start.call);
        this.#holding.set(start.call, holds);
      }
      return start;
    } finally {
      // Answered: the call holds the key (above), or none does.
      if (holds?.get(key) === pending) holds.delete(key);
      answered();
    }
  }

  /** Settles a leader's flight with its record; `error`, when it ends a durable invocation, ends its followers too (only durable followers read it). */
  #land(flight: Flight, record: IdempotencyRecord | undefined, error: unknown): void {
    if (record === undefined && isResumable(error)) flight.invocationEnded = error;
    flight.settle(record);
  }

  /** Where the flights of a call live: a durable one's with its invocation's; none for a durable context that cannot be read. */
  #flightsOf(execution: string | undefined, context: unknown): Map<string, Flight> | undefined {
    if (execution === undefined) return this.#flights;
    const invocation = invocationOf(context);
    if (invocation === undefined) return undefined;
    let flights = this.#durableFlights.get(invocation);
    if (flights === undefined) this.#durableFlights.set(invocation, (flights = new Map()));
    return flights;
  }

  #fly(key: string, flights: Map<string, Flight>): Flight {
    let settle!: (record: IdempotencyRecord | undefined) => void;
    const done = new Promise<IdempotencyRecord | undefined>((resolve) => (settle = resolve));
    const watching = new Set<() => void>();
    const news = (): void => {
      for (const wake of watching) wake();
      watching.clear();
    };
    const flight: Flight = {
      watch: (wake) => {
        if (flight.landed !== undefined) wake();
        else watching.add(wake);
        return () => void watching.delete(wake);
      },
      hold: (call, leaseUntil) => {
        flight.call = call;
        flight.leaseUntil = leaseUntil;
        news();
      },
      done,
      settle: (record) => {
        if (flights.get(key) === flight) flights.delete(key);
        flight.landed ??= { record };
        settle(record);
        news();
      },
    };
    flights.set(key, flight);
    return flight;
  }

  async #claim(
    { key, fingerprint, deadline, tenant, execution, waitForOtherUntil }: Claiming,
    owner: string,
  ): Promise<{ kind: 'run'; call: Call; leaseUntil?: number; resumed?: boolean } | { kind: 'replay'; record: IdempotencyRecord }> {
    const durable = execution !== undefined;
    const now = this.now();
    // The lease ends at the Lambda deadline, also one already past (a duplicate that took over its
    // in-process leader late): `leaseSeconds` is for calls that know no deadline.
    const remaining = deadline === undefined ? undefined : deadline.at - now;
    // A durable lease never ends before the invocation that writes it: a `durableLeaseSeconds`
    // shorter than its time left would let another execution with the key run beside its steps.
    const leaseMillis = durable ? Math.max(this.#durableLeaseMillis(), remaining ?? 0) : (remaining ?? (this.#options.leaseSeconds ?? 60) * 1000);
    // An atomic call writes nothing until it ends: its lease only bounds how long in-process duplicates wait for it.
    if (this.#options.atomic)
      return {
        kind: 'run',
        call: this.#call(key, owner, fingerprint, 'atomic', now, deadline, tenant),
        leaseUntil: now + leaseMillis,
      };
    for (let attempt = 0; ; attempt++) {
      const at = this.now();
      // A Lambda deadline does not move while the claim waits for another attempt: the lease ends at it.
      const leaseUntil = (durable || remaining === undefined ? at : now) + leaseMillis;
      let claim: ClaimResult;
      try {
        claim = claimAnswer(
          await answered(
            this.#store.claim({
              key,
              owner,
              leaseUntil,
              // Retention is never shorter than the lease.
              expiresAt: Math.max(this.#expiresAt(at), Math.ceil(leaseUntil / 1000)),
              now: at,
              ...(fingerprint === undefined ? {} : { fingerprint }),
            }),
            deadline?.answerBy,
          ),
        );
      } catch (error) {
        this.#emit('storeFailure', key);
        const detail = storeFailureDetail(error, this.#store.tableName);
        // A durable execution's record is the execution's, held since its first invocation, whose
        // steps may have run: releasing it would let another execution with the key run them again.
        // The invocation fails instead, for the durable service to invoke it again (the SDK lets an
        // error marked `isUnrecoverableInvocation` end the invocation, not the execution), and its
        // replay resumes on the record.
        if (durable) throw storeFailure(detail, error, true);
        // The claim may have been applied although every answer was lost: free the key if it is
        // ours, rather than leave it held until the lease with nothing running. Best effort. Past
        // the call's bound, nothing is sent: outside a durable execution the lease ends at the
        // deadline, and the time left is for answering.
        if (!(error instanceof DeadlineTimeout)) {
          try {
            await answered(this.#store.release(resendingUntil({ key, owner, claimFailure: error }, deadline?.answerBy)), deadline?.answerBy);
          } catch {
            // A store that throws at once (its client closed) too: the caller gets the claim's failure.
          }
        }
        throw storeFailure(detail, error);
      }
      // An INPROGRESS record with our owner is our own claim: applied by a request whose response
      // was lost and retried, or held by an earlier replay of this durable execution (a call of the
      // execution that encloses this one and holds the record answered in `start`).
      if (claim.claimed || (claim.record.owner === owner && claim.record.status === 'INPROGRESS')) {
        // A durable execution resuming on a record an earlier invocation of it claimed (its lease set
        // by another claim than this one's) claimed the key once already: neither a miss nor a takeover.
        const resumed = durable && (claim.claimed ? claim.previous?.owner === owner : claim.record.leaseUntil !== leaseUntil);
        if (!resumed) this.#emitClaim(claim, key);
        // Found, the record keeps the lease of the claim that wrote it (an earlier invocation's, for a
        // durable execution resuming on it): another execution may take it over once that ends.
        const held = claim.claimed ? leaseUntil : (claim.record.leaseUntil ?? leaseUntil);
        return { kind: 'run', call: this.#call(key, owner, fingerprint, 'claimed', at, deadline, tenant, held), leaseUntil: held, resumed };
      }
      const record = claim.record;
      const left = waitLeft(waitForOtherUntil, this.now(), deadline);
      if (record.status === 'COMPLETED' || durable || left <= 0) return { kind: 'replay', record };
      // Another process holds the key: wait for its outcome, with backoff, up to the bound.
      await delay(Math.min(50 * 2 ** attempt, 1000, left)).elapsed;
    }
  }

  /**
   * Ends a call exactly once: stores its outcome or releases its key, and says what its caller gets.
   * `asStored`: the caller reads the outcome itself (a wrapped function's result), so a durable
   * call's caller gets it as the execution's replays will (see `#asStored`).
   */
  async end(call: Call, ending: Ending, asStored = false): Promise<Outcome> {
    const own: Outcome =
      ending.kind === 'throw'
        ? { kind: 'error', error: ending.error, replayed: false }
        : { kind: 'value', value: ending.kind === 'return' ? ending.value : undefined, replayed: false };
    if (!call.end(ending.kind === 'abandon') || call.mode === 'unkeyed') return own;
    let record: IdempotencyRecord | undefined;
    let outcome = own;
    try {
      if (ending.kind === 'abandon') return own;
      // An error marked `isUnrecoverableInvocation` (a call nested in this one whose store failed)
      // ends the invocation, not the durable execution: the record stays the execution's, for the
      // invocation that resumes it. It is no outcome either, however `isFinalError` reads it.
      if (ending.kind === 'throw' && call.owner.startsWith(DURABLE_OWNER) && isResumable(ending.error)) return own;
      if (ending.kind === 'return' && ending.final !== false) {
        let response: string | undefined;
        let omitted = false;
        try {
          response = JSON.stringify(ending.value);
        } catch {
          omitted = true; // BigInt, cycles: reaches this caller, cannot be replayed
        }
        [outcome, record] = await this.#complete(call, { response, ...(omitted ? { responseOmitted: true } : {}) }, own);
        return asStored && outcome === own ? this.#asStored(call, own, record) : outcome;
      }
      if (ending.kind === 'throw' && ending.final !== false && this.#isFinal(ending.error)) {
        [outcome, record] = await this.#complete(call, { response: undefined, error: serializeError(ending.error, this.#options.errorFields ?? []) }, own);
        // The caller gets its own error, unless an atomic duplicate found another attempt's outcome,
        // or another payload's record under its key (PAYLOAD_MISMATCH), or the record of a call that
        // succeeded without its response stored (RESPONSE_NOT_STORED): what a run that returned, or
        // threw an error that is not final, gets. Its own error would report the call failed (a
        // batch's message sent back, and on to its dead-letter queue) whereas it succeeded.
        const met =
          outcome.kind === 'error' && (isIdempotencyError(outcome.error, 'PAYLOAD_MISMATCH') || isIdempotencyError(outcome.error, 'RESPONSE_NOT_STORED'));
        return outcome.replayed || met ? outcome : asStored ? this.#asStored(call, own, record) : own;
      }
      // An atomic call that failed committed nothing, so it met no record: it reads the one its commit would have met.
      if (call.mode === 'atomic' && (ending.kind === 'throw' ? ending.final !== false : ending.answeredNonFinal === true)) {
        [outcome, record] = await this.#readAfterFailure(call, own);
        return outcome;
      }
      if (call.mode === 'claimed') {
        const sentAt = this.now();
        const released = await this.#release(call);
        // Another attempt took the record over while this one ran past its lease: both ran, for the Superseded alarm.
        // Not while its lease lasted (its last millisecond included, as stores judge it): no attempt could take
        // the record over then, so another's record was claimed once this one's was gone (a release the SDK
        // sent again after its answer was lost, which met the next claim; a `forget`). A `record: null` is none, as `undefined` is.
        if (this.#outlived(call, sentAt) && released?.released === false && released.record && released.record.owner !== call.owner) {
          this.#emit('superseded', call.key);
        }
      }
      return own;
    } finally {
      const holds = this.#holding.get(call);
      if (holds?.get(call.key) === call) holds.delete(call.key);
      const flight = this.#leading.get(call);
      if (flight !== undefined) this.#land(flight, record, outcome.kind === 'error' ? outcome.error : undefined);
    }
  }

  /**
   * A durable call's own outcome as the execution's replays get it from `record`: its stored JSON
   * form (a `Date` as its ISO string), a final error revived with its stored name, message and
   * fields. The execution makes its body's calls again on every replay, and must take the same
   * branches on each: the durable SDK likewise hands back a step's or a child context's result
   * through its serdes on the first run too. An outcome the record could not keep (too large, not
   * JSON, not sealed) is its `RESPONSE_NOT_STORED` (`ERROR_NOT_STORED`) here too, as on the replays:
   * an invocation that went on with it would run the steps after the call on a branch the replays
   * then leave.
   */
  #asStored(call: Call, own: Outcome, record: IdempotencyRecord | undefined): Outcome {
    if (!call.owner.startsWith(DURABLE_OWNER) || record?.status !== 'COMPLETED') return own;
    return { ...this.#stored(record), replayed: false };
  }

  /** Completes the record with `payload` (and the call's writes); the record the call ended with, for followers. */
  async #complete(
    call: Call,
    payload: Pick<CompleteRequest, 'response' | 'responseOmitted' | 'error'>,
    own: Outcome,
  ): Promise<[Outcome, IdempotencyRecord | undefined]> {
    const { key, owner, fingerprint } = call;
    const now = this.now();
    const sealBy = sealByOf(call.answerBy);
    const request: CompleteRequest = {
      key,
      owner,
      expiresAt: this.#completedRetention(call, now),
      now,
      ...payload,
      ...(sealBy === undefined ? {} : { sealBy }),
    };
    // The error path discards the call's writes: a final error is an outcome, not an effect.
    const writes = payload.error === undefined ? call.writes : [];
    const done = (
      responseStored: boolean,
      { sealFailure, storedError, unconfirmed }: { sealFailure?: unknown; storedError?: string; unconfirmed?: true } = {},
    ): [Outcome, IdempotencyRecord] => {
      // The outcome is lost to every duplicate: say so, and why, where an operator looks.
      const lost = request.error === undefined ? 'RESPONSE_NOT_STORED' : 'ERROR_NOT_STORED';
      if (sealFailure !== undefined)
        this.#log(`could not encrypt the call's outcome; the record completed without it, and duplicates get ${lost}`, key, sealFailure);
      // A completion the store failed may not have applied: its own warning says so instead.
      else if (!responseStored && !unconfirmed) {
        const why = request.responseOmitted
          ? "the call's result cannot be written as JSON (a BigInt, a cycle, nesting too deep)"
          : "the call's outcome does not fit in the store's record";
        logLine(this.#logger, 'warn', `${why}; the record completed without it, and duplicates get ${lost}`, { namespace: namespaceOf(key), recordId: key });
      }
      const record: IdempotencyRecord = {
        key,
        owner,
        status: 'COMPLETED',
        expiresAt: request.expiresAt,
        ...(fingerprint === undefined ? {} : { fingerprint }),
        // As the store keeps it: an outcome it could not store (the response, or the final error) is omitted.
        ...(!responseStored
          ? { responseOmitted: true, ...(request.error === undefined ? {} : { errorOmitted: true }) }
          : request.error !== undefined
            ? { error: storedError ?? request.error }
            : {}),
        ...(responseStored && request.response !== undefined ? { response: request.response } : {}),
      };
      this.#cache?.set(record);
      return [own, record];
    };
    /** Ends with this call's own COMPLETED record, found after an answer was lost: as the store keeps it. */
    const found = (record: IdempotencyRecord): [Outcome, IdempotencyRecord] => done(record.responseOmitted !== true, { storedError: record.error });
    if (call.mode === 'atomic') {
      let claim: ClaimResult;
      try {
        claim = claimAnswer(
          await answered(
            this.#store.claimCompleted!({ ...request, now: call.startedAt, ...(fingerprint === undefined ? {} : { fingerprint }) }, writes),
            call.answerBy,
          ),
        );
      } catch (error) {
        const failure = commitError(error);
        // The commit is this call's claim: a store that fails it is a store failure, as a failed claim is.
        if (failure.code === 'COMMIT_FAILED' || failure.code === 'STORE_FAILURE') this.#emit('storeFailure', key);
        return [{ kind: 'error', error: failure, replayed: false }, undefined];
      }
      if (claim.claimed || claim.record.owner === owner) {
        this.#emitClaim(claim, key);
        return claim.claimed ? done(claim.responseStored !== false, claim) : found(claim.record);
      }
      return this.#answerFrom(claim.record, fingerprint, now);
    }
    let result: CompleteResult;
    if (writes.length > 0) {
      try {
        result = completeAnswer(await answered(this.#store.completeWithWrites!(request, writes), call.answerBy));
      } catch (error) {
        // A durable execution's record is the execution's, and its steps have run: releasing it
        // would let another execution with the key run them again. A commit whose outcome is
        // unknown, or that conflicted (nothing written, a retry may pass), ends the invocation
        // instead, as a failed claim does, and keeps the record: the invocation that resumes the
        // execution replays the steps and commits again, or meets the COMPLETED record of this
        // commit, had it applied (fenced on the execution's claim, it applies at most once).
        if (call.owner.startsWith(DURABLE_OWNER) && (!(error instanceof IdempotencyError) || error.code === 'TRANSACTION_CONFLICT')) {
          this.#emit('bookkeepingFailure', key);
          return [{ kind: 'error', error: resumable(commitError(error, false, true)), replayed: false }, undefined];
        }
        // Typed errors mean nothing was written: free the key. Otherwise the outcome is unknown, and
        // the fenced release settles it: it deletes the record only while this call's claim is
        // INPROGRESS, after which the commit (fenced on that claim) can never apply, and meets this
        // call's COMPLETED record if the commit applied. Should it fail too, the record stays until
        // its lease, and a retry after it replays or runs again. Past the call's bound nothing is
        // sent: the lease ends at the deadline, and the time left is for answering.
        const released =
          error instanceof DeadlineTimeout
            ? undefined
            : await this.#release(
                call,
                'could not release the record after an unanswered commit; unless the release was refused (see `error`), it stays INPROGRESS until its lease ends, or is COMPLETED if the commit applied',
              );
        if (error instanceof IdempotencyError) return [{ kind: 'error', error, replayed: false }, undefined];
        const record = released?.released === false ? released.record : undefined;
        if (record?.owner === owner && record.status === 'COMPLETED') return found(record);
        // Another attempt holds the record (this call's lease ended, or its record was deleted): the commit, fenced on this
        // call's claim, never applied and never will, but the key is not free, as it is after a
        // release: the caller meets the holder, as a refused completion does (one event: Superseded).
        // A `record: null` is none, as `undefined` is.
        if (record) return this.#superseded(call, record, 'its transaction failed without an answer; nothing of this call was written', error);
        // The function ran and the store failed its completion, for the BookkeepingFailures alarm;
        // once per call: a release that failed too has reported it.
        if (released !== undefined || error instanceof DeadlineTimeout) this.#emit('bookkeepingFailure', key);
        return [{ kind: 'error', error: commitError(error, released !== undefined), replayed: false }, undefined];
      }
    } else {
      try {
        result = completeAnswer(await answered(this.#store.complete(resendingUntil(request, call.answerBy)), call.answerBy));
      } catch (error) {
        // The write may have applied all the same (an answer lost, replicas that did not acknowledge
        // it in time): the store's error says which; the record's state is not known here.
        this.#warn(
          'could not mark the record COMPLETED; unless the write applied all the same or was refused (see `error`), it stays INPROGRESS until its lease ends',
          key,
          error,
        );
        // In-process duplicates still get this outcome: the function ran once.
        return [own, done(payload.responseOmitted !== true, { unconfirmed: true })[1]];
      }
    }
    // Stored unless the store says not, as `claimCompleted`'s answer is read.
    if (result.completed) return done(result.responseStored !== false, result);
    // The record that refused the write; a `record: null` is none, as `undefined` is.
    const record = result.record ?? undefined;
    // A refused write that finds our own COMPLETED record is our retried request, already applied.
    if (record?.owner === owner && record.status === 'COMPLETED') return found(record);
    // No record at all: deleted while the function ran (`forgetRecord`), or lost by the store (a
    // Redis restart or failover); past this call's lease, as a rule taken over by another attempt,
    // which ran too, and released. The function ran: its caller gets its outcome, as in-process
    // duplicates do, though no duplicate elsewhere will. Not a commit's: fenced on the claim, it applied none of the writes.
    if (record === undefined && writes.length === 0) {
      const outlived = this.#outlived(call);
      this.#emit(outlived ? 'superseded' : 'bookkeepingFailure', key);
      const what = outlived
        ? 'this attempt outlived its lease and its record was gone when it completed (taken over and released by another attempt, as a rule)'
        : 'the record was deleted while the call ran (forgetRecord, or a store that lost it)';
      logLine(this.#logger, 'warn', `${what}; the caller gets the call's outcome, which was not stored: the next call with its key runs again`, {
        namespace: namespaceOf(key),
        recordId: key,
      });
      return [own, done(payload.responseOmitted !== true, { unconfirmed: true })[1]];
    }
    return this.#superseded(call, record, 'nothing was overwritten');
  }

  /**
   * The answer of an atomic call from another attempt's record, which its commit met (or its read
   * found): its stored outcome, or a rejection (`PAYLOAD_MISMATCH`, `IN_PROGRESS`); with the record,
   * when COMPLETED, for followers.
   */
  #answerFrom(record: IdempotencyRecord, fingerprint: string | undefined, now: number): [Outcome, IdempotencyRecord | undefined] {
    try {
      return [{ kind: 'value', value: this.#settle(record, fingerprint, now, true), replayed: true }, record];
    } catch (error) {
      // A stored final error is another attempt's outcome; a rejection (IN_PROGRESS…) is not. A
      // COMPLETED record answers the in-process duplicates all the same, each by its own
      // fingerprint, as their own commits would meet it: they do not run the function in turn.
      return [{ kind: 'error', error, replayed: !(error instanceof IdempotencyError) }, record.status === 'COMPLETED' ? record : undefined];
    }
  }

  /**
   * The end of an atomic call whose function threw an error that is not final (or answered an HTTP
   * response that is not: a 5xx its handler made of the error). A duplicate's run may
   * fail on the first call's effect (a payment it reads as refunded already): one read of the record
   * answers it as its commit would have, from a live COMPLETED record (its outcome, or
   * `PAYLOAD_MISMATCH`). A record without a retention gets the one the commit would have written, as
   * the commit gives it (the read is passed it), and is then read as any record. With no such
   * record, a store without `read`, or a read that fails, the caller gets its own error: bookkeeping
   * never replaces it.
   */
  async #readAfterFailure(call: Call, own: Outcome): Promise<[Outcome, IdempotencyRecord | undefined]> {
    if (typeof this.#store.read !== 'function') return [own, undefined];
    let record: IdempotencyRecord | undefined;
    try {
      record = await answered(this.#store.read(call.key, this.#completedRetention(call, this.now())), call.answerBy);
    } catch (error) {
      this.#log("could not read the record after the function failed; the caller gets the function's own outcome", call.key, error);
      return [own, undefined];
    }
    // Judged as the commit's claim would have: at the call's start, a record past its retention is none.
    if (record?.status !== 'COMPLETED' || record.expiresAt < Math.floor(call.startedAt / 1000)) return [own, undefined];
    const answer = this.#answerFrom(record, call.fingerprint, this.now());
    const [outcome] = answer;
    // A stored outcome that cannot be parsed is the store's failure, not this call's answer.
    if (outcome.kind === 'error' && isIdempotencyError(outcome.error, 'STORE_FAILURE')) {
      this.#log("could not read the record's stored outcome after the function failed; the caller gets the function's own outcome", call.key, outcome.error);
      return [own, undefined];
    }
    return answer;
  }

  /**
   * The end of a call whose record another attempt took over after its lease: `SUPERSEDED`, with the
   * record when known, and `cause`, the failure of a commit that got no answer, when one led here. A commit that finds no record at all within its lease met one deleted while
   * the call ran (`forgetRecord` deletes a live attempt's): no attempt took it over, and the message
   * says so; past its lease, as a rule, another attempt took it over, ran, and released it. One
   * that finds another attempt's record while its own lease has not ended (its last millisecond
   * included, as stores judge it) met a record claimed after such a deletion: no takeover either.
   */
  #superseded(call: Call, record: IdempotencyRecord | undefined, detail: string, cause?: unknown): [Outcome, undefined] {
    const outlived = this.#outlived(call);
    // No record within the lease: no attempt took it over, and the function ran without one, as a
    // completion without writes that finds none (the BookkeepingFailures alarm, not Superseded's "ran twice").
    this.#emit(record === undefined && !outlived ? 'bookkeepingFailure' : 'superseded', call.key);
    const unwritten = 'so none of its writes was committed and the next call with its key runs again';
    const what =
      record === undefined
        ? outlived
          ? `This attempt outlived its lease and its record was gone when it ended (taken over and released by another attempt, as a rule), ${unwritten}`
          : `This attempt's record was deleted while it ran, ${unwritten}`
        : !outlived
          ? "This attempt's record was deleted while it ran, before its lease ended, and then claimed by another attempt"
          : 'This attempt outlived its lease and its record was taken over by another attempt';
    const error = new IdempotencyError('SUPERSEDED', `${what}; ${detail}.`, {
      ...(record === undefined ? {} : { record }),
      cause,
    });
    return [{ kind: 'error', error, replayed: false }, undefined];
  }

  /**
   * Whether the call's lease had ended at `at` (now, by this engine's clock; its last millisecond is
   * still its own, as stores judge it). A claimed call always has a lease.
   */
  #outlived(call: Call, at = this.now()): boolean {
    return call.leaseUntil !== undefined && at > call.leaseUntil;
  }

  /** A call of this engine; with a deadline, the time left until it by this engine's clock, for the calls nested in it. */
  #call(
    key: string,
    owner: string,
    fingerprint: string | undefined,
    mode: CallMode,
    startedAt: number,
    deadline: Deadline | undefined,
    tenant: string | undefined,
    leaseUntil?: number,
  ): Call {
    const transactional = mode !== 'unkeyed' && this.#transactional;
    const itemStore = transactional ? this.#store : undefined;
    if (deadline === undefined) return new Call(key, owner, fingerprint, mode, startedAt, transactional, undefined, undefined, leaseUntil, tenant, itemStore);
    return new Call(key, owner, fingerprint, mode, startedAt, transactional, () => deadline.at - this.now(), deadline.answerBy, leaseUntil, tenant, itemStore);
  }

  /**
   * Deletes the record if this call still holds it; store errors are logged (`what`, what the
   * record is left as), never thrown (the result is then `undefined`).
   */
  async #release(
    call: Call,
    what = 'could not release the record; unless the release was refused (see `error`), it stays INPROGRESS until its lease ends',
  ): Promise<ReleaseResult | undefined> {
    try {
      return await answered(this.#store.release(resendingUntil({ key: call.key, owner: call.owner }, call.answerBy)), call.answerBy);
    } catch (error) {
      this.#warn(what, call.key, error);
      return undefined;
    }
  }

  /**
   * The answer for a call that met another attempt's record: the stored outcome of a COMPLETED
   * record, or a rejection (`PAYLOAD_MISMATCH`, `IN_PROGRESS`) that leaves the record as it is.
   * `ran`: the call's function has run (an atomic call's commit met the record); `counted`: the
   * answer is a replay for observability.
   */
  #settle(record: IdempotencyRecord, fingerprint: string | undefined, now: number, ran = false, counted = true): unknown {
    this.#checkFingerprint(record, fingerprint);
    if (record.status === 'COMPLETED') {
      let outcome: { readonly value: unknown } | { readonly error: unknown };
      try {
        outcome = { value: this.#replay(record, ran) };
      } catch (error) {
        // A stored outcome that cannot be read is the store's failure, counted as one: not kept, no replay.
        if (isIdempotencyError(error, 'STORE_FAILURE')) {
          this.#emit('storeFailure', record.key);
          throw error;
        }
        outcome = { error };
      }
      this.#cache?.set(record);
      if (counted) this.#emit('replay', record.key);
      if ('error' in outcome) throw outcome.error;
      return outcome.value;
    }
    // A record without a lease (written by hand, or by an older version) is held until its retention ends.
    throw this.#inProgress(record.key, record.leaseUntil ?? (record.expiresAt + 1) * 1000, now);
  }

  /** The rejection of a call that met another attempt holding its key (until `leaseUntil`, when known). */
  #inProgress(key: string, leaseUntil: number | undefined, now = this.now()): IdempotencyError {
    this.#emit('inProgress', key);
    const retryAfterSeconds = Math.max(1, Math.ceil(((leaseUntil ?? now) - now) / 1000));
    return new IdempotencyError('IN_PROGRESS', `Another attempt with this idempotency key is in progress; retry in ${retryAfterSeconds} s.`, {
      retryAfterSeconds,
    });
  }

  /** The rejection of a call nested in the call that holds its key: `IN_PROGRESS`, which no wait inside that call can end. */
  #nestedInHolder(key: string, leaseUntil: number | undefined): IdempotencyError {
    const error = this.#inProgress(key, leaseUntil);
    error.message = `${error.message} This call is nested in the call that holds the key (same name and key): it cannot run until that call has ended.`;
    return error;
  }

  /** The stored outcome of a COMPLETED record whose fingerprint was checked: its response, or its error thrown. */
  #replay(record: IdempotencyRecord, ran = false): unknown {
    const outcome = this.#stored(record, ran);
    if (outcome.kind === 'error') throw outcome.error;
    return outcome.value;
  }

  /**
   * The outcome a COMPLETED record holds: its response parsed, or its final error revived; an
   * outcome that could not be stored, an `IdempotencyError` that says so. `ran`: the caller's
   * function ran in this call (a stored outcome that is not JSON is then no failure of its claim).
   */
  #stored(record: IdempotencyRecord, ran = false): Outcome {
    const error = (error: unknown): Outcome => ({ kind: 'error', error, replayed: true });
    if (record.error !== undefined) return error(parseStored(record.key, 'error', () => reviveError(record.error!, this.#options.errorFields ?? []), ran));
    if (record.errorOmitted) {
      return error(
        new IdempotencyError('ERROR_NOT_STORED', 'This call already ended with a final error, but the error could not be stored, so it cannot be replayed.'),
      );
    }
    if (record.responseOmitted) {
      return error(new IdempotencyError('RESPONSE_NOT_STORED', 'This call already completed, but its response could not be stored, so it cannot be replayed.'));
    }
    return {
      kind: 'value',
      value: record.response === undefined ? undefined : parseStored(record.key, 'response', () => JSON.parse(record.response!), ran),
      replayed: true,
    };
  }

  #checkFingerprint(record: { readonly key: string; readonly fingerprint?: string | undefined }, fingerprint: string | undefined): void {
    if (this.#options.fingerprint && record.fingerprint !== fingerprint) {
      this.#emit('payloadMismatch', record.key);
      throw new IdempotencyError('PAYLOAD_MISMATCH', 'This idempotency key was already used with a different payload.');
    }
  }

  #fingerprintOf(input: TInput): string | undefined {
    if (!this.#options.fingerprint) return undefined;
    let selected: unknown;
    try {
      selected = this.#options.fingerprint(input);
    } catch (error) {
      throw new IdempotencyError('INVALID_KEY', 'The fingerprint selector threw.', { cause: error });
    }
    return sha256(fingerprintJson(selected) ?? '');
  }

  /**
   * Whether `error` is the call's outcome, to store: what `isFinalError` says, never an error that
   * asks for a retry, nor a write `transaction()` or `transition()` refused as it was added
   * (`TRANSACTION_INVALID`, a `TypeError`): a fault of the code, which releases the key as
   * DynamoDB's refusal of the commit does, so the corrected code runs.
   */
  #isFinal(error: unknown): boolean {
    try {
      if (asksForRetry(error) || isIdempotencyError(error, 'TRANSACTION_INVALID') || isFaultOfCode(error)) return false;
      let final: unknown;
      try {
        final = this.#options.isFinalError?.(error);
      } catch (failure) {
        // A classifier that fails (a field read on an error without it) would keep every final error
        // from being stored without a word: say so, by its type only (its message may quote the error's).
        logLine(this.#logger, 'warn', '`isFinalError` threw: it must return true or false; the error was taken as not final', {
          error: errorTypeOf(failure),
        });
        return false;
      }
      // An async `isFinalError`: its promise is no answer, and its rejection must not end the process.
      if (typeof (final as PromiseLike<unknown> | null)?.then === 'function') {
        (final as PromiseLike<unknown>).then(undefined, () => undefined);
        logLine(this.#logger, 'warn', '`isFinalError` returned a promise: it must return true or false, synchronously; the error was taken as not final');
      } else if (final && final !== true) {
        // A truthy answer (a code, a status) reads as "final" to its author: say that only `true` is.
        const got = typeof final === 'object' ? 'an object' : `a ${typeof final}`;
        logLine(this.#logger, 'warn', `\`isFinalError\` returned ${got}: only true is final; the error was taken as not final`);
      }
      return final === true;
    } catch {
      return false;
    }
  }

  /**
   * Says once, when a call without a `key` selector brings an event that differs on every
   * delivery: such a key never matches a retry, and every duplicate runs.
   */
  #checkWholeEvent(input: TInput): void {
    let volatile: string | undefined;
    try {
      volatile = volatileEventOf(input);
    } catch {
      return; // an event that throws when read (a getter, a proxy trap): hashing it says so, as INVALID_KEY
    }
    if (volatile === undefined) return;
    this.#warnedWholeEvent = true;
    logLine(this.#logger, 'warn', `${this.#where} has no \`key\`, so the whole event is the key, and it is ${volatile}. Duplicates are not detected.`);
  }

  /** Reports a record this call claimed: `takeover` of an attempt past its lease, else `miss`. */
  #emitClaim(claim: ClaimResult, key: string): void {
    this.#emit(claim.claimed && claim.previous?.status === 'INPROGRESS' ? 'takeover' : 'miss', key);
  }

  /** How long a durable execution holds its key across suspensions and replays: `durableLeaseSeconds`, else the retention. */
  #durableLeaseMillis(): number {
    return (this.#options.durableLeaseSeconds ?? this.retentionSeconds) * 1000;
  }

  /** The retention (epoch seconds) a call's completion writes at `now`. */
  #completedRetention(call: Call, now: number): number {
    // Retention counts from the later of the claim and now: a clock stepped back while the function
    // ran (NTP) must not write a retention that other processes, on a true clock, already see as past.
    const expiresAt = this.#expiresAt(Math.max(now, call.startedAt));
    // A durable execution makes the calls of its body again on every replay, until it ends, which
    // its lease covers: the outcome is kept as long, or a replay past the retention would run it again.
    if (!call.owner.startsWith(DURABLE_OWNER)) return expiresAt;
    return Math.max(expiresAt, Math.ceil((call.startedAt + this.#durableLeaseMillis()) / 1000));
  }

  #expiresAt(now: number): number {
    return Math.floor(now / 1000) + this.retentionSeconds;
  }

  #warn(what: string, key: string, error: unknown): void {
    this.#emit('bookkeepingFailure', key);
    this.#log(what, key, error);
  }

  /** A warning through `logger` about the record `key`, naming `error`. */
  #log(what: string, key: string, error: unknown): void {
    // The record id is a hash: it finds the record (the CLI's `--id`) without revealing the key.
    logLine(this.#logger, 'warn', what, { namespace: namespaceOf(key), recordId: key, error: storeFailureDetail(error, this.#store.tableName) });
  }
}

/**
 * Runs `fn` as one idempotent call of `engine`: its result, or the stored outcome of an earlier
 * one. `key` is the call's record key when the caller already computed it with `keyOf`. For the
 * entry points that call a function themselves (`makeIdempotent`, `idempotentBatch`); the
 * middlewares start and end calls in middy's hooks. @internal
 */
export async function runCall<TInput, TContext, R>(
  engine: IdempotencyEngine<TInput, TContext>,
  input: TInput,
  context: TContext | undefined,
  fn: () => PromiseLike<R> | R,
  key?: string,
): Promise<R> {
  const start = await engine.start(input, context, key);
  if (start.kind === 'replay') return start.value as R;
  let ending: Ending;
  try {
    ending = { kind: 'return', value: await inCall(start.call, fn) };
  } catch (error) {
    ending = { kind: 'throw', error };
  }
  const outcome = await engine.end(start.call, ending, true);
  if (outcome.kind === 'error') throw outcome.error;
  return outcome.value as R;
}
