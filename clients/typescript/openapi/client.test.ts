// A client generated from segd's OpenAPI document, used against a real `segd serve` on
// loopback. `npm run test:openapi` writes the document from the binary (`segd openapi`),
// generates `generated/segd-api.ts` with openapi-typescript, type-checks this file
// against it (tsc) and runs it with openapi-fetch: every path, parameter, body and
// answer below is typed by the generated `paths`, so a drifted document fails to compile
// or fails an assertion.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import createClient from "openapi-fetch";
import type { components, paths } from "./generated/segd-api.js";
import { ADMIN, READ, SegdServer, WRITE } from "../test/harness.js";

type Change = components["schemas"]["Change"];

let server: SegdServer;

before(async () => {
  server = await SegdServer.start();
});
after(async () => {
  await server?.stop();
});

function client(authorization?: string) {
  return createClient<paths>({ baseUrl: server.url, headers: authorization ? { authorization } : {} });
}

const basic = (key: string) => `Basic ${Buffer.from(`${key}:`).toString("base64")}`;

test("the served document is the one the client was generated from", async () => {
  const here = dirname(fileURLToPath(import.meta.url));
  // dist-openapi/openapi/ → openapi/generated/openapi.json
  const generatedFrom = JSON.parse(readFileSync(join(here, "..", "..", "openapi", "generated", "openapi.json"), "utf8"));
  const served = await client().GET("/openapi.json");
  assert.equal(served.response.status, 200);
  assert.deepEqual(served.data, generatedFrom);
});

test("create a segment, ingest, check membership and the change feed through the generated client", async () => {
  const admin = client(`Bearer ${ADMIN}`);
  const writer = client(basic(WRITE));
  const reader = client(`Bearer ${READ}`);

  const created = await admin.POST("/v1/segments", {
    body: { name: "openapi_pro", rule: 'plan = "pro"', description: "made by the generated client" },
  });
  assert.equal(created.response.status, 201, JSON.stringify(created.error));
  const segment = created.data!;
  assert.equal(segment.name, "openapi_pro");
  assert.equal(segment.count, 0);

  // Ingest: a single message with Basic auth, then a batch with the write key in the body.
  const identified = await writer.POST("/v1/identify", { body: { userId: "ts_u1", traits: { plan: "pro" } } });
  assert.equal(identified.data?.success, true, JSON.stringify(identified.error));
  const batched = await client().POST("/v1/b", {
    body: {
      writeKey: WRITE,
      batch: [
        { type: "identify", userId: "ts_u2", traits: { plan: "pro" } },
        { type: "identify", userId: "ts_u3", traits: { plan: "free" } },
      ],
    },
  });
  assert.equal(batched.data?.success, true, JSON.stringify(batched.error));

  // Membership lookups with path parameters.
  const member = await reader.GET("/v1/segments/{id}/members/{profile}", {
    params: { path: { id: String(segment.id), profile: "ts_u1" } },
  });
  assert.equal(member.data?.member, true, JSON.stringify(member.error));
  const outsider = await reader.GET("/v1/segments/{id}/members/{profile}", {
    params: { path: { id: "openapi_pro", profile: "ts_u3" } },
  });
  assert.equal(outsider.data?.member, false);
  const of = await reader.GET("/v1/profiles/{id}/segments", { params: { path: { id: "ts_u2" } } });
  assert.deepEqual(of.data?.segments.map((entry) => entry.name), ["openapi_pro"]);

  // Query parameters: a page of members, then the change feed from the start.
  const page = await admin.GET("/v1/segments/{id}/members", {
    params: { path: { id: "openapi_pro" }, query: { limit: 1 } },
  });
  assert.equal(page.data?.members.length, 1, JSON.stringify(page.error));
  assert.ok(page.data?.next_cursor);
  const rest = await admin.GET("/v1/segments/{id}/members", {
    params: { path: { id: "openapi_pro" }, query: { limit: 10, cursor: page.data!.next_cursor! } },
  });
  assert.deepEqual([...page.data!.members, ...rest.data!.members].sort(), ["ts_u1", "ts_u2"]);
  assert.equal(rest.data?.next_cursor, null);
  const changes = await reader.GET("/v1/changes", {
    params: { query: { after: 0, segment: "openapi_pro", limit: 100, wait_ms: 0 } },
  });
  const entered: Change[] = changes.data?.changes.filter((change) => change.kind === "entered") ?? [];
  assert.deepEqual(entered.map((change) => change.profile).sort(), ["ts_u1", "ts_u2"]);

  // A preview with sample_size, a bulk check, and a typed error body.
  const preview = await admin.POST("/v1/segments/preview", { body: { rule: 'plan = "free"', sample_size: 5 } });
  assert.deepEqual(preview.data?.sample, ["ts_u3"]);
  const bulk = await reader.POST("/v1/membership", { body: { profiles: ["ts_u1", "ts_u3"], segments: ["openapi_pro"] } });
  // The operation answers JSON or text/plain (the compact form); a JSON request gets JSON.
  const answer = bulk.data;
  assert.ok(answer !== undefined && typeof answer !== "string", "a JSON bulk check answers JSON");
  assert.deepEqual(answer.results, { ts_u1: { openapi_pro: true }, ts_u3: { openapi_pro: false } });
  const missing = await reader.GET("/v1/segments/{id}/members/{profile}", {
    params: { path: { id: "no_such_segment", profile: "ts_u1" } },
  });
  assert.equal(missing.response.status, 404);
  assert.equal(missing.error?.error.code, "segment_not_found");
});
