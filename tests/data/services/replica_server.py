"""A tiny HTTP service replica for tests: serves on $PORT, says who it is.

GET /health → 200; GET /hello → {"pid", "version"}; GET /slow?ms=N sleeps N ms first.
Nothing here watches the worker: when it dies, its process executor's guard ends the replica.
"""

import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

VERSION = os.environ.get("VERSION", "1")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        url = urlparse(self.path)
        if url.path == "/health":
            self._send(200, {"ok": True})
        elif url.path in ("/hello", "/slow"):
            ms = int(parse_qs(url.query).get("ms", ["0"])[0])
            time.sleep(min(ms, 5000) / 1000)
            self._send(200, {"pid": os.getpid(), "version": VERSION})
        else:
            self._send(404, {"error": "no such path"})

    def _send(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
    server.daemon_threads = True
    print(f"serving version {VERSION} on {os.environ['PORT']}", flush=True)
    sys.stdout.flush()
    server.serve_forever()
