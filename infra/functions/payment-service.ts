/**
 * The demo payment service: charges through a payment provider and keeps payments in DynamoDB.
 * Refunds are a conditional state change of the payment item, so a refund can never exceed the
 * payment, whatever the retries and races; the idempotency layer makes each request run once.
 */

import { randomUUID } from 'node:crypto';
import { type AttributeValue, ConditionalCheckFailedException, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import { transaction, transition } from '../../lib/index.js';
import { paymentsTableSchema } from '../payments-schema.js';

export type PaymentStatus = 'PAID' | 'PARTIALLY_REFUNDED' | 'REFUNDED';

export interface Payment {
  readonly paymentId: string;
  readonly orderId?: string;
  /** Minor units (cents). */
  readonly amount: number;
  readonly currency: string;
  readonly status: PaymentStatus;
  readonly refundedAmount: number;
  /** Always `amount - refundedAmount`: DynamoDB conditions cannot add, so the guard compares against it. */
  readonly refundableAmount: number;
  readonly chargeId: string;
  readonly createdAt: string;
}

export interface Refund {
  readonly refundId: string;
  readonly paymentId: string;
  readonly amount: number;
  readonly status: PaymentStatus;
  readonly refundedAmount: number;
  readonly refundableAmount: number;
}

/**
 * The card processor. Each call carries an idempotency key that is the same on every retry and
 * takeover of one request (`transaction().downstreamKey()`), as card processors' APIs accept, so a
 * retry after a crash cannot charge or refund twice at the processor either.
 */
export interface PaymentProvider {
  /** Throws {@link ChargeDeclined} when the processor answers that it charged nothing. */
  charge(request: { idempotencyKey: string; paymentId: string; amount: number; currency: string }): Promise<{ chargeId: string }>;
  /** Throws {@link RefundDeclined} when the processor answers that it made no refund. */
  refund(request: { idempotencyKey: string; paymentId: string; chargeId: string; refundId: string; amount: number }): Promise<{ providerRefundId: string }>;
}

/**
 * What a provider's `refund` throws when the processor answered that it made no refund (declined,
 * refused). Any other error (a timeout, a 5xx, a lost connection) leaves the outcome unknown.
 */
export class RefundDeclined extends Error {
  override readonly name = 'RefundDeclined';
}

/**
 * What a provider's `charge` throws when the processor answered that it charged nothing (declined,
 * refused). Any other error (a timeout, a 5xx, a lost connection) leaves the outcome unknown.
 */
export class ChargeDeclined extends Error {
  override readonly name = 'ChargeDeclined';
}

/** Stands in for a card processor in the deployed demo stack: it accepts everything. */
export const simulatedProvider: PaymentProvider = {
  charge: async () => ({ chargeId: `ch_${randomUUID()}` }),
  refund: async () => ({ providerRefundId: `re_${randomUUID()}` }),
};

export type PaymentErrorCode =
  | 'INVALID_REQUEST'
  | 'NOT_FOUND'
  | 'CURRENCY_MISMATCH'
  | 'REFUND_EXCEEDS_PAYMENT'
  | 'PAYMENT_KEY_REUSED'
  | 'REFUND_KEY_REUSED'
  | 'CHARGE_DECLINED'
  | 'REFUND_DECLINED'
  | 'ORDER_ALREADY_PAID'
  | 'ORDER_BEING_PAID'
  | 'PROVIDER_FAILED'
  | 'REFUND_INCOMPLETE';

export class PaymentError extends Error {
  override readonly name = 'PaymentError';
  constructor(
    readonly code: PaymentErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface PaymentServiceOptions {
  readonly client: DynamoDBClient;
  readonly tableName: string;
  readonly provider?: PaymentProvider;
  /** Clock, epoch milliseconds. @default Date.now */
  readonly now?: () => number;
}

const MAX_AMOUNT = 100_000_000;
/**
 * The ISO 4217 currencies: three capital letters alone may name none. The runtime's ICU (Lambda's
 * Node.js has full ICU) lists those in use but one, VED (Venezuela's digital bolívar, since 2021);
 * it leaves out the codes of no money one pays in (funds, metals, XTS, XXX), refused here too.
 */
const CURRENCIES: ReadonlySet<string> = new Set([...Intl.supportedValuesOf('currency'), 'VED']);
const KEY = paymentsTableSchema.partitionKey.name;
/** The ids {@link PaymentService.createPayment} gives: no other id names a payment (nor fits a DynamoDB key, past 2 KB). */
const PAYMENT_ID = /^pay_[\w-]{22}$/;
/** What a payment item shows a reader: the {@link Payment}, not the refunds' bookkeeping beside it. */
const PAYMENT_FIELDS = [
  'paymentId',
  'orderId',
  'amount',
  'currency',
  'status',
  'refundedAmount',
  'refundableAmount',
  'chargeId',
  'createdAt',
] as const satisfies readonly (keyof Payment)[];

/** The payments table's item that names the payment of an order: no payment id has this form ({@link PAYMENT_ID}). */
const orderItemKey = (orderId: string): string => `order#${orderId}`;

function invalid(message: string): PaymentError {
  return new PaymentError('INVALID_REQUEST', message);
}

function validAmount(value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > MAX_AMOUNT) {
    throw invalid(`amount must be a whole number of minor units (cents) between 1 and ${MAX_AMOUNT}.`);
  }
  return value;
}

function validCurrency(value: unknown): string {
  if (typeof value !== 'string' || !CURRENCIES.has(value)) throw invalid('currency must be an ISO 4217 code such as "EUR".');
  return value;
}

function asObject(input: unknown): Record<string, unknown> {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) throw invalid('The request body must be a JSON object.');
  return input as Record<string, unknown>;
}

/**
 * What a payment request's body asks for, checked: an object with a whole `amount` of minor units
 * from 1 to 100,000,000, an ISO 4217 `currency` and an optional `orderId`. Anything else is a
 * {@link PaymentError} `INVALID_REQUEST` (a 400), thrown before any money moves.
 */
export function paymentRequest(input: unknown): { amount: number; currency: string; orderId?: string } {
  const body = asObject(input);
  const amount = validAmount(body.amount);
  const currency = validCurrency(body.currency);
  const orderId = body.orderId;
  if (orderId !== undefined && (typeof orderId !== 'string' || orderId.length === 0 || orderId.length > 128)) {
    throw invalid('orderId must be a string of 1 to 128 characters.');
  }
  return { amount, currency, ...(orderId === undefined ? {} : { orderId }) };
}

/**
 * A payment item as the refunds leave it: the refunds applied to it, and those of them the provider
 * has made (an applied refund not among them may still be at the provider, or have failed there).
 */
type StoredPayment = Payment & { refundIds?: Set<string>; completedRefundIds?: Set<string> };

/** The attribute of the payment item that names the attempt answering for a refund, and this attempt's owner token. */
interface RefundAttempt {
  readonly holder: string;
  readonly owner: string;
}

/**
 * The attribute of the payment item that keeps an applied refund's amount. Within the record's
 * retention a changed amount is a 422 of the idempotency layer; after it, only this attribute tells
 * that the same key (the same refund id) now asks for another amount.
 */
const refundAmountAttribute = (refundId: string): string => `refundAmount_${refundId}`;

const isConditionFailure = (error: unknown): error is ConditionalCheckFailedException & { Item?: Record<string, AttributeValue> } =>
  error instanceof ConditionalCheckFailedException || (error as { name?: unknown } | null)?.name === 'ConditionalCheckFailedException';

export class PaymentService {
  private readonly doc: DynamoDBDocumentClient;
  private readonly tableName: string;
  private readonly provider: PaymentProvider;
  private readonly now: () => number;

  constructor(options: PaymentServiceOptions) {
    this.doc = DynamoDBDocumentClient.from(options.client);
    this.tableName = options.tableName;
    this.provider = options.provider ?? simulatedProvider;
    this.now = options.now ?? Date.now;
  }

  /**
   * Charges the card, then records the payment as PAID in the idempotent call's transaction: the
   * payment item and the COMPLETED record commit together, or neither does. Must run inside an
   * idempotent call (`transaction()`); the payment id and the processor's key are derived from it.
   * A payment this request made already, under a record that has expired since, is answered as it
   * stands without charging again; another amount, currency or order under its key is refused
   * (`PAYMENT_KEY_REUSED`, a 422), as it is while the record lives. An order another payment pays
   * is refused before any charge (`ORDER_ALREADY_PAID`, a 409), and so is one another payment is
   * paying, until that payment's outcome is known (`ORDER_BEING_PAID`, a 409 to retry).
   */
  async createPayment(input: unknown): Promise<Payment> {
    const { amount, currency, orderId } = paymentRequest(input);
    const call = transaction();
    const paymentId = `pay_${call.downstreamKey('payment').slice(0, 22)}`;
    // Made already by this request under a record that has expired since: the processor may have
    // forgotten its key by now (many keep them a day) and would charge the card again, which the
    // payment's conditional write below would then refuse to record. While the record lives, its
    // claim keeps other attempts out, and one that takes over after the lease charges under the same key.
    const made = await this.stored(paymentId);
    if (made !== undefined) {
      if (made.amount !== amount || made.currency !== currency || made.orderId !== orderId) {
        throw new PaymentError(
          'PAYMENT_KEY_REUSED',
          `This Idempotency-Key made another payment (${made.amount} ${made.currency}); use a new key for a new payment.`,
        );
      }
      return made;
    }
    if (orderId !== undefined) await this.reserveOrder(orderId, paymentId);
    let chargeId: string;
    try {
      ({ chargeId } = await this.provider.charge({ idempotencyKey: call.downstreamKey('charge'), paymentId, amount, currency }));
    } catch (error) {
      // A decline is the processor's final answer: kept for the key (a 402), so a retry of it gets
      // the decline again and never a charge. Anything else may come after the processor charged the
      // card, and a client told otherwise may pay again under a new key: not kept, the retry with the
      // same key asks the processor under the same key.
      if (error instanceof ChargeDeclined) {
        if (orderId !== undefined) await this.releaseOrder(orderId, paymentId);
        throw new PaymentError('CHARGE_DECLINED', 'The payment provider declined the charge; nothing was charged.', { cause: error });
      }
      throw new PaymentError(
        'PROVIDER_FAILED',
        'The payment provider did not answer whether it charged; retry with the same Idempotency-Key, which charges the card at most once.',
        { cause: error },
      );
    }
    const payment: Payment = {
      paymentId,
      ...(orderId === undefined ? {} : { orderId }),
      amount,
      currency,
      status: 'PAID',
      refundedAmount: 0,
      refundableAmount: amount,
      chargeId,
      createdAt: new Date(this.now()).toISOString(),
    };
    call.put({
      TableName: this.tableName,
      Item: { ...payment, [KEY]: paymentId },
      ConditionExpression: 'attribute_not_exists(#key)',
      ExpressionAttributeNames: { '#key': KEY },
    });
    return payment;
  }

  /**
   * Binds the order to this payment before the card is charged, or refuses when another payment pays
   * it (`ORDER_ALREADY_PAID`) or is paying it (`ORDER_BEING_PAID`: its charge is under way, or its
   * outcome unknown, and a decline frees the order): the payment API's records are keyed by the
   * Idempotency-Key and the order queue's by the order id, each in a namespace of its own, so neither
   * keeps the other channel, or another key, from charging the order again. This payment's own retries
   * and takeovers find the order theirs.
   */
  private async reserveOrder(orderId: string, paymentId: string): Promise<void> {
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { [KEY]: orderItemKey(orderId), orderId, paidBy: paymentId },
          ConditionExpression: 'attribute_not_exists(#key) OR attribute_not_exists(paidBy) OR paidBy = :paymentId',
          ExpressionAttributeNames: { '#key': KEY },
          ExpressionAttributeValues: { ':paymentId': paymentId },
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        }),
      );
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
      const holder = error.Item ? (unmarshall(error.Item) as { paidBy?: string }).paidBy : undefined;
      // Only a recorded payment is final: one whose charge is under way or unknown may still be
      // declined, which frees the order, and a "paid" kept for this key would then be false.
      if (holder !== undefined && (await this.stored(holder)) !== undefined) {
        throw new PaymentError('ORDER_ALREADY_PAID', `Order ${orderId} is paid by another payment; it is not charged again.`);
      }
      throw new PaymentError(
        'ORDER_BEING_PAID',
        `Order ${orderId} is being paid by another payment, whose outcome is not known yet; it is charged only if that payment is declined: retry later.`,
      );
    }
  }

  /** Frees the order of a payment whose charge was declined: another payment may pay it. */
  private async releaseOrder(orderId: string, paymentId: string): Promise<void> {
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { [KEY]: orderItemKey(orderId), orderId },
          ConditionExpression: 'paidBy = :paymentId',
          ExpressionAttributeValues: { ':paymentId': paymentId },
        }),
      );
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
    }
  }

  /**
   * The payment as it stands, refunds included. The read is strongly consistent: a client that
   * follows the `Location` of a 201 at once finds the payment the request's transaction committed.
   */
  async getPayment(paymentId: string): Promise<Payment> {
    if (!PAYMENT_ID.test(paymentId)) throw new PaymentError('NOT_FOUND', 'No payment has this id.');
    const payment = await this.stored(paymentId);
    if (payment === undefined) throw new PaymentError('NOT_FOUND', `Payment ${paymentId} does not exist.`);
    return payment;
  }

  /** The payment item as a {@link Payment}, from a strongly consistent read; `undefined` when there is none. */
  private async stored(paymentId: string): Promise<Payment | undefined> {
    const { Item } = await this.doc.send(
      new GetCommand({
        TableName: this.tableName,
        Key: { [KEY]: paymentId },
        ConsistentRead: true,
        ProjectionExpression: PAYMENT_FIELDS.map((_, i) => `#f${i}`).join(', '),
        ExpressionAttributeNames: Object.fromEntries(PAYMENT_FIELDS.map((name, i) => [`#f${i}`, name])),
      }),
    );
    return Item as Payment | undefined;
  }

  /**
   * Refunds part or all of a payment. The state change comes first and is conditional on the
   * refundable amount (`refundedAmount + amount <= payment amount`), so concurrent refunds can never
   * exceed the payment; the provider is called only for a refund the table accepted, and a refund it
   * declined gives the amount back and is final (`REFUND_DECLINED`, a 402 kept for the key, so a retry
   * gets the decline again instead of a refund made after it). Any other provider failure (a timeout:
   * the refund may be made), or a failure to give it back, leaves the refund recorded
   * (`REFUND_INCOMPLETE`, a 503): a retry with the same key takes it over and calls the provider
   * again. A refund the provider made is marked so on the item: the same key sent again after its
   * record expired gets the refund's state, not a second call, which a processor that has forgotten
   * its key would pay; with another amount it is refused (`REFUND_KEY_REUSED`, a 422), as it is while the record lives.
   * A refund is in the payment's currency: a `currency` in the body must be it (`CURRENCY_MISMATCH`,
   * a 422, checked by the same conditional write), and none means it.
   */
  async refund(paymentId: string, input: unknown): Promise<Refund> {
    const body = asObject(input);
    const amount = validAmount(body.amount);
    const currency = body.currency === undefined ? undefined : validCurrency(body.currency);
    if (!PAYMENT_ID.test(paymentId)) throw new PaymentError('NOT_FOUND', 'No payment has this id.');
    const call = transaction();
    // The same id on every retry and takeover of this request: the state change below applies it once.
    // The payment is part of it: a key sent again after its record expired, for another payment, is
    // another refund, which the processor must not answer with the first one's result.
    const refundId = `re_${call.downstreamKey(`refund ${paymentId}`).slice(0, 22)}`;
    // Which attempt answers for the refund: this one's owner token, which changes on a takeover.
    const attempt = { holder: `refundHolder_${refundId}`, owner: call.owner };
    const applied = await this.applyRefund(paymentId, refundId, amount, currency, attempt);
    // Made already by this request under a record that has expired since: the processor may have
    // forgotten its key by now, and would refund again.
    if (applied.completedRefundIds?.has(refundId)) return this.refundOf(applied, refundId, amount);
    try {
      await this.provider.refund({ idempotencyKey: refundId, paymentId, chargeId: applied.chargeId, refundId, amount });
    } catch (error) {
      // Only the processor's answer that it made no refund may give the amount back: after a timeout
      // the refund may be made, and the amount given back would let other refunds exceed the payment.
      if (!(error instanceof RefundDeclined)) {
        throw new PaymentError('REFUND_INCOMPLETE', 'The payment provider did not answer; retry with the same Idempotency-Key to complete the refund.', {
          cause: error,
        });
      }
      let givenBack: boolean;
      try {
        givenBack = await this.revertRefund(paymentId, refundId, amount, applied.refundedAmount === amount, attempt);
      } catch (undoError) {
        // The refund stays recorded though the provider has not made it: a retry of this request
        // (same key, same refund id) takes it over and calls the provider again, which refunds once.
        throw new PaymentError(
          'REFUND_INCOMPLETE',
          'The payment provider failed and the refund could not be given back; retry with the same Idempotency-Key to complete it.',
          { cause: new AggregateError([error, undoError], 'the provider call and its undo both failed') },
        );
      }
      // A later attempt of this request took the refund over and answers for it: it may have made
      // the refund already, so "nothing was refunded" could be false; a retry gets its outcome.
      if (!givenBack) {
        throw new PaymentError(
          'REFUND_INCOMPLETE',
          'Another attempt of this request answers for the refund; retry with the same Idempotency-Key for its outcome.',
          { cause: error },
        );
      }
      // The processor's final answer, as a declined charge is: kept for the key (a 402), so a retry of
      // it gets the decline again, never a refund the processor makes when asked a second time.
      throw new PaymentError('REFUND_DECLINED', 'The payment provider declined the refund; nothing was refunded.', { cause: error });
    }
    await this.completeRefund(paymentId, refundId, attempt);
    return this.refundOf(applied, refundId, amount);
  }

  private refundOf(payment: Payment, refundId: string, amount: number): Refund {
    const { paymentId, status, refundedAmount, refundableAmount } = payment;
    return { refundId, paymentId, amount, status, refundedAmount, refundableAmount };
  }

  /**
   * Records that the provider made the refund, while this attempt answers for it; the holder goes,
   * as nothing may give a made refund back. A later attempt that took the refund over records it.
   */
  private async completeRefund(paymentId: string, refundId: string, attempt: RefundAttempt): Promise<void> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { [KEY]: paymentId },
          UpdateExpression: 'ADD completedRefundIds :refundIds REMOVE #holder',
          ConditionExpression: '#holder = :owner',
          ExpressionAttributeNames: { '#holder': attempt.holder },
          ExpressionAttributeValues: { ':owner': attempt.owner, ':refundIds': new Set([refundId]) },
        }),
      );
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
    }
  }

  /**
   * One guarded state change (`transition`), no read first: from PAID or PARTIALLY_REFUNDED, only if
   * this refund id was not applied yet and the refund fits what is left. The new status depends on
   * whether the refund uses up the payment, so the write states its assumption (`refundableAmount >
   * :amount` → partial, `= :amount` → full); a refused write returns the current item, which says
   * which one applies, or that an earlier attempt of this same request already applied it: this
   * attempt then takes the refund over (`attempt.holder`), so that the earlier one, should it still
   * end with a provider failure, does not give back a refund this attempt completes.
   */
  private async applyRefund(paymentId: string, refundId: string, amount: number, currency: string | undefined, attempt: RefundAttempt): Promise<StoredPayment> {
    // The currency is part of the guarded write, so a refund in another currency changes nothing, with no read first.
    const sameCurrency =
      currency === undefined ? { expression: '', values: {} } : { expression: ' AND #currency = :currency', values: { ':currency': currency } };
    let full = false;
    for (let round = 0; round < 5; round++) {
      try {
        const update = transition({
          TableName: this.tableName,
          Key: { [KEY]: paymentId },
          from: ['PAID', 'PARTIALLY_REFUNDED'],
          to: full ? 'REFUNDED' : 'PARTIALLY_REFUNDED',
          set: { [attempt.holder]: attempt.owner, [refundAmountAttribute(refundId)]: amount },
          add: { refundableAmount: -amount, refundedAmount: amount, refundIds: new Set([refundId]) },
          condition: {
            expression: `refundableAmount ${full ? '=' : '>'} :amount AND NOT contains(refundIds, :refundId)${sameCurrency.expression}`,
            ...(currency === undefined ? {} : { names: { '#currency': 'currency' } }),
            values: { ':amount': amount, ':refundId': refundId, ...sameCurrency.values },
          },
        });
        const out = await this.doc.send(new UpdateCommand({ ...update, ReturnValues: 'ALL_NEW', ReturnValuesOnConditionCheckFailure: 'ALL_OLD' }));
        return out.Attributes as StoredPayment;
      } catch (error) {
        if (!isConditionFailure(error)) throw error;
        const current = error.Item ? (unmarshall(error.Item) as StoredPayment) : undefined;
        if (current === undefined) throw new PaymentError('NOT_FOUND', `Payment ${paymentId} does not exist.`);
        // Before all else: no refund in another currency was ever made, whatever this key did before.
        if (currency !== undefined && current.currency !== currency) {
          throw new PaymentError('CURRENCY_MISMATCH', `The payment is in ${current.currency}; a refund of it cannot be in ${currency}.`);
        }
        // The refund this key made (or applied) was of another amount: answering it as this one's would state a refund never made.
        const made = (current as StoredPayment & Record<string, unknown>)[refundAmountAttribute(refundId)];
        if (typeof made === 'number' && made !== amount) {
          throw new PaymentError('REFUND_KEY_REUSED', `This Idempotency-Key made a refund of ${made}, not ${amount}; use a new key for a new refund.`);
        }
        if (current.completedRefundIds?.has(refundId)) return current;
        // Applied by an earlier attempt that crashed or timed out before completing.
        if (current.refundIds?.has(refundId) && (await this.holdRefund(paymentId, refundId, attempt))) return current;
        if (current.refundIds?.has(refundId)) continue; // the earlier attempt gave it back meanwhile: apply it again
        if (current.refundableAmount < amount) {
          throw new PaymentError('REFUND_EXCEEDS_PAYMENT', `The refund exceeds what is left to refund (${current.refundableAmount} of ${current.amount}).`);
        }
        full = current.refundableAmount === amount;
      }
    }
    throw new Error(`Payment ${paymentId} changed under every refund attempt; try again.`);
  }

  /**
   * Makes `attempt` the holder of an applied refund; false when the refund is no longer applied, or
   * is made already (an earlier attempt completed it since it was read): nothing is left to hold.
   */
  private async holdRefund(paymentId: string, refundId: string, attempt: RefundAttempt): Promise<boolean> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { [KEY]: paymentId },
          UpdateExpression: 'SET #holder = :owner',
          ConditionExpression: 'contains(refundIds, :refundId) AND NOT contains(completedRefundIds, :refundId)',
          ExpressionAttributeNames: { '#holder': attempt.holder },
          ExpressionAttributeValues: { ':owner': attempt.owner, ':refundId': refundId },
        }),
      );
      return true;
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
      return false;
    }
  }

  /**
   * Gives a refund's amount back, once, and only while this attempt holds it: the refund entry is
   * removed in the same conditional write. A refund another attempt took over is that attempt's:
   * false then, true once the amount is back (by this write or an earlier one).
   */
  private async revertRefund(paymentId: string, refundId: string, amount: number, toPaid: boolean, attempt: RefundAttempt): Promise<boolean> {
    for (let round = 0; round < 5; round++) {
      try {
        await this.doc.send(
          new UpdateCommand({
            TableName: this.tableName,
            Key: { [KEY]: paymentId },
            UpdateExpression:
              'SET refundableAmount = refundableAmount + :amount, refundedAmount = refundedAmount - :amount, #status = :status REMOVE #holder, #refundAmount DELETE refundIds :refundIds',
            ConditionExpression: `contains(refundIds, :refundId) AND NOT contains(completedRefundIds, :refundId) AND #holder = :owner AND ${toPaid ? 'refundedAmount = :amount' : 'refundedAmount > :amount'}`,
            ExpressionAttributeNames: { '#status': 'status', '#holder': attempt.holder, '#refundAmount': refundAmountAttribute(refundId) },
            ExpressionAttributeValues: {
              ':owner': attempt.owner,
              ':amount': amount,
              ':status': toPaid ? 'PAID' : 'PARTIALLY_REFUNDED',
              ':refundId': refundId,
              ':refundIds': new Set([refundId]),
            },
            ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
          }),
        );
        return true;
      } catch (error) {
        if (!isConditionFailure(error)) throw error;
        const current = error.Item ? (unmarshall(error.Item) as StoredPayment & Record<string, unknown>) : undefined;
        if (!current?.refundIds?.has(refundId)) return true; // already given back
        // Made by another attempt, or taken over by a later one, which answers for it.
        if (current.completedRefundIds?.has(refundId) || current[attempt.holder] !== attempt.owner) return false;
        toPaid = current.refundedAmount === amount;
      }
    }
    throw new Error(`Could not revert refund ${refundId} of payment ${paymentId}.`);
  }
}
