"""A webhook receiver for the soak and the alerts' tests: a real HTTP server on a loopback port,
in a thread of the caller's process, that records every request and answers as it is told to (a
status, a share of refusals, or a stall longer than the sender's timeout)."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Received:
    path: str
    key: str | None
    signature: str | None
    body: bytes
    status: int  # what the receiver answered (0: it stalled and the sender gave up)

    @property
    def event(self) -> dict:
        return json.loads(self.body)

    def signed_by(self, secret: str) -> bool:
        expected = "sha256=" + hmac.new(secret.encode(), self.body, hashlib.sha256).hexdigest()
        return self.signature is not None and hmac.compare_digest(self.signature, expected)


class Receiver:
    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.status = 200
        # this share of the events' first posts is answered 503 whatever the status: a flaky
        # receiver, that takes each event at its next post
        self.refuse_share = 0.0
        self._refused: set[str | None] = set()
        self.stall_seconds = 0.0
        self._random = random.Random(0)
        self.arrived = threading.Event()  # set when a request comes in, before any stall
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.arrived.set()
                stall, status = receiver.stall_seconds, receiver.status
                key = self.headers.get("Idempotency-Key")
                flaky = receiver._random.random() < receiver.refuse_share
                if flaky and key not in receiver._refused:
                    receiver._refused.add(key)
                    status = 503
                if stall:
                    time.sleep(stall)
                with receiver._lock:
                    receiver.requests.append(Received(
                        self.path, self.headers.get("Idempotency-Key"),
                        self.headers.get("X-Storemon-Signature"), body, 0 if stall else status,
                    ))
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:  # the sender gave up waiting
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def accepted(self) -> list[Received]:
        """The requests answered 2xx, in arrival order."""
        with self._lock:
            return [r for r in self.requests if 200 <= r.status < 300]

    def accepted_by_key(self) -> dict[str, list[Received]]:
        grouped: dict[str, list[Received]] = {}
        for request in self.accepted():
            grouped.setdefault(request.key or "", []).append(request)
        return grouped


@contextmanager
def running_receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
        thread.join(10)
