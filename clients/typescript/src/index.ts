/**
 * Consumer library for segd trigger systems: membership checks (single and bulk), the
 * change feed by long-poll and Server-Sent Events resumable from a saved position, webhook
 * signature verification (segd's `X-Segd-Signature` and Standard Webhooks), retries with
 * back-off.
 */
export { SegdClient, MAX_BULK_PAIRS, MAX_WAIT_MS } from "./client.js";
export type { Change, ChangesPage, ClientOptions, FeedOptions, PollOptions, StreamOptions, SegmentRef } from "./client.js";
export { FileCheckpoint, MemoryCheckpoint } from "./checkpoint.js";
export type { Checkpoint } from "./checkpoint.js";
export { FellBehind, SegdError, WebhookVerificationError } from "./errors.js";
export { RetryPolicy, RETRYABLE_STATUSES } from "./retry.js";
export type { RetryOptions } from "./retry.js";
export { signSegd, signStandard, verifySegdSignature, verifyStandardWebhook, verifyWebhook } from "./webhooks.js";
export type { HeaderSource, VerifyOptions } from "./webhooks.js";
