"""Retries, back-off and failure answers against a scripted loopback stub (conditions a
healthy segd does not produce on demand): 503 + Retry-After then success, giving up after
max_attempts, 410 fell_behind, an SSE connection dropped mid-stream resumed with
Last-Event-ID, and bulk checks split to stay under segd's pair limit."""

import json
import random
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from segd_client import Client, FellBehind, RetryPolicy, SegdError


class Stub:
    """Answers each request with the next scripted (status, headers, body) and records
    the requests it saw."""

    def __init__(self, script):
        self.script = list(script)
        self.seen = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def handle_one(self):
                length = int(self.headers.get("Content-Length", 0) or 0)
                body = self.rfile.read(length) if length else b""
                stub.seen.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                status, headers, payload = stub.script.pop(0) if stub.script else (500, {}, b"{}")
                if callable(payload):
                    payload = payload(self.path, dict(self.headers.items()), body)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = handle_one

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def ok(value):
    return (200, {"Content-Type": "application/json"}, json.dumps(value).encode())


def error(status, code, **extra):
    body = {"error": {"code": code, "message": code, **extra}}
    return (status, {"Content-Type": "application/json", "Retry-After": "1"}, json.dumps(body).encode())


def test_delay_is_capped_exponential_with_jitter():
    policy = RetryPolicy(initial_delay_s=0.1, max_delay_s=1.0, rng=random.Random(7))
    for retry, ceiling in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0), (30, 1.0)]:
        delays = [policy.delay_s(retry) for _ in range(200)]
        assert all(0 <= delay <= ceiling for delay in delays)
        assert max(delays) > ceiling / 2  # jitter spreads over the range
    assert policy.delay_s(1, retry_after_s=0.7) >= 0.7  # Retry-After is honoured
    assert policy.delay_s(1, retry_after_s=99) <= 1.0  # ...but capped


def test_overload_is_retried_until_success():
    sleeps = []
    script = [error(503, "overloaded"), error(503, "overloaded"), ok({"member": True})]
    with Stub(script) as stub:
        client = Client(stub.url, key="k", retry=RetryPolicy(max_attempts=5, sleep=sleeps.append))
        assert client.is_member("vip", "u1") is True
    assert len(stub.seen) == 3 and len(sleeps) == 2
    assert all(delay >= 1.0 for delay in sleeps)  # Retry-After: 1
    assert stub.seen[0][2]["authorization"] == "Bearer k"


def test_gives_up_after_max_attempts():
    sleeps = []
    with Stub([error(503, "overloaded")] * 3) as stub:
        client = Client(stub.url, retry=RetryPolicy(max_attempts=3, sleep=sleeps.append))
        with pytest.raises(SegdError) as failure:
            client.is_member("vip", "u1")
    assert failure.value.status == 503 and failure.value.code == "overloaded"
    assert len(stub.seen) == 3 and len(sleeps) == 2


def test_unreachable_server_is_retried_then_reported():
    sleeps = []
    with Stub([]) as stub:
        url = stub.url
    client = Client(url, retry=RetryPolicy(max_attempts=2, sleep=sleeps.append), timeout_s=2)
    with pytest.raises(SegdError, match="could not reach"):
        client.is_member("vip", "u1")
    assert len(sleeps) == 1


def test_fell_behind_is_its_own_error():
    answer = error(410, "fell_behind", requested_after=3, oldest_available=10, head=20)
    with Stub([answer]) as stub:
        with pytest.raises(FellBehind) as failure:
            Client(stub.url).changes(after=3)
    assert (failure.value.requested_after, failure.value.oldest_available) == (3, 10)
    assert stub.seen[0][1].startswith("/v1/changes?after=3")


def change(sequence, profile):
    return {"sequence": sequence, "time_ms": 1, "segment_id": 1, "segment_version": 1,
            "profile": profile, "kind": "entered", "cause": "event"}


def sse(*events):
    text = ": keep-alive\n\n"
    for sequence, profile in events:
        text += f"id: {sequence}\nevent: change\ndata: {json.dumps(change(sequence, profile))}\n\n"
    return text.encode()


def test_sse_reconnects_with_last_event_id():
    sleeps = []
    stream = {"Content-Type": "text/event-stream"}
    fell = b'event: fell_behind\ndata: {"requested_after": 6, "oldest_available": 9, "message": "gone"}\n\n'
    # Each answer ends the connection (the stub closes it): the client must reconnect.
    script = [(200, stream, sse((5, "a"), (6, "b"))), (200, stream, sse((7, "c"))), (200, stream, fell)]
    with Stub(script) as stub:
        client = Client(stub.url, retry=RetryPolicy(max_attempts=5, sleep=sleeps.append))
        received = []
        with pytest.raises(FellBehind) as failure:
            for item in client.stream_changes(after=4):
                received.append((item.sequence, item.profile))
    assert received == [(5, "a"), (6, "b"), (7, "c")]
    assert [seen[2]["last-event-id"] for seen in stub.seen] == ["4", "6", "7"]
    assert failure.value.oldest_available == 9
    assert len(sleeps) == 2


def test_bulk_membership_is_split_under_the_pair_limit():
    def answer(path, headers, body):
        request = json.loads(body)
        results = {p: {str(s): p.endswith("0") for s in request["segments"]} for p in request["profiles"]}
        return json.dumps({"results": results, "unknown_profiles": []}).encode()

    profiles = [f"user-{n}" for n in range(60_000)]
    with Stub([(200, {}, answer)] * 3) as stub:
        results = Client(stub.url).membership(profiles, ["a", "b"])
    sizes = [len(json.loads(seen[3])["profiles"]) for seen in stub.seen]
    assert sizes == [50_000, 10_000]
    assert len(results) == 60_000
    assert results["user-10"] == {"a": True, "b": True} and results["user-11"]["a"] is False
