// Retries, back-off and failure answers against a scripted loopback stub (conditions a
// healthy segd does not produce on demand): 503 + Retry-After then success, giving up
// after maxAttempts, 410 fell_behind, an SSE connection dropped mid-stream resumed with
// Last-Event-ID, and bulk checks split to stay under segd's pair limit.
import assert from "node:assert/strict";
import { test } from "node:test";
import { FellBehind, RetryPolicy, SegdClient, SegdError } from "../src/index.js";
import { Stub, type Scripted } from "./harness.js";

const ok = (value: unknown): Scripted => ({ status: 200, headers: { "content-type": "application/json" }, body: JSON.stringify(value) });
const failure = (status: number, code: string, extra: Record<string, unknown> = {}): Scripted => ({
  status,
  headers: { "content-type": "application/json", "retry-after": "1" },
  body: JSON.stringify({ error: { code, message: code, ...extra } }),
});

function recordingPolicy(maxAttempts: number, sleeps: number[]): RetryPolicy {
  return new RetryPolicy({ maxAttempts, sleep: async (ms) => void sleeps.push(ms) });
}

test("delay is capped exponential with jitter", () => {
  let seed = 7;
  const random = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
  const policy = new RetryPolicy({ initialDelayMs: 100, maxDelayMs: 1000, random });
  for (const [retry, ceiling] of [[1, 100], [2, 200], [3, 400], [4, 800], [5, 1000], [30, 1000]]) {
    const delays = Array.from({ length: 200 }, () => policy.delayMs(retry!));
    assert.ok(delays.every((delay) => delay >= 0 && delay <= ceiling!));
    assert.ok(Math.max(...delays) > ceiling! / 2);
  }
  assert.ok(policy.delayMs(1, 700) >= 700);
  assert.ok(policy.delayMs(1, 99_000) <= 1000);
});

test("overload is retried until success", async () => {
  const stub = await Stub.start([failure(503, "overloaded"), failure(503, "overloaded"), ok({ member: true })]);
  const sleeps: number[] = [];
  try {
    const client = new SegdClient({ baseUrl: stub.url, key: "k", retry: recordingPolicy(5, sleeps) });
    assert.equal(await client.isMember("vip", "u1"), true);
  } finally {
    await stub.stop();
  }
  assert.equal(stub.seen.length, 3);
  assert.equal(sleeps.length, 2);
  assert.ok(sleeps.every((ms) => ms >= 1000)); // Retry-After: 1
  assert.equal(stub.seen[0]!.headers.authorization, "Bearer k");
});

test("gives up after maxAttempts", async () => {
  const stub = await Stub.start([failure(503, "overloaded"), failure(503, "overloaded"), failure(503, "overloaded")]);
  const sleeps: number[] = [];
  try {
    const client = new SegdClient({ baseUrl: stub.url, retry: recordingPolicy(3, sleeps) });
    await assert.rejects(client.isMember("vip", "u1"), (error: SegdError) => error.status === 503 && error.code === "overloaded");
  } finally {
    await stub.stop();
  }
  assert.equal(stub.seen.length, 3);
  assert.equal(sleeps.length, 2);
});

test("an unreachable server is retried then reported", async () => {
  const stub = await Stub.start([]);
  await stub.stop();
  const sleeps: number[] = [];
  const client = new SegdClient({ baseUrl: stub.url, retry: recordingPolicy(2, sleeps), timeoutMs: 2000 });
  await assert.rejects(client.isMember("vip", "u1"), /could not reach/);
  assert.equal(sleeps.length, 1);
});

test("fell_behind is its own error", async () => {
  const stub = await Stub.start([failure(410, "fell_behind", { requested_after: 3, oldest_available: 10, head: 20 })]);
  try {
    await assert.rejects(
      new SegdClient({ baseUrl: stub.url }).changes({ after: 3 }),
      (error: FellBehind) => error instanceof FellBehind && error.requestedAfter === 3 && error.oldestAvailable === 10,
    );
  } finally {
    await stub.stop();
  }
  assert.ok(stub.seen[0]!.path.startsWith("/v1/changes?after=3"));
});

const change = (sequence: number, profile: string) => ({
  sequence, time_ms: 1, segment_id: 1, segment_version: 1, profile, kind: "entered", cause: "event",
});
const sse = (...events: [number, string][]) =>
  ": keep-alive\n\n" + events.map(([sequence, profile]) => `id: ${sequence}\nevent: change\ndata: ${JSON.stringify(change(sequence, profile))}\n\n`).join("");

test("SSE reconnects with Last-Event-ID", async () => {
  const stream = { "content-type": "text/event-stream" };
  const fell = 'event: fell_behind\ndata: {"requested_after": 6, "oldest_available": 9, "message": "gone"}\n\n';
  // Each answer ends its connection: the client must reconnect.
  const stub = await Stub.start([
    { status: 200, headers: stream, body: sse([5, "a"], [6, "b"]) },
    { status: 200, headers: stream, body: sse([7, "c"]) },
    { status: 200, headers: stream, body: fell },
  ]);
  const sleeps: number[] = [];
  const received: [number, string][] = [];
  try {
    const client = new SegdClient({ baseUrl: stub.url, retry: recordingPolicy(5, sleeps) });
    await assert.rejects(
      (async () => {
        for await (const item of client.streamChanges({ after: 4 })) received.push([item.sequence, item.profile]);
      })(),
      (error: FellBehind) => error instanceof FellBehind && error.oldestAvailable === 9,
    );
  } finally {
    await stub.stop();
  }
  assert.deepEqual(received, [[5, "a"], [6, "b"], [7, "c"]]);
  assert.deepEqual(stub.seen.map((seen) => seen.headers["last-event-id"]), ["4", "6", "7"]);
  assert.equal(sleeps.length, 2);
});

test("bulk membership is split under the pair limit", async () => {
  const answer = (seen: { body: string }) => {
    const request = JSON.parse(seen.body) as { profiles: string[]; segments: string[] };
    const results: Record<string, Record<string, boolean>> = {};
    for (const profile of request.profiles) {
      results[profile] = Object.fromEntries(request.segments.map((segment) => [segment, profile.endsWith("0")]));
    }
    return JSON.stringify({ results, unknown_profiles: [] });
  };
  const stub = await Stub.start([{ status: 200, body: answer }, { status: 200, body: answer }]);
  const profiles = Array.from({ length: 60_000 }, (_, n) => `user-${n}`);
  let results: Record<string, Record<string, boolean>>;
  try {
    results = await new SegdClient({ baseUrl: stub.url }).membership(profiles, ["a", "b"]);
  } finally {
    await stub.stop();
  }
  assert.deepEqual(stub.seen.map((seen) => (JSON.parse(seen.body) as { profiles: string[] }).profiles.length), [50_000, 10_000]);
  assert.equal(Object.keys(results).length, 60_000);
  assert.deepEqual(results["user-10"], { a: true, b: true });
  assert.equal(results["user-11"]!.a, false);
});
