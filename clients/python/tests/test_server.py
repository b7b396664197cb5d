"""The client against a real `segd serve` on loopback: membership (single, bulk, unknown
profiles, errors not retried), the change feed by long-poll and SSE resumed from a saved
position, and a webhook delivery to a loopback receiver verified with the library."""

import json
import queue
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from segd_client import Client, FileCheckpoint, RetryPolicy, SegdError, verify_webhook
from segd_client.errors import WebhookVerificationError

_segment_counter = iter(range(1, 1_000_000))


def new_segment(server, threshold):
    name = f"py_ltv_over_{threshold}_{next(_segment_counter)}"
    created = server.call("POST", "/v1/segments", {"name": name, "rule": f"ltv > {threshold}"})
    return name, created["id"]


def client_for(server, **kwargs):
    return Client(server.url, key=server.read_key, **kwargs)


def test_membership_single_and_bulk(server):
    name, segment_id = new_segment(server, 100)
    server.identify("py-rich", {"ltv": 500})
    server.identify("py-poor", {"ltv": 5})
    client = client_for(server)
    assert name in [entry["name"] for entry in client.segments_of("py-rich")]
    assert name not in [entry["name"] for entry in client.segments_of("py-poor")]
    assert client.is_member(name, "py-rich") is True
    assert client.is_member(segment_id, "py-poor") is False
    assert client.is_member(name, "py-nobody") is False
    bulk = client.membership(["py-rich", "py-poor", "py-nobody"], [name, segment_id])
    assert bulk == {
        "py-rich": {name: True, str(segment_id): True},
        "py-poor": {name: False, str(segment_id): False},
        "py-nobody": {name: False, str(segment_id): False},
    }


def test_errors_are_raised_not_retried(server):
    sleeps = []
    client = client_for(server, retry=RetryPolicy(max_attempts=5, sleep=sleeps.append))
    with pytest.raises(SegdError) as failure:
        client.segments_of("py-never-seen")
    assert failure.value.status == 404 and failure.value.code == "profile_not_found"
    with pytest.raises(SegdError) as failure:
        Client(server.url, key="wrong-key").segments_of("py-rich")
    assert failure.value.status == 401
    assert sleeps == []


def test_long_poll_resumes_from_checkpoint(server, tmp_path):
    name, segment_id = new_segment(server, 1000)
    client = client_for(server)
    checkpoint = FileCheckpoint(str(tmp_path / "position"))
    checkpoint.save(client.head())
    for user in ("py-lp-1", "py-lp-2", "py-lp-3"):
        server.identify(user, {"ltv": 2000})

    feed = client.iter_changes(segment=segment_id, checkpoint=checkpoint, wait_ms=0, max_polls=5)
    first, second = next(feed), next(feed)
    assert [(c.profile, c.kind, c.segment_id) for c in (first, second)] == [
        ("py-lp-1", "entered", segment_id),
        ("py-lp-2", "entered", segment_id),
    ]
    # The consumer stops while handling the second change: only the first is confirmed.
    feed.close()
    assert checkpoint.load() == first.sequence

    # A restarted consumer continues after the confirmed one (at least once: the second
    # again, then the third), not from the start.
    resumed = client.iter_changes(segment=segment_id, checkpoint=checkpoint, wait_ms=0, max_polls=5)
    rest = [next(resumed).profile, next(resumed).profile]
    resumed.close()
    assert rest == ["py-lp-2", "py-lp-3"]
    assert checkpoint.load() == second.sequence


def test_long_poll_waits_for_the_next_change(server):
    name, segment_id = new_segment(server, 3000)
    client = client_for(server)
    head = client.head()
    timer = threading.Timer(0.3, server.identify, args=("py-wait", {"ltv": 4000}))
    timer.start()
    try:
        # Bounded: at most two 10 s polls.
        feed = client.iter_changes(after=head, segment=segment_id, wait_ms=10_000, max_polls=2)
        change = next(feed)
        feed.close()
    finally:
        timer.join()
    assert (change.profile, change.kind) == ("py-wait", "entered")


def test_sse_stream_resumes_with_last_event_id(server, tmp_path):
    name, segment_id = new_segment(server, 5000)
    client = client_for(server, retry=RetryPolicy(max_attempts=3))
    checkpoint = FileCheckpoint(str(tmp_path / "sse-position"))
    checkpoint.save(client.head())
    server.identify("py-sse-1", {"ltv": 6000})

    stream = client.stream_changes(segment=segment_id, checkpoint=checkpoint, read_timeout_s=20)
    first = next(stream)
    assert (first.profile, first.kind) == ("py-sse-1", "entered")
    server.identify("py-sse-1", {"ltv": 1})  # exits while the stream is open
    second = next(stream)
    assert (second.profile, second.kind) == ("py-sse-1", "exited")
    stream.close()
    assert checkpoint.load() == first.sequence  # the second was not confirmed

    # After reconnecting from the checkpoint: the unconfirmed change again, then the one
    # made while disconnected.
    server.identify("py-sse-2", {"ltv": 7000})
    stream = client.stream_changes(segment=segment_id, checkpoint=checkpoint, read_timeout_s=20)
    again, third = next(stream), next(stream)
    stream.close()
    assert again == second
    assert (third.profile, third.kind) == ("py-sse-2", "entered")
    assert checkpoint.load() == second.sequence


class _Receiver(BaseHTTPRequestHandler):
    deliveries: "queue.Queue" = queue.Queue()

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        _Receiver.deliveries.put((dict(self.headers.items()), body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_webhook_delivery_verifies(server):
    name, segment_id = new_segment(server, 8000)
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=receiver.serve_forever, daemon=True)
    thread.start()
    try:
        client = client_for(server)
        # Webhook registration is an admin operation; segd generates the secret
        # (`whsec_...`, Standard Webhooks) and shows it once, in this answer.
        admin = Client(server.url, key=server.admin_key)
        hook = admin.request(
            "POST",
            "/v1/webhooks",
            body={
                "url": f"http://127.0.0.1:{receiver.server_address[1]}/hook",
                "segments": [segment_id],
                "after": client.head(),
            },
        )
        secret = hook["secret"]
        assert secret.startswith("whsec_")
        server.identify("py-hook", {"ltv": 9000})
        headers, body = _Receiver.deliveries.get(timeout=30)
        verify_webhook(secret, headers, body)  # raises when the signature is wrong
        payload = json.loads(body)
        assert payload["webhook_id"] == hook["id"]
        assert [(c["profile"], c["kind"]) for c in payload["changes"]] == [("py-hook", "entered")]
        with pytest.raises(WebhookVerificationError):
            verify_webhook(secret, headers, body.replace(b"entered", b"exited"))
        with pytest.raises(WebhookVerificationError):
            verify_webhook("whsec_" + "A" * 32, headers, body)
        admin.request("DELETE", f"/v1/webhooks/{hook['id']}")
    finally:
        receiver.shutdown()
        receiver.server_close()
