"""Webhook signature verification: published test vectors for both schemes, tampering,
wrong secrets, replays (old timestamps) and malformed headers all rejected."""

import pytest

from segd_client import (
    WebhookVerificationError,
    sign_segd,
    sign_standard,
    verify_segd_signature,
    verify_standard_webhook,
    verify_webhook,
)

# Standard Webhooks' published vector (standard-webhooks libraries' test suites).
STD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
STD_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
STD_TIMESTAMP = 1614265330
STD_BODY = b'{"test": 2432232314}'
STD_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

# segd's own vector, the same as the server's unit test in src/http/webhooks.rs.
SEGD_SIGNATURE = "t=1,v1=1122767b193110cfec322b6f199b599edbf608ed087f2d27afb0b97d99523908"


def std_headers(signature=STD_SIGNATURE, timestamp=STD_TIMESTAMP, message_id=STD_ID):
    return {"webhook-id": message_id, "webhook-timestamp": str(timestamp), "webhook-signature": signature}


def test_standard_vector_signs_and_verifies():
    assert sign_standard(STD_SECRET, STD_ID, STD_TIMESTAMP, STD_BODY) == STD_SIGNATURE
    verify_standard_webhook(STD_SECRET, std_headers(), STD_BODY, now_s=STD_TIMESTAMP + 10)
    # Case-insensitive header names, several signatures (key rotation), the dispatcher.
    rotated = {k.title(): v for k, v in std_headers("v1,bm90LWl0 " + STD_SIGNATURE).items()}
    verify_webhook(STD_SECRET, rotated, STD_BODY, now_s=STD_TIMESTAMP)


@pytest.mark.parametrize(
    "headers, body",
    [
        (std_headers(), b'{"test": 2432232315}'),  # body changed
        (std_headers(message_id="msg_other"), STD_BODY),  # id changed
        (std_headers(timestamp=STD_TIMESTAMP + 1), STD_BODY),  # timestamp changed
        (std_headers(signature="v2," + STD_SIGNATURE[3:]), STD_BODY),  # unknown version
        ({"webhook-id": STD_ID, "webhook-timestamp": "x", "webhook-signature": STD_SIGNATURE}, STD_BODY),
        ({"webhook-id": STD_ID, "webhook-signature": STD_SIGNATURE}, STD_BODY),
    ],
)
def test_standard_rejects_tampering(headers, body):
    with pytest.raises(WebhookVerificationError):
        verify_standard_webhook(STD_SECRET, headers, body, now_s=STD_TIMESTAMP)


def test_standard_rejects_wrong_secret_and_replay():
    with pytest.raises(WebhookVerificationError):
        verify_standard_webhook("whsec_" + "QUJD" * 8, std_headers(), STD_BODY, now_s=STD_TIMESTAMP)
    with pytest.raises(WebhookVerificationError, match="replay"):
        verify_standard_webhook(STD_SECRET, std_headers(), STD_BODY, now_s=STD_TIMESTAMP + 301)


def test_segd_vector_signs_and_verifies():
    assert sign_segd("secret", 1, b"{}") == SEGD_SIGNATURE
    verify_segd_signature("secret", SEGD_SIGNATURE, b"{}", now_s=0.5)
    verify_webhook("secret", {"X-Segd-Signature": SEGD_SIGNATURE}, "{}", now_s=0.5)


@pytest.mark.parametrize(
    "secret, header, body, now_s",
    [
        ("secret", SEGD_SIGNATURE, b"{} ", 0.5),  # body changed
        ("other", SEGD_SIGNATURE, b"{}", 0.5),  # wrong secret
        ("secret", SEGD_SIGNATURE.replace("t=1", "t=2"), b"{}", 0.5),  # timestamp changed
        ("secret", SEGD_SIGNATURE, b"{}", 301.0),  # too old: replay
        ("secret", "v1=" + SEGD_SIGNATURE.split("v1=")[1], b"{}", 0.5),  # no t=
        ("secret", "garbage", b"{}", 0.5),
        ("secret", None, b"{}", 0.5),
    ],
)
def test_segd_rejects(secret, header, body, now_s):
    with pytest.raises(WebhookVerificationError):
        verify_segd_signature(secret, header, body, now_s=now_s)
