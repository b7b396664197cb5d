// Webhook signature verification: published test vectors for both schemes, tampering,
// wrong secrets, replays (old timestamps) and malformed headers all rejected.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  WebhookVerificationError,
  signSegd,
  signStandard,
  verifySegdSignature,
  verifyStandardWebhook,
  verifyWebhook,
} from "../src/index.js";

// Standard Webhooks' published vector (the standard-webhooks libraries' test suites).
const STD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const STD_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const STD_TIMESTAMP = 1614265330;
const STD_BODY = '{"test": 2432232314}';
const STD_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
// segd's own vector, the same as the server's unit test in src/http/webhooks.rs.
const SEGD_SIGNATURE = "t=1,v1=1122767b193110cfec322b6f199b599edbf608ed087f2d27afb0b97d99523908";

const stdHeaders = (signature = STD_SIGNATURE, timestamp = STD_TIMESTAMP, id = STD_ID) => ({
  "webhook-id": id,
  "webhook-timestamp": String(timestamp),
  "webhook-signature": signature,
});

test("standard vector signs and verifies", () => {
  assert.equal(signStandard(STD_SECRET, STD_ID, STD_TIMESTAMP, STD_BODY), STD_SIGNATURE);
  verifyStandardWebhook(STD_SECRET, stdHeaders(), STD_BODY, { nowS: STD_TIMESTAMP + 10 });
  // fetch Headers, several signatures (key rotation), bytes body, the dispatcher.
  const headers = new Headers(stdHeaders(`v1,bm90LWl0 ${STD_SIGNATURE}`));
  verifyWebhook(STD_SECRET, headers, new TextEncoder().encode(STD_BODY), { nowS: STD_TIMESTAMP });
});

test("standard scheme rejects tampering, wrong secrets and replays", () => {
  const cases: [Record<string, string>, string][] = [
    [stdHeaders(), '{"test": 2432232315}'],
    [stdHeaders(STD_SIGNATURE, STD_TIMESTAMP, "msg_other"), STD_BODY],
    [stdHeaders(STD_SIGNATURE, STD_TIMESTAMP + 1), STD_BODY],
    [stdHeaders(`v2,${STD_SIGNATURE.slice(3)}`), STD_BODY],
    [{ "webhook-id": STD_ID, "webhook-timestamp": "x", "webhook-signature": STD_SIGNATURE }, STD_BODY],
    [{ "webhook-id": STD_ID, "webhook-signature": STD_SIGNATURE }, STD_BODY],
  ];
  for (const [headers, body] of cases) {
    assert.throws(() => verifyStandardWebhook(STD_SECRET, headers, body, { nowS: STD_TIMESTAMP }), WebhookVerificationError);
  }
  assert.throws(
    () => verifyStandardWebhook(`whsec_${"QUJD".repeat(8)}`, stdHeaders(), STD_BODY, { nowS: STD_TIMESTAMP }),
    WebhookVerificationError,
  );
  assert.throws(() => verifyStandardWebhook(STD_SECRET, stdHeaders(), STD_BODY, { nowS: STD_TIMESTAMP + 301 }), /replay/);
});

test("segd vector signs and verifies", () => {
  assert.equal(signSegd("secret", 1, "{}"), SEGD_SIGNATURE);
  verifySegdSignature("secret", SEGD_SIGNATURE, "{}", { nowS: 0.5 });
  verifyWebhook("secret", { "x-segd-signature": SEGD_SIGNATURE }, "{}", { nowS: 0.5 });
});

test("segd scheme rejects tampering, wrong secrets, replays and malformed headers", () => {
  const cases: [string, string | undefined, string, number][] = [
    ["secret", SEGD_SIGNATURE, "{} ", 0.5],
    ["other", SEGD_SIGNATURE, "{}", 0.5],
    ["secret", SEGD_SIGNATURE.replace("t=1", "t=2"), "{}", 0.5],
    ["secret", SEGD_SIGNATURE, "{}", 301],
    ["secret", `v1=${SEGD_SIGNATURE.split("v1=")[1]}`, "{}", 0.5],
    ["secret", "garbage", "{}", 0.5],
    ["secret", undefined, "{}", 0.5],
  ];
  for (const [secret, header, body, nowS] of cases) {
    assert.throws(() => verifySegdSignature(secret, header, body, { nowS }), WebhookVerificationError);
  }
});
