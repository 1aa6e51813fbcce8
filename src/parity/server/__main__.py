"""``python -m parity.server REF... [options]``: run the model server without the full CLI."""

from __future__ import annotations

import typer

from parity.server.cli import serve


def main() -> None:
    """Run the ``serve`` command."""
    typer.run(serve)


if __name__ == "__main__":
    main()
