/** The demo's stand-ins for time and for the card processor, so scenarios can move the clock and break the provider. */
import { randomUUID } from 'node:crypto';
import { ChargeDeclined, type PaymentProvider } from '../infra/functions/payment-service.js';

/** A clock that only moves when told to: a retry "30 minutes later" takes no time. */
export class DemoClock {
  private current: number;
  constructor(start = Date.now()) {
    this.current = start;
  }
  readonly now = (): number => this.current;
  advance(millis: number): void {
    this.current += millis;
  }
}

type Fault = 'fail' | 'hang' | 'decline';

/**
 * A payment provider that counts what it really did and fails or hangs on demand. Like real card
 * processors, it answers a repeated idempotency key with the first result instead of charging again.
 */
export class CountingProvider implements PaymentProvider {
  readonly charges: Array<{ paymentId: string; amount: number }> = [];
  readonly refunds: Array<{ paymentId: string; amount: number }> = [];
  private readonly byKey = new Map<string, { chargeId: string } | { providerRefundId: string }>();
  /** Charge attempts, including failed and hung ones. */
  attempts = 0;
  private readonly faults: Fault[] = [];
  private readonly hung: Array<(error: Error) => void> = [];
  private held: Promise<unknown> = Promise.resolve();

  /** The next charge fails (a 5xx from the card network), hangs until {@link releaseHung}, or is declined (charging nothing). */
  inject(fault: Fault): void {
    this.faults.push(fault);
  }

  /** Charges wait until `until` settles, as with a slow card network, for as long as a scenario needs. */
  holdCharges(until: Promise<unknown>): void {
    this.held = until;
  }

  /** Ends hung calls with an error: the Lambda that made them was stopped, so they never reached the provider. */
  releaseHung(): void {
    for (const reject of this.hung.splice(0)) reject(new Error('the invocation timed out before the card network answered'));
  }

  async charge(request: { idempotencyKey: string; paymentId: string; amount: number; currency: string }): Promise<{ chargeId: string }> {
    this.attempts++;
    const fault = this.faults.shift();
    if (fault === 'hang') return new Promise((_resolve, reject) => this.hung.push(reject));
    await this.held;
    if (fault === 'fail') throw new Error('card network unavailable');
    if (fault === 'decline') throw new ChargeDeclined('the card network declined the charge');
    const seen = this.byKey.get(request.idempotencyKey);
    if (seen && 'chargeId' in seen) return seen;
    this.charges.push({ paymentId: request.paymentId, amount: request.amount });
    const charged = { chargeId: `ch_${randomUUID()}` };
    this.byKey.set(request.idempotencyKey, charged);
    return charged;
  }

  async refund(request: { idempotencyKey: string; paymentId: string; amount: number }): Promise<{ providerRefundId: string }> {
    const seen = this.byKey.get(request.idempotencyKey);
    if (seen && 'providerRefundId' in seen) return seen;
    this.refunds.push({ paymentId: request.paymentId, amount: request.amount });
    const refunded = { providerRefundId: `re_${randomUUID()}` };
    this.byKey.set(request.idempotencyKey, refunded);
    return refunded;
  }
}
