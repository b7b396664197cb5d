"""Webhook signature verification for both schemes segd may send.

segd scheme (header ``X-Segd-Signature: t=<unix ms>,v1=<hex>``): ``<hex>`` is
HMAC-SHA256 with the webhook's secret (its UTF-8 bytes) over ``"<t>.<raw body>"``.

Standard Webhooks scheme (https://www.standardwebhooks.com/): headers ``webhook-id``,
``webhook-timestamp`` (unix seconds) and ``webhook-signature`` (space-separated
``v1,<base64>`` entries); the key is the base64 after ``whsec_`` in the secret and the
signed content is ``"<id>.<timestamp>.<raw body>"``.

Always verify over the raw body bytes as received (not re-serialized JSON), and reject
old timestamps so a captured delivery cannot be replayed.
"""

import base64
import hashlib
import hmac
import time
from typing import Mapping, Optional, Union

from .errors import WebhookVerificationError

SEGD_SIGNATURE_HEADER = "x-segd-signature"
DEFAULT_TOLERANCE_S = 300

Body = Union[bytes, str]


def _body_bytes(body: Body) -> bytes:
    return body.encode("utf-8") if isinstance(body, str) else bytes(body)


def _lower(headers: Mapping[str, str]) -> dict:
    return {str(name).lower(): value for name, value in headers.items()}


def _check_age(timestamp_s: float, now_s: float, tolerance_s: float) -> None:
    if abs(now_s - timestamp_s) > tolerance_s:
        raise WebhookVerificationError(
            f"timestamp is {abs(now_s - timestamp_s):.0f} s away from now "
            f"(tolerance {tolerance_s} s): possibly a replay"
        )


def sign_segd(secret: str, timestamp_ms: int, body: Body) -> str:
    """The ``X-Segd-Signature`` value segd sends (for tests and local tools)."""
    digest = hmac.new(
        secret.encode("utf-8"), f"{timestamp_ms}.".encode("ascii") + _body_bytes(body), hashlib.sha256
    ).hexdigest()
    return f"t={timestamp_ms},v1={digest}"


def verify_segd_signature(
    secret: str,
    header: Optional[str],
    body: Body,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now_s: Optional[float] = None,
) -> None:
    """Raises :class:`WebhookVerificationError` unless ``header`` signs ``body``."""
    if not header:
        raise WebhookVerificationError("missing X-Segd-Signature header")
    fields = {}
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise WebhookVerificationError("malformed X-Segd-Signature header")
        fields.setdefault(key, []).append(value)
    if "t" not in fields or "v1" not in fields:
        raise WebhookVerificationError("X-Segd-Signature needs t= and v1=")
    try:
        timestamp_ms = int(fields["t"][0])
    except ValueError:
        raise WebhookVerificationError("X-Segd-Signature t= is not an integer") from None
    _check_age(timestamp_ms / 1000.0, time.time() if now_s is None else now_s, tolerance_s)
    expected = sign_segd(secret, timestamp_ms, body).split("v1=", 1)[1]
    if not any(hmac.compare_digest(expected, candidate.lower()) for candidate in fields["v1"]):
        raise WebhookVerificationError("signature does not match")


def _standard_key(secret: Union[str, bytes]) -> bytes:
    if isinstance(secret, bytes):
        return secret
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret[len("whsec_"):], validate=True)
        except ValueError:
            raise WebhookVerificationError("whsec_ secret is not valid base64") from None
    return secret.encode("utf-8")


def sign_standard(secret: Union[str, bytes], message_id: str, timestamp_s: int, body: Body) -> str:
    """A Standard Webhooks ``webhook-signature`` value (``v1,<base64>``)."""
    content = f"{message_id}.{timestamp_s}.".encode("utf-8") + _body_bytes(body)
    digest = hmac.new(_standard_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def verify_standard_webhook(
    secret: Union[str, bytes],
    headers: Mapping[str, str],
    body: Body,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now_s: Optional[float] = None,
) -> None:
    """Raises :class:`WebhookVerificationError` unless the Standard Webhooks headers sign
    ``body``. ``secret`` is ``whsec_<base64>`` (or the raw key bytes)."""
    lowered = _lower(headers)
    message_id = lowered.get("webhook-id")
    timestamp = lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    if not message_id or not timestamp or not signatures:
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        timestamp_s = int(timestamp)
    except ValueError:
        raise WebhookVerificationError("webhook-timestamp is not an integer") from None
    _check_age(timestamp_s, time.time() if now_s is None else now_s, tolerance_s)
    expected = sign_standard(secret, message_id, timestamp_s, body).split(",", 1)[1]
    for entry in signatures.split():
        version, _, value = entry.partition(",")
        if version == "v1" and hmac.compare_digest(expected, value):
            return
    raise WebhookVerificationError("no v1 signature matches")


def verify_webhook(
    secret: Union[str, bytes],
    headers: Mapping[str, str],
    body: Body,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now_s: Optional[float] = None,
) -> None:
    """Verifies whichever scheme the delivery carries: Standard Webhooks when a
    ``webhook-signature`` header is present, else ``X-Segd-Signature``."""
    lowered = _lower(headers)
    if "webhook-signature" in lowered:
        verify_standard_webhook(secret, lowered, body, tolerance_s, now_s)
    else:
        if isinstance(secret, bytes):
            secret = secret.decode("utf-8")
        verify_segd_signature(secret, lowered.get(SEGD_SIGNATURE_HEADER), body, tolerance_s, now_s)
