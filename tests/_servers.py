"""Real `parity` server processes on 127.0.0.1 for any test package: free ports, the process, a test certificate."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    """A TCP port free right now on 127.0.0.1 (another process may take it first: see ServerProcess)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# The installed console script: every server test goes through the real `parity` command.
PARITY = Path(sys.executable).parent / "parity"
# What uvicorn / gRPC print when the port picked by free_port() was taken in between.
BIND_ERRORS = ("address already in use", "failed to bind", "[errno 98]", "cannot listen on")


class ServerProcess:
    """``parity serve`` (or another serving command, e.g. ``compose serve``) in a subprocess, its log in a file.

    Ports come from :func:`free_port`; if another process grabs one before the server binds it,
    the server exits with a bind error and :meth:`wait_ready` restarts it on fresh ports.
    """

    attempts = 5

    def __init__(
        self,
        args: list[str],
        log_path: Path,
        env: dict[str, str] | None = None,
        *,
        grpc: bool = False,
        command: Sequence[str] = ("serve",),
    ) -> None:
        self.args, self.log_path, self.grpc, self.command = list(args), log_path, grpc, list(command)
        # A PARITY_TOKEN from the caller's shell must not leak in: tests pass tokens explicitly.
        inherited = {k: v for k, v in os.environ.items() if k != "PARITY_TOKEN"}
        # A short SIGTERM drain keeps teardown quick; drain tests pass --drain themselves.
        self.env = {**inherited, "OPENBLAS_NUM_THREADS": "1", "PARITY_DRAIN": "0.2", **(env or {})}
        self.restarts = 0
        self._start()

    def _start(self) -> None:
        self.port = free_port()
        self.grpc_port = free_port() if self.grpc else 0
        self.url = f"http://127.0.0.1:{self.port}"
        self._spawn("wb")

    def _spawn(self, mode: str) -> None:
        cmd = [str(PARITY), *self.command, *self.args, "--port", str(self.port), "--grpc-port", str(self.grpc_port)]
        self._log = open(self.log_path, mode)  # noqa: SIM115 - closed in terminate() / kill()
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=self.env)

    def restart(self) -> None:
        """Start the stopped server again on the same ports (its log continues in the same file)."""
        assert self.proc.poll() is not None, "stop or kill the server first"
        self._spawn("ab")

    def restart_if_port_taken(self) -> bool:
        """If the server died of a bind conflict, start it again on fresh ports and return True."""
        if self.proc.poll() is None or self.restarts >= self.attempts:
            return False
        if not any(marker in self.log().lower() for marker in BIND_ERRORS):
            return False
        self._log.close()
        self.restarts += 1
        self._start()
        return True

    def probe(self) -> bool:
        """One readiness check: /v2/health/ready answers 200."""
        try:
            return httpx.get(self.url + "/v2/health/ready", timeout=1.0).status_code == 200
        except httpx.TransportError:
            return False

    def wait_ready(self, timeout: float = 180.0) -> None:
        """Wait until :meth:`probe` passes (fail with the server log if it dies or times out).

        The limit is generous: on a loaded 2-core CI machine loading models can take a minute.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                if self.restart_if_port_taken():
                    deadline = time.monotonic() + timeout
                    continue
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            if self.probe():
                return
            time.sleep(0.05)  # polling interval of a wait on a condition, not a synchronising sleep
        raise RuntimeError(f"server not ready after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        """Everything the server wrote so far."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL (a crash, not a drain)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()

    def terminate(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait; return the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return int(self.proc.returncode)


def make_certificate(root: Path) -> tuple[Path, Path]:
    """A self-signed certificate and key for localhost and 127.0.0.1 in ``root`` (skips without openssl)."""
    if not shutil.which("openssl"):
        pytest.skip("openssl not available to make a test certificate")
    cert, key = root / "cert.pem", root / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key
