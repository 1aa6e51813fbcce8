"""The ``parity`` command line: a thin layer over the Python API.

Commands::

    parity inspect REF [--json]                  manifest, signature, parity report (files verified, model not loaded)
    parity verify REF [--trusted] [--json]       load (sha256 checked) and replay the stored parity sample
    parity predict REF -i IN -o OUT [--batch-size N] [--keep-inputs] [--trusted] [--quiet]
                                                 score CSV / Parquet / JSON Lines in batches, atomically
    parity registry push PATH [--alias A] [--json]
    parity registry list | show REF | versions NAME | history NAME [--json]
    parity registry alias NAME ALIAS VERSION

Global options (before the command): ``--registry PATH`` (or ``$PARITY_HOME``), ``--debug``
(print tracebacks), ``--quiet``. REF is an artifact directory or a registry reference
(``name``, ``name:3``, ``name@production``).

Exit codes (one table: :data:`parity.cli._errors.EXIT_CODES`)::

    0  success
    1  unexpected error (rerun with --debug for the traceback)
    2  usage error: unknown command, bad option or argument
    3  parity check failed                          ParityMismatchError
    4  input does not match the model signature,    SchemaError, ValueError (malformed input file)
       or an input file is malformed
    5  not found: model, version, alias or file     NotFoundError, FileNotFoundError
    6  integrity error: a file's sha256 differs     IntegrityError
    7  untrusted artifact: rerun with --trusted     UntrustedArtifactError
    8  any other parity error                       ParityError
    9  the server cannot listen (port in use)       AddressInUse (parity serve)

Every error prints one red ``error: ...`` line on stderr (plus the traceback with ``--debug``).
To add a command group, write ``parity/cli/_<name>_cmds.py`` with ``register(app)`` and add it
to :data:`parity.cli._app.COMMAND_GROUPS`.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from parity.cli._app import app

__all__ = ["app", "main"]

# Distributions of the `cli` extra, by top-level module; click comes with typer.
_CLI_MODULES = {"typer": "typer", "click": "typer", "rich": "rich"}


def main() -> None:
    """Run the ``parity`` command line (one clear line naming the extra when typer or rich is missing)."""
    try:
        from parity.cli._app import main as run
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing not in _CLI_MODULES:
            raise
        print(
            f"error: the parity command line needs the 'cli' extra ({_CLI_MODULES[missing]} is not installed): "
            "pip install 'parity[cli]'",
            file=sys.stderr,
        )
        raise SystemExit(1) from None
    run()


def __getattr__(name: str) -> Any:
    """Import the typer app on first use, so ``main`` can report a missing extra."""
    if name == "app":
        from parity.cli._app import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
