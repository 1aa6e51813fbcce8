"""Test runner of scripts/mutation.sh: each mutant's tests in a new process that imports parity fresh.

``serve SOCKET``: import the heavy third-party libraries once (numpy, pandas, pyarrow, sklearn,
pytest...), never parity and never onnxruntime, then for each request fork a child that imports
the (mutated) parity from disk, creates its own onnxruntime sessions and runs ``pytest.main``.
onnxruntime crashes in children forked *after* it started its thread pools (mutmut 3's failure
mode); here the parent never loads it, so each child is a fresh onnxruntime process. A child that
still dies of a signal is reported as undecided; one that hits the time limit counts as killed (an
endless loop is a detected mutant, as in cosmic-ray).

``run SOCKET TIMEOUT ARGS...``: ask the server to run ``pytest ARGS`` in the current directory;
print the output and exit with pytest's code (0 = the mutant survived).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
import tempfile

UNDECIDED = "MUTATION-UNDECIDED"


def serve(path: str) -> None:
    """Accept requests one at a time; each runs in a forked child."""
    import importlib

    import pytest

    for name in (
        "numpy", "pandas", "pyarrow", "pyarrow.parquet", "pyarrow.compute", "pyarrow.csv", "scipy.stats",
        "sklearn.compose", "sklearn.ensemble", "sklearn.impute", "sklearn.linear_model", "sklearn.pipeline",
        "sklearn.preprocessing", "sklearn.tree", "onnx", "onnx.helper", "jsonschema", "skops.io", "orjson",
        "typer", "rich.console",  # not httpx/starlette: anyio is a pytest plugin, pytest must import it
    ):  # fmt: skip
        with contextlib.suppress(ImportError):  # an optional library: the child imports what it needs
            importlib.import_module(name)

    # Not hypothesis: pytest must import it itself to rewrite its asserts (else a warning, an error here).
    assert not {"onnxruntime", "parity", "hypothesis"} & set(sys.modules)
    if os.path.exists(path):
        os.unlink(path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    while True:
        conn, _ = server.accept()
        with conn:
            request = json.loads(conn.makefile().readline())
            pid = os.fork()
            if pid == 0:  # the child: fresh parity, fresh onnxruntime
                server.close()
                os.chdir(request["cwd"])
                fd = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
                os.dup2(fd, 1)
                os.dup2(fd, 2)
                signal.alarm(int(request["timeout"]))
                code = pytest.main(request["args"])
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(int(code))
            _, status = os.waitpid(pid, 0)
            conn.sendall((json.dumps({"status": status}) + "\n").encode())


def run(path: str, timeout: str, args: list[str]) -> int:
    """Run one mutant's tests through the server; return the exit code cosmic-ray sees."""
    with tempfile.NamedTemporaryFile("r", suffix=".log") as log:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.connect(path)
            request = {"cwd": os.getcwd(), "log": log.name, "timeout": timeout, "args": args}
            conn.sendall((json.dumps(request) + "\n").encode())
            status = json.loads(conn.makefile().readline())["status"]
        print(log.read()[-20000:])
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig == signal.SIGALRM:
            print(f"timed out after {timeout}s: killed")
            return 1
        print(f"{UNDECIDED}: the test process died of signal {sig}")
        return 0  # not a kill; the summary counts it as undecided
    return os.WEXITSTATUS(status)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2])
    elif sys.argv[1] == "run":
        sys.exit(run(sys.argv[2], sys.argv[3], sys.argv[4:]))
    else:
        sys.exit(f"usage: {sys.argv[0]} serve SOCKET | run SOCKET TIMEOUT PYTEST_ARGS...")
