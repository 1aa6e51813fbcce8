"""``python -m parity.server REF... [options]``: run the model server without the full CLI."""

from __future__ import annotations

import sys

import typer

from parity.errors import ParityError
from parity.server.cli import serve


def main() -> None:
    """Run the ``serve`` command (a ParityError becomes one line on stderr and exit code 1)."""
    try:
        typer.run(serve)
    except ParityError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:  # uvicorn re-raises SIGINT once it has shut down gracefully
        sys.exit(130)


if __name__ == "__main__":
    main()
