/**
 * Webhook signature verification for both schemes segd may send.
 *
 * segd scheme (`X-Segd-Signature: t=<unix ms>,v1=<hex>`): `<hex>` is HMAC-SHA256 with the
 * webhook's secret (UTF-8) over `"<t>.<raw body>"`.
 *
 * Standard Webhooks (https://www.standardwebhooks.com/): `webhook-id`, `webhook-timestamp`
 * (unix seconds), `webhook-signature` (space-separated `v1,<base64>`); the key is the base64
 * after `whsec_` and the signed content is `"<id>.<timestamp>.<raw body>"`.
 *
 * Verify over the raw body bytes as received, and reject old timestamps (replays).
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { WebhookVerificationError } from "./errors.js";

export const DEFAULT_TOLERANCE_S = 300;

export type Body = string | Uint8Array;
/** Node's `IncomingMessage.headers`, a plain object, or a fetch `Headers`. */
export type HeaderSource =
  | Headers
  | Record<string, string | string[] | undefined>;

export interface VerifyOptions {
  toleranceS?: number;
  /** Current time in seconds (tests). */
  nowS?: number;
}

function bodyBytes(body: Body): Buffer {
  return typeof body === "string" ? Buffer.from(body, "utf8") : Buffer.from(body);
}

function headerMap(headers: HeaderSource): Map<string, string> {
  const map = new Map<string, string>();
  if (typeof (headers as Headers).forEach === "function" && typeof (headers as Headers).get === "function") {
    (headers as Headers).forEach((value, name) => map.set(name.toLowerCase(), value));
  } else {
    for (const [name, value] of Object.entries(headers as Record<string, string | string[] | undefined>)) {
      if (value === undefined) continue;
      map.set(name.toLowerCase(), Array.isArray(value) ? value.join(" ") : value);
    }
  }
  return map;
}

function checkAge(timestampS: number, options: VerifyOptions): void {
  const now = options.nowS ?? Date.now() / 1000;
  const tolerance = options.toleranceS ?? DEFAULT_TOLERANCE_S;
  if (Math.abs(now - timestampS) > tolerance) {
    throw new WebhookVerificationError(
      `timestamp is ${Math.round(Math.abs(now - timestampS))} s away from now (tolerance ${tolerance} s): possibly a replay`,
    );
  }
}

function equal(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

/** The `X-Segd-Signature` value segd sends (for tests and local tools). */
export function signSegd(secret: string, timestampMs: number, body: Body): string {
  const hex = createHmac("sha256", Buffer.from(secret, "utf8"))
    .update(`${timestampMs}.`)
    .update(bodyBytes(body))
    .digest("hex");
  return `t=${timestampMs},v1=${hex}`;
}

/** Throws {@link WebhookVerificationError} unless `header` signs `body`. */
export function verifySegdSignature(
  secret: string,
  header: string | undefined | null,
  body: Body,
  options: VerifyOptions = {},
): void {
  if (!header) throw new WebhookVerificationError("missing X-Segd-Signature header");
  const fields = new Map<string, string[]>();
  for (const part of header.split(",")) {
    const at = part.indexOf("=");
    if (at < 0) throw new WebhookVerificationError("malformed X-Segd-Signature header");
    const key = part.slice(0, at).trim();
    fields.set(key, [...(fields.get(key) ?? []), part.slice(at + 1).trim()]);
  }
  const t = fields.get("t")?.[0];
  const candidates = fields.get("v1");
  if (t === undefined || !candidates) throw new WebhookVerificationError("X-Segd-Signature needs t= and v1=");
  if (!/^-?\d+$/.test(t)) throw new WebhookVerificationError("X-Segd-Signature t= is not an integer");
  const timestampMs = Number(t);
  checkAge(timestampMs / 1000, options);
  const expected = signSegd(secret, timestampMs, body).split("v1=")[1]!;
  if (!candidates.some((candidate) => equal(expected, candidate.toLowerCase()))) {
    throw new WebhookVerificationError("signature does not match");
  }
}

function standardKey(secret: string | Uint8Array): Buffer {
  if (typeof secret !== "string") return Buffer.from(secret);
  if (secret.startsWith("whsec_")) {
    const encoded = secret.slice("whsec_".length);
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(encoded) || encoded.length % 4 !== 0) {
      throw new WebhookVerificationError("whsec_ secret is not valid base64");
    }
    return Buffer.from(encoded, "base64");
  }
  return Buffer.from(secret, "utf8");
}

/** A Standard Webhooks `webhook-signature` value (`v1,<base64>`). */
export function signStandard(
  secret: string | Uint8Array,
  messageId: string,
  timestampS: number,
  body: Body,
): string {
  const digest = createHmac("sha256", standardKey(secret))
    .update(`${messageId}.${timestampS}.`)
    .update(bodyBytes(body))
    .digest("base64");
  return `v1,${digest}`;
}

/** Throws {@link WebhookVerificationError} unless the Standard Webhooks headers sign `body`.
 * `secret` is `whsec_<base64>` (or the raw key bytes). */
export function verifyStandardWebhook(
  secret: string | Uint8Array,
  headers: HeaderSource,
  body: Body,
  options: VerifyOptions = {},
): void {
  const map = headerMap(headers);
  const id = map.get("webhook-id");
  const timestamp = map.get("webhook-timestamp");
  const signatures = map.get("webhook-signature");
  if (!id || !timestamp || !signatures) {
    throw new WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature");
  }
  if (!/^\d+$/.test(timestamp)) throw new WebhookVerificationError("webhook-timestamp is not an integer");
  const timestampS = Number(timestamp);
  checkAge(timestampS, options);
  const expected = signStandard(secret, id, timestampS, body).slice(3);
  for (const entry of signatures.split(" ")) {
    const comma = entry.indexOf(",");
    if (comma < 0) continue;
    if (entry.slice(0, comma) === "v1" && equal(expected, entry.slice(comma + 1))) return;
  }
  throw new WebhookVerificationError("no v1 signature matches");
}

/** Verifies whichever scheme the delivery carries: Standard Webhooks when a
 * `webhook-signature` header is present, else `X-Segd-Signature`. */
export function verifyWebhook(
  secret: string | Uint8Array,
  headers: HeaderSource,
  body: Body,
  options: VerifyOptions = {},
): void {
  const map = headerMap(headers);
  if (map.has("webhook-signature")) {
    verifyStandardWebhook(secret, headers, body, options);
  } else {
    const text = typeof secret === "string" ? secret : Buffer.from(secret).toString("utf8");
    verifySegdSignature(text, map.get("x-segd-signature"), body, options);
  }
}
