"""The admin port: liveness, readiness (with reasons) and metrics, served from a thread of its own.

It runs a stdlib ``ThreadingHTTPServer`` beside uvicorn, so probes never queue behind inference
traffic: no data-plane concurrency limit, no event-loop turn, no token. Liveness is true while
the event loop still turns (a heartbeat task stamps it every second; a loop stuck for
``STUCK_AFTER_S`` seconds is reported dead so Kubernetes restarts a wedged process, not a busy
one). Readiness answers 503 while draining, with no model, or while the lake fails in ``block``
mode; its body names each check. With ``--workers N`` every worker binds the port with
``SO_REUSEPORT``; metrics are the multiprocess sum whichever worker answers.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

from parity.server._dataplane import DataPlane

__all__ = ["STUCK_AFTER_S", "AdminServer"]

log = logging.getLogger("parity.server")

STUCK_AFTER_S = 30.0
_METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Http(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def server_bind(self) -> None:
        """Share the port between worker processes."""
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()


class AdminServer:
    """Health and metrics of one process on ``host:port``, in a daemon thread."""

    def __init__(self, dataplane: DataPlane, host: str, port: int) -> None:
        self.dataplane = dataplane
        self.heartbeat = time.monotonic()
        admin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                try:
                    status, body, ctype = admin.answer(path)
                except Exception:
                    log.exception("admin endpoint %s failed", path)
                    status, body, ctype = 500, b'{"error":"internal server error"}', "application/json"
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                """Probes every few seconds would flood the log: stay quiet."""

        self._http = _Http((host, port), Handler)
        self.port = int(self._http.server_address[1])
        self._thread = threading.Thread(target=self._http.serve_forever, name="parity-admin", daemon=True)

    def answer(self, path: str) -> tuple[int, bytes, str]:
        """Status, body and content type of one admin GET."""
        dp = self.dataplane
        if path in ("/v2/health/live", "/livez", "/healthz"):
            stuck = time.monotonic() - self.heartbeat
            live = dp.live() and stuck < STUCK_AFTER_S
            return (200 if live else 503), orjson.dumps({"live": live}), "application/json"
        if path in ("/v2/health/ready", "/readyz"):
            details = dp.readiness_details()
            return (200 if details["ready"] else 503), orjson.dumps(details), "application/json"
        if path == "/metrics":
            return 200, dp.metrics.render(), _METRICS_TYPE
        return (
            404,
            orjson.dumps({"error": "not found; admin paths: /v2/health/live, /v2/health/ready, /metrics"}),
            ("application/json"),
        )

    def start(self) -> None:
        """Serve in the background and start the event-loop heartbeat."""
        self._thread.start()
        self._beat = asyncio.get_running_loop().create_task(self._heartbeat(), name="parity-heartbeat")

    async def _heartbeat(self) -> None:
        while True:
            self.heartbeat = time.monotonic()
            await asyncio.sleep(1.0)

    def stop(self) -> None:
        """Stop serving (the port closes)."""
        self._beat.cancel()
        self._http.shutdown()
        self._http.server_close()
