/** segd answered with an error (`{"error": {"code", "message", ...}}`), or could not be
 * reached after all retries (`status` undefined then). */
export class SegdError extends Error {
  constructor(
    message: string,
    readonly status?: number,
    readonly code?: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = "SegdError";
  }
}

/** The change log's retention dropped changes this reader had not seen. Re-read the
 * segments' members (the current truth), then continue from the head. */
export class FellBehind extends SegdError {
  constructor(
    message: string,
    readonly requestedAfter: number,
    readonly oldestAvailable: number,
    status?: number,
    details: Record<string, unknown> = {},
  ) {
    super(message, status, "fell_behind", details);
    this.name = "FellBehind";
  }
}

/** A webhook delivery's signature is missing, malformed, wrong or too old. */
export class WebhookVerificationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "WebhookVerificationError";
  }
}
