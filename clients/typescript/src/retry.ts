/** Retries with capped exponential back-off and full jitter. */

/** Statuses worth retrying: overload/timeout answers and proxies in between. */
export const RETRYABLE_STATUSES: ReadonlySet<number> = new Set([429, 502, 503, 504]);

export interface RetryOptions {
  /** Attempts including the first; `Infinity` retries forever (feed readers). Default 5. */
  maxAttempts?: number;
  /** Ceiling of the first retry's delay; doubles per retry. Default 200 ms. */
  initialDelayMs?: number;
  /** Largest delay. Default 30 s. */
  maxDelayMs?: number;
  /** Replaceable for tests. */
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

export class RetryPolicy {
  readonly maxAttempts: number;
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
  readonly sleep: (ms: number) => Promise<void>;
  private readonly random: () => number;

  constructor(options: RetryOptions = {}) {
    this.maxAttempts = options.maxAttempts ?? 5;
    this.initialDelayMs = options.initialDelayMs ?? 200;
    this.maxDelayMs = options.maxDelayMs ?? 30_000;
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.random = options.random ?? Math.random;
  }

  /** Delay before retry `retry` (1-based): uniform in [0, min(max, initial * 2^(retry-1))],
   * raised to `Retry-After` (capped) when the server sent one. */
  delayMs(retry: number, retryAfterMs?: number): number {
    const ceiling = Math.min(this.maxDelayMs, this.initialDelayMs * 2 ** Math.max(0, retry - 1));
    let delay = this.random() * ceiling;
    if (retryAfterMs !== undefined) delay = Math.max(delay, Math.min(retryAfterMs, this.maxDelayMs));
    return delay;
  }

  givesUpAfter(attempt: number): boolean {
    return attempt >= this.maxAttempts;
  }
}
