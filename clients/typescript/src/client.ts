/** HTTP client for segd's read-key API: membership checks and the change feed. */
import type { Checkpoint } from "./checkpoint.js";
import { FellBehind, SegdError } from "./errors.js";
import { RETRYABLE_STATUSES, RetryPolicy, type RetryOptions } from "./retry.js";
import { parseSse } from "./sse.js";

/** segd's own bounds (README, Limits). */
export const MAX_BULK_PAIRS = 100_000;
export const MAX_WAIT_MS = 25_000;
/** SSE keep-alives arrive every 15 s; silence for longer means a dead connection. */
export const SSE_READ_TIMEOUT_MS = 45_000;

export type SegmentRef = number | string;

/** One membership change from the change log. */
export interface Change {
  sequence: number;
  time_ms: number;
  segment_id: number;
  segment_version: number;
  profile: string;
  kind: "entered" | "exited";
  cause: unknown;
}

export interface ChangesPage {
  changes: Change[];
  head: number;
  next_after: number;
}

export interface ClientOptions {
  baseUrl: string;
  /** Read key (or admin key), sent as `Bearer`. */
  key?: string;
  /** Per-request timeout (long-polls add their wait). Default 10 s. */
  timeoutMs?: number;
  retry?: RetryOptions | RetryPolicy;
}

export interface FeedOptions {
  /** Start after this sequence when the checkpoint holds none; default: the current head. */
  after?: number;
  segment?: SegmentRef;
  /** Loaded at start; a change's sequence is saved once the loop body that got it returns. */
  checkpoint?: Checkpoint;
  /** Stops the feed (the iterator returns). */
  signal?: AbortSignal;
}

export interface PollOptions extends FeedOptions {
  waitMs?: number;
  limit?: number;
  /** Stop after this many polls (tests, batch jobs). */
  maxPolls?: number;
}

export interface StreamOptions extends FeedOptions {
  readTimeoutMs?: number;
}

function sleepUnlessAborted(policy: RetryPolicy, ms: number, signal?: AbortSignal): Promise<void> {
  if (!signal) return policy.sleep(ms);
  if (signal.aborted) return Promise.resolve();
  return Promise.race([
    policy.sleep(ms),
    new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true })),
  ]);
}

export class SegdClient {
  readonly baseUrl: string;
  readonly key?: string;
  readonly timeoutMs: number;
  readonly retry: RetryPolicy;

  constructor(options: ClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.key = options.key;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.retry = options.retry instanceof RetryPolicy ? options.retry : new RetryPolicy(options.retry);
  }

  // -- transport ------------------------------------------------------------------------

