"""A real HTTP server on 127.0.0.1 serving files from memory and counting requests: what the
worker's input cache fetches from in tests."""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class FileServer:
    """``/f/<name>`` serves ``files[name]`` (with a Content-Length); ``/raw/<name>`` the same
    without one (the body ends when the connection closes); ``/to/<url-path>`` redirects
    there (302); ``/status/<code>`` answers that code; ``/drip/<name>`` sends a byte every
    0.1 s. ``delay_s`` slows every answer."""

    files: dict[str, bytes] = field(default_factory=dict)
    delay_s: float = 0.0
    requests: Counter[str] = field(default_factory=Counter)
    port: int = 0

    def url(self, path: str, host: str = "127.0.0.1", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}{path}"

    @property
    def total(self) -> int:
        return sum(self.requests.values())


@contextmanager
def serving(server: FileServer, tls: ssl.SSLContext | None = None) -> Iterator[FileServer]:
    """``server`` running until the block ends; over TLS with ``tls`` (a server context)."""
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with lock:
                server.requests[self.path] += 1
            time.sleep(server.delay_s)
            kind, _, rest = self.path.lstrip("/").partition("/")
            if kind in ("f", "raw") and rest in server.files:
                body = server.files[rest]
                self.send_response(200)
                if kind == "f":
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            elif kind == "drip" and rest in server.files:  # a byte every 0.1 s
                body = server.files[rest]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(ConnectionError):  # the client gave up
                    for i in range(len(body)):
                        self.wfile.write(body[i : i + 1])
                        self.wfile.flush()
                        time.sleep(0.1)
            elif kind == "to":
                self.send_response(302)
                self.send_header("Location", "/" + rest if "://" not in rest else rest)
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif kind == "status":
                self.send_response(int(rest))
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self.send_error(404)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    if tls is not None:
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    server.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
