/**
 * Events that are never the same twice: hashed whole (no `key` option), their retries never match,
 * and the handler runs on every one of them. Lambda delivers a retry of an async invocation (and of
 * its record sent to a Lambda destination), an EventBridge, SNS or S3 event unchanged; not these,
 * nor an EventBridge event an archive replays.
 */

/**
 * What makes `input` differ between deliveries of one request, or `undefined` when it is not such
 * an event. @internal
 */
export function volatileEventOf(input: unknown): string | undefined {
  if (typeof input !== 'object' || input === null) return undefined;
  const event = input as { readonly requestContext?: unknown; readonly Records?: unknown; readonly eventSource?: unknown; readonly httpMethod?: unknown };
  // A Lambda destination's event (an asynchronous invocation's record) has a requestContext too, that
  // names the function invoked: Lambda delivers its retries unchanged, as it does the invocation's.
  const context = event.requestContext as { readonly functionArn?: unknown; readonly http?: { readonly method?: unknown } | null } | null | undefined;
  if (typeof context === 'object' && context !== null && typeof context.functionArn !== 'string') {
    // Only the requests httpIdempotency reads (REST and HTTP APIs, Function URLs, load balancers) are sent to it.
    if (typeof event.httpMethod === 'string' || typeof context.http?.method === 'string') {
      return 'an HTTP request, whose id, time and trace header differ on every retry: use httpIdempotency, or select a key';
    }
    return 'a request (an API Gateway WebSocket message, a VPC Lattice request) whose id and time differ on every retry: select a key';
  }
  // An EventBridge archive replay sends each event again with a `replay-name` it did not have.
  if (typeof (input as { readonly 'replay-name'?: unknown })['replay-name'] === 'string') {
    return 'an EventBridge event replayed from an archive, which carries a `replay-name` the original did not: select a key from its `detail` (an order id)';
  }
  // Amazon MQ (ActiveMQ, RabbitMQ) marks each message of a retried batch `redelivered`.
  if (event.eventSource === 'aws:mq' || event.eventSource === 'aws:rmq') {
    return 'an Amazon MQ batch, whose messages are marked redelivered on every retry: make the work of each message idempotent (makeIdempotent, keyed by its message id)';
  }
  // An EventBridge pipe delivers a batch as a bare array of its messages.
  const records = Array.isArray(input) ? input : event.Records;
  const batch = Array.isArray(records);
  // One message of a batch too, as a loop over `Records` passes it on.
  if (((batch ? records[0] : input) as { readonly eventSource?: unknown } | undefined)?.eventSource !== 'aws:sqs') return undefined;
  return batch
    ? 'an SQS batch, whose receipt handles differ on every delivery: use idempotentBatch, or select a key'
    : 'an SQS message, whose receipt handle and receive count differ on every delivery: select a key (its messageId or body)';
}
