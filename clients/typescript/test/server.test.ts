// The client against a real `segd serve` on loopback: membership (single, bulk, unknown
// profiles, errors not retried), the change feed by long-poll and SSE resumed from a saved
// position, and a webhook delivery to a loopback receiver verified with the library.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { FileCheckpoint, RetryPolicy, SegdClient, SegdError, WebhookVerificationError, verifyWebhook } from "../src/index.js";
import { ADMIN, READ, SegdServer } from "./harness.js";

let server: SegdServer;
let scratch: string;
let counter = 0;

before(async () => {
  server = await SegdServer.start();
  scratch = mkdtempSync(join(tmpdir(), "segd-ts-checkpoints-"));
});
after(async () => {
  await server?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

async function newSegment(threshold: number): Promise<[string, number]> {
  const name = `ts_ltv_over_${threshold}_${++counter}`;
  const created = await server.call<{ id: number }>("POST", "/v1/segments", { name, rule: `ltv > ${threshold}` });
  return [name, created.id];
}

const clientFor = (retry?: RetryPolicy) => new SegdClient({ baseUrl: server.url, key: READ, retry });

async function take<T>(iterator: AsyncGenerator<T>, count: number): Promise<T[]> {
  const items: T[] = [];
  while (items.length < count) {
    const next = await iterator.next();
    assert.equal(next.done, false, "the feed ended early");
    items.push(next.value as T);
  }
  return items;
}

test("membership, single and bulk", async () => {
  const [name, id] = await newSegment(100);
  await server.identify("ts-rich", { ltv: 500 });
  await server.identify("ts-poor", { ltv: 5 });
  const client = clientFor();
  assert.ok((await client.segmentsOf("ts-rich")).some((entry) => entry.name === name));
  assert.ok(!(await client.segmentsOf("ts-poor")).some((entry) => entry.name === name));
  assert.equal(await client.isMember(name, "ts-rich"), true);
  assert.equal(await client.isMember(id, "ts-poor"), false);
  assert.equal(await client.isMember(name, "ts-nobody"), false);
  assert.deepEqual(await client.membership(["ts-rich", "ts-poor", "ts-nobody"], [name, id]), {
    "ts-rich": { [name]: true, [String(id)]: true },
    "ts-poor": { [name]: false, [String(id)]: false },
    "ts-nobody": { [name]: false, [String(id)]: false },
  });
});

test("errors are raised, not retried", async () => {
  const sleeps: number[] = [];
  const client = clientFor(new RetryPolicy({ maxAttempts: 5, sleep: async (ms) => void sleeps.push(ms) }));
  await assert.rejects(client.segmentsOf("ts-never-seen"), (error: SegdError) => error.status === 404 && error.code === "profile_not_found");
  await assert.rejects(new SegdClient({ baseUrl: server.url, key: "wrong-key" }).segmentsOf("ts-rich"), (error: SegdError) => error.status === 401);
  assert.deepEqual(sleeps, []);
});

test("long-poll resumes from a checkpoint", async () => {
  const [, id] = await newSegment(1000);
  const client = clientFor();
  const checkpoint = new FileCheckpoint(join(scratch, "long-poll"));
  await checkpoint.save(await client.head());
  for (const user of ["ts-lp-1", "ts-lp-2", "ts-lp-3"]) await server.identify(user, { ltv: 2000 });

  const feed = client.iterChanges({ segment: id, checkpoint, waitMs: 0, maxPolls: 5 });
  const [first, second] = await take(feed, 2);
  assert.deepEqual([first, second].map((c) => [c!.profile, c!.kind, c!.segment_id]), [
    ["ts-lp-1", "entered", id],
    ["ts-lp-2", "entered", id],
  ]);
  await feed.return(undefined); // the consumer stops while handling the second change
  assert.equal(await checkpoint.load(), first!.sequence);

  // A restarted consumer continues after the confirmed change (at least once).
  const resumed = client.iterChanges({ segment: id, checkpoint, waitMs: 0, maxPolls: 5 });
  assert.deepEqual((await take(resumed, 2)).map((c) => c.profile), ["ts-lp-2", "ts-lp-3"]);
  await resumed.return(undefined);
  assert.equal(await checkpoint.load(), second!.sequence);
});

test("long-poll waits for the next change", async () => {
  const [, id] = await newSegment(3000);
  const client = clientFor();
  const head = await client.head();
  const timer = setTimeout(() => void server.identify("ts-wait", { ltv: 4000 }), 300);
  try {
    const feed = client.iterChanges({ after: head, segment: id, waitMs: 10_000, maxPolls: 2 });
    const [change] = await take(feed, 1);
    await feed.return(undefined);
    assert.deepEqual([change!.profile, change!.kind], ["ts-wait", "entered"]);
  } finally {
    clearTimeout(timer);
  }
});

test("SSE resumes with Last-Event-ID from a checkpoint", async () => {
  const [, id] = await newSegment(5000);
  const client = clientFor(new RetryPolicy({ maxAttempts: 3 }));
  const checkpoint = new FileCheckpoint(join(scratch, "sse"));
  await checkpoint.save(await client.head());
  await server.identify("ts-sse-1", { ltv: 6000 });

  const stop = new AbortController();
  let stream = client.streamChanges({ segment: id, checkpoint, readTimeoutMs: 20_000, signal: stop.signal });
  const [first] = await take(stream, 1);
  assert.deepEqual([first!.profile, first!.kind], ["ts-sse-1", "entered"]);
  await server.identify("ts-sse-1", { ltv: 1 }); // exits while the stream is open
  const [second] = await take(stream, 1);
  assert.deepEqual([second!.profile, second!.kind], ["ts-sse-1", "exited"]);
  await stream.return(undefined);
  assert.equal(await checkpoint.load(), first!.sequence);

  await server.identify("ts-sse-2", { ltv: 7000 });
  stream = client.streamChanges({ segment: id, checkpoint, readTimeoutMs: 20_000, signal: stop.signal });
  const [again, third] = await take(stream, 2);
  await stream.return(undefined);
  stop.abort();
  assert.deepEqual(again, second);
  assert.deepEqual([third!.profile, third!.kind], ["ts-sse-2", "entered"]);
  assert.equal(await checkpoint.load(), second!.sequence);
});

test("a webhook delivery verifies", async () => {
  const [, id] = await newSegment(8000);
  const deliveries: { headers: IncomingHttpHeaders; body: Buffer }[] = [];
  let arrived: () => void = () => undefined;
  const delivered = new Promise<void>((resolve) => (arrived = resolve));
  const receiver = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      deliveries.push({ headers: request.headers, body: Buffer.concat(chunks) });
      response.writeHead(200).end();
      arrived();
    });
  });
  await new Promise<void>((done) => receiver.listen(0, "127.0.0.1", done));
  try {
    const client = clientFor();
    // Registration is an admin operation; segd generates the secret (`whsec_...`) and shows it once.
    const admin = new SegdClient({ baseUrl: server.url, key: ADMIN });
    const hook = await admin.request<{ id: number; secret: string }>("POST", "/v1/webhooks", {
      body: { url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`, segments: [id], after: await client.head() },
    });
    const secret = hook.secret;
    assert.ok(secret.startsWith("whsec_"));
    await server.identify("ts-hook", { ltv: 9000 });
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([delivered, new Promise((_, reject) => (timer = setTimeout(() => reject(new Error("no delivery in 30 s")), 30_000)))]);
    clearTimeout(timer);
    const { headers, body } = deliveries[0]!;
    verifyWebhook(secret, headers, body); // throws when the signature is wrong
    const payload = JSON.parse(body.toString()) as { webhook_id: number; changes: { profile: string; kind: string }[] };
    assert.equal(payload.webhook_id, hook.id);
    assert.deepEqual(payload.changes.map((c) => [c.profile, c.kind]), [["ts-hook", "entered"]]);
    assert.throws(() => verifyWebhook(secret, headers, Buffer.from(body.toString().replace("entered", "exited"))), WebhookVerificationError);
    assert.throws(() => verifyWebhook("whsec_" + "A".repeat(32), headers, body), WebhookVerificationError);
    await admin.request("DELETE", `/v1/webhooks/${hook.id}`);
  } finally {
    receiver.closeAllConnections();
    await new Promise((done) => receiver.close(done));
  }
});
