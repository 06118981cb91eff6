"""A replica that streams, for the gateway's streaming tests: serves on $PORT.

GET /health → 200.
GET /events?id=X&n=N&gap=S → text/event-stream, chunked: event 0 at once, then waits (up to
  10 s) until POST /ack?id=X arrives before sending events 1..N-1, ``gap`` seconds apart.
  Each event says whether the ack had come, so a client behind a buffering proxy (which
  could not ack an event it never saw) reads "acked": false.
GET /bytes?n=N&chunk=C → N bytes in chunks of C, chunked (no length declared).
GET /written → how many bytes /bytes has handed to the socket so far (it blocks when the
  socket's buffers are full: what a client that stopped reading holds back).
GET /declared?n=N → N bytes with their Content-Length.
GET /late?s=S → sleeps S seconds before answering.
GET /headers → the request headers it received, as JSON.
GET|POST /v1/... → what it received: {"method", "path", "body", "headers"}, as JSON.
"""

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

ACKS: dict[str, threading.Event] = {}
WRITTEN = [0]
LOCK = threading.Lock()


def ack_event(stream_id: str) -> threading.Event:
    with LOCK:
        return ACKS.setdefault(stream_id, threading.Event())


def event(i: int, acked: bool) -> bytes:
    return f"id: {i}\ndata: {json.dumps({'i': i, 'acked': acked})}\n\n".encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        url = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/health":
            self._send(200, b'{"ok": true}', "application/json")
        elif url.path == "/events":
            self._events(q["id"], int(q.get("n", "5")), float(q.get("gap", "0.5")))
        elif url.path == "/bytes":
            n, size = int(q["n"]), int(q.get("chunk", "1000"))
            self._start_chunked("application/octet-stream")
            for at in range(0, n, size):
                self._chunk(b"x" * min(size, n - at))
                WRITTEN[0] += min(size, n - at)
            self._chunk(b"")
        elif url.path == "/written":
            self._send(200, str(WRITTEN[0]).encode(), "text/plain")
        elif url.path == "/declared":
            self._send(200, b"y" * int(q["n"]), "application/octet-stream")
        elif url.path == "/late":
            time.sleep(float(q["s"]))
            self._send(200, b"late", "text/plain")
        elif url.path.startswith("/v1/"):
            self._echo(b"")
        elif url.path == "/headers":
            seen = {k.lower(): v for k, v in self.headers.items()}
            self._send(200, json.dumps(seen).encode(), "application/json")
        else:
            self._send(404, b"no such path", "text/plain")

    def do_POST(self) -> None:
        url = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        if url.path.startswith("/v1/"):
            self._echo(body)
        elif url.path == "/ack":
            ack_event(q["id"]).set()
            self._send(200, b"acked", "text/plain")
        else:
            self._send(404, b"no such path", "text/plain")

    def _echo(self, body: bytes) -> None:
        seen = {
            "method": self.command,
            "path": self.path,
            "body": body.decode(),
            "headers": {k.lower(): v for k, v in self.headers.items()},
        }
        self._send(200, json.dumps(seen).encode(), "application/json")

    def _events(self, stream_id: str, n: int, gap: float) -> None:
        acked = ack_event(stream_id)
        self._start_chunked("text/event-stream")
        self._chunk(event(0, False))
        got = acked.wait(10)
        for i in range(1, n):
            time.sleep(gap)
            self._chunk(event(i, got))
        self._chunk(b"")

    def _start_chunked(self, content_type: str) -> None:
        self.send_response(200)
        self.send_header("content-type", content_type)
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _send(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
    server.daemon_threads = True
    server.serve_forever()
