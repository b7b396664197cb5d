"""Starts a real `segd serve` on 127.0.0.1 for the tests (binary from $SEGD_BIN, else the
repository's target/release/segd), with keys for each scope and a temporary data dir."""

import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
ADMIN, READ, WRITE = "ak_test", "rk_test", "wk_test"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    def __init__(self, url: str):
        self.url = url
        self.read_key, self.admin_key, self.write_key = READ, ADMIN, WRITE

    def call(self, method, path, body=None, key=ADMIN):
        """A raw request (admin or write operations the client library does not cover)."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {key}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def identify(self, user_id, traits):
        return self.call("POST", "/v1/identify", {"userId": user_id, "traits": traits}, WRITE)


@pytest.fixture(scope="session")
def server():
    binary = os.environ.get("SEGD_BIN", os.path.join(ROOT, "target", "release", "segd"))
    if not os.path.exists(binary):
        pytest.fail(f"segd binary not found at {binary}: run `cargo build --release` or set SEGD_BIN")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="segd-py-") as data_dir:
        process = subprocess.Popen(
            [binary, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data_dir,
             "--admin-key", ADMIN, "--read-key", READ, "--write-key", WRITE, "--shards", "2",
             # The webhook test's receiver listens on loopback.
             "--webhook-allow-private"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(url + "/readyz", timeout=2) as response:
                        if response.status == 200:
                            break
                except (urllib.error.URLError, ConnectionError, OSError):
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("segd did not become ready")
                time.sleep(0.1)
            yield Server(url)
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
