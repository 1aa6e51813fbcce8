"""``python -m parity.server REF... [options]``: run the model server without the full CLI."""

from __future__ import annotations

# An entry point, not a layer: the command (typer) lives in parity.cli.
from parity.cli._serve_cmds import main

if __name__ == "__main__":
    main()