  private url(path: string, query?: Record<string, string | number | undefined>): string {
    const url = new URL(this.baseUrl + path);
    for (const [name, value] of Object.entries(query ?? {})) {
      if (value !== undefined) url.searchParams.set(name, String(value));
    }
    return url.toString();
  }

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    const headers: Record<string, string> = { accept: "application/json", "user-agent": "segd-client-node/0.1" };
    if (this.key) headers.authorization = `Bearer ${this.key}`;
    return { ...headers, ...extra };
  }

  private static async error(response: Response): Promise<SegdError> {
    const text = await response.text();
    let error: Record<string, unknown> = {};
    try {
      error = (JSON.parse(text) as { error: Record<string, unknown> }).error ?? {};
    } catch {
      error = { message: text.slice(0, 200) };
    }
    const code = typeof error.code === "string" ? error.code : undefined;
    const message = String(error.message ?? "");
    if (code === "fell_behind") {
      return new FellBehind(message, Number(error.requested_after ?? 0), Number(error.oldest_available ?? 0), response.status, error);
    }
    return new SegdError(`segd answered ${response.status} ${code}: ${message}`, response.status, code, error);
  }

  /** Sends with retries on connection errors and 429/502/503/504; returns a 2xx response. */
  private async send(url: string, init: RequestInit, timeoutMs: number, signal?: AbortSignal): Promise<Response> {
    for (let attempt = 1; ; attempt++) {
      let last: SegdError;
      let retryAfterMs: number | undefined;
      const signals = [AbortSignal.timeout(timeoutMs), ...(signal ? [signal] : [])];
      try {
        const response = await fetch(url, { ...init, signal: AbortSignal.any(signals) });
        if (response.ok) return response;
        const failure = await SegdClient.error(response);
        if (!RETRYABLE_STATUSES.has(response.status)) throw failure;
        last = failure;
        const header = response.headers.get("retry-after");
        if (header && /^\d+$/.test(header.trim())) retryAfterMs = Number(header.trim()) * 1000;
      } catch (error) {
        if (error instanceof SegdError) throw error;
        if (signal?.aborted) throw error;
        last = new SegdError(`could not reach segd at ${this.baseUrl}: ${(error as Error).message}`);
      }
      if (this.retry.givesUpAfter(attempt)) throw last;
      await sleepUnlessAborted(this.retry, this.retry.delayMs(attempt, retryAfterMs), signal);
    }
  }

  /** One JSON request with retries; resolves to the decoded body. */
  async request<T = unknown>(
    method: string,
    path: string,
    options: { query?: Record<string, string | number | undefined>; body?: unknown; timeoutMs?: number; signal?: AbortSignal } = {},
  ): Promise<T> {
    const init: RequestInit = { method, headers: this.headers() };
    if (options.body !== undefined) {
      init.body = JSON.stringify(options.body);
      init.headers = this.headers({ "content-type": "application/json" });
    }
    const response = await this.send(this.url(path, options.query), init, options.timeoutMs ?? this.timeoutMs, options.signal);
    return (await response.json()) as T;
  }

  // -- membership -----------------------------------------------------------------------

  /** The segments `profile` is in; SegdError `profile_not_found` for an unknown profile. */
  async segmentsOf(profile: string): Promise<{ id: number; name: string }[]> {
    const answer = await this.request<{ segments: { id: number; name: string }[] }>(
      "GET",
      `/v1/profiles/${encodeURIComponent(profile)}/segments`,
    );
    return answer.segments;
  }

  /** Whether `profile` is in `segment` (id or name); unknown profiles are not. */
  async isMember(segment: SegmentRef, profile: string): Promise<boolean> {
    const answer = await this.request<{ member: boolean }>(
      "GET",
      `/v1/segments/${encodeURIComponent(String(segment))}/members/${encodeURIComponent(profile)}`,
    );
    return answer.member === true;
  }

  /** Bulk check: `{profile: {segment: bool}}` (segment keys as strings). Split into
   * requests of at most segd's 100,000 pairs each. */
  async membership(profiles: string[], segments: SegmentRef[]): Promise<Record<string, Record<string, boolean>>> {
    const results: Record<string, Record<string, boolean>> = {};
    if (segments.length === 0) {
      for (const profile of profiles) results[profile] = {};
      return results;
    }
    const perRequest = Math.max(1, Math.floor(MAX_BULK_PAIRS / segments.length));
    for (let start = 0; start < profiles.length; start += perRequest) {
      const answer = await this.request<{ results: Record<string, Record<string, boolean>> }>("POST", "/v1/membership", {
        body: { profiles: profiles.slice(start, start + perRequest), segments },
      });
      Object.assign(results, answer.results);
    }
    return results;
  }

  // -- change feed: long-poll -----------------------------------------------------------

  /** One long-poll read; rejects with {@link FellBehind} when retention dropped unseen changes. */
  async changes(options: { after?: number; segment?: SegmentRef; limit?: number; waitMs?: number; signal?: AbortSignal } = {}): Promise<ChangesPage> {
    const waitMs = options.waitMs ?? 0;
    if (waitMs < 0 || waitMs > MAX_WAIT_MS) throw new RangeError(`waitMs must be 0 to ${MAX_WAIT_MS}`);
    return this.request<ChangesPage>("GET", "/v1/changes", {
      query: { after: options.after ?? 0, segment: options.segment, limit: options.limit, wait_ms: waitMs },
      timeoutMs: this.timeoutMs + waitMs,
      signal: options.signal,
    });
  }

  /** The newest change's sequence (0 when there is none yet). */
  async head(): Promise<number> {
    try {
      return (await this.changes({ after: 0, limit: 1 })).head;
    } catch (error) {
      if (error instanceof FellBehind) return Number(error.details.head ?? error.oldestAvailable - 1);
      throw error;
    }
  }

  private async startPosition(options: FeedOptions): Promise<number> {
    const saved = await options.checkpoint?.load();
    if (saved !== undefined) return saved;
    return options.after ?? (await this.head());
  }

  /** Every change after the position, by long-poll, until `signal` aborts (or `maxPolls`). */
  async *iterChanges(options: PollOptions = {}): AsyncGenerator<Change> {
    let position = await this.startPosition(options);
    const waitMs = options.waitMs ?? MAX_WAIT_MS;
    for (let polls = 0; options.maxPolls === undefined || polls < options.maxPolls; polls++) {
      if (options.signal?.aborted) return;
      let page: ChangesPage;
      try {
        page = await this.changes({ after: position, segment: options.segment, limit: options.limit, waitMs, signal: options.signal });
      } catch (error) {
        if (options.signal?.aborted) return;
        throw error;
      }
      for (const change of page.changes) {
        yield change;
        await options.checkpoint?.save(change.sequence);
      }
      // With a segment filter, next_after also skips other segments' changes.
      if (page.next_after > position) {
        position = page.next_after;
        if (page.changes.length === 0) await options.checkpoint?.save(position);
      }
    }
  }

  // -- change feed: Server-Sent Events --------------------------------------------------

  /** Every change after the position, pushed over SSE; reconnects with back-off after a
   * dropped connection, resuming with `Last-Event-ID`. Rejects with {@link FellBehind}. */
  async *streamChanges(options: StreamOptions = {}): AsyncGenerator<Change> {
    // Pin the position now: a reconnect before the first change must not skip any.
    let position = await this.startPosition(options);
    const readTimeoutMs = options.readTimeoutMs ?? SSE_READ_TIMEOUT_MS;
    let failures = 0;
    while (!options.signal?.aborted) {
      const connection = new AbortController();
      const stop = () => connection.abort();
      options.signal?.addEventListener("abort", stop, { once: true });
      let watchdog: NodeJS.Timeout | undefined;
      const arm = () => {
        clearTimeout(watchdog);
        watchdog = setTimeout(stop, readTimeoutMs);
      };
      try {
        arm();
        const response = await this.send(
          this.url("/v1/changes/stream", { segment: options.segment }),
          { headers: this.headers({ accept: "text/event-stream", "last-event-id": String(position) }) },
          readTimeoutMs,
          connection.signal,
        );
        const body = response.body as unknown as AsyncIterable<Uint8Array>;
        async function* watched(): AsyncGenerator<Uint8Array> {
          for await (const chunk of body) {
            arm();
            yield chunk;
          }
        }
        for await (const event of parseSse(watched())) {
          failures = 0;
          if (event.event === "change") {
            const change = JSON.parse(event.data) as Change;
            yield change;
            position = event.id !== undefined ? Number(event.id) : change.sequence;
            await options.checkpoint?.save(position);
          } else if (event.event === "fell_behind") {
            const detail = JSON.parse(event.data) as { requested_after?: number; oldest_available?: number; message?: string };
            throw new FellBehind(detail.message ?? "fell behind", detail.requested_after ?? position, detail.oldest_available ?? 0);
          }
        }
      } catch (error) {
        if (error instanceof SegdError) throw error;
        // a dropped or silent connection: reconnect below
      } finally {
        clearTimeout(watchdog);
        options.signal?.removeEventListener("abort", stop);
        connection.abort();
      }
      if (options.signal?.aborted) return;
      failures += 1;
      if (this.retry.givesUpAfter(failures)) throw new SegdError(`change stream from ${this.baseUrl} kept dropping`);
      await sleepUnlessAborted(this.retry, this.retry.delayMs(failures), options.signal);
    }
  }
}
