#!/usr/bin/env python3
"""Loopback capture server for SDK request fixtures (a dev step, not used by tests).

Records every request it receives (method, path, headers in order, body bytes) as one
JSON file per request under OUT_DIR, and answers `200 {"success": true}` as segd does,
so an SDK pointed at it behaves as it would against segd. See
tests/fixtures/sdk/README.md for how the committed captures were made.

    python3 tools/sdk_capture.py OUT_DIR [PORT]   # prints the port it listens on

It binds 127.0.0.1 only and stops after STOP_AFTER_S seconds without a request.
"""

import base64
import http.server
import json
import os
import sys
import threading
import time

STOP_AFTER_S = 30
MAX_BODY_BYTES = 8 * 1024 * 1024


class Capture(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    counter = 0
    lock = threading.Lock()
    out_dir = "."
    last_request = time.time()

    def _record(self):
        Capture.last_request = time.time()
        body = b""
        length = self.headers.get("Content-Length")
        if length is not None:
            body = self.rfile.read(min(int(length), MAX_BODY_BYTES))
        elif self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            body = b"".join(chunks)
        with Capture.lock:
            Capture.counter += 1
            number = Capture.counter
        record = {
            "method": self.command,
            "path": self.path,
            "headers": [[name, value] for name, value in self.headers.items()],
            "body_base64": base64.b64encode(body).decode("ascii"),
        }
        path = os.path.join(Capture.out_dir, f"{number:03d}.json")
        with open(path, "w") as out:
            json.dump(record, out, indent=1)
            out.write("\n")
        sys.stderr.write(f"captured {self.command} {self.path} ({len(body)} bytes) -> {path}\n")
        answer = b'{"success":true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.send_header("Access-Control-Allow-Origin", "*")
        self.end_headers()
        self.wfile.write(answer)

    do_POST = _record
    do_PUT = _record
    do_GET = _record

    def do_OPTIONS(self):  # CORS preflight of a browser SDK: answered, not recorded.
        Capture.last_request = time.time()
        self.send_response(204)
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Allow-Headers", "*")
        self.send_header("Access-Control-Allow-Methods", "POST, GET, OPTIONS")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: sdk_capture.py OUT_DIR [PORT]")
    Capture.out_dir = sys.argv[1]
    os.makedirs(Capture.out_dir, exist_ok=True)
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Capture)
    server.timeout = 1
    print(server.server_address[1], flush=True)
    Capture.last_request = time.time()
    while time.time() - Capture.last_request < STOP_AFTER_S:
        server.handle_request()


if __name__ == "__main__":
    main()
