"""The ``parity`` typer app: global options, command registration and the one error handler."""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Callable
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

import parity
from parity.cli import _artifact_cmds, _batch_cmds, _compose_cmds, _deploy_cmds, _registry_cmds, _skew_cmds
from parity.cli._context import CliState, get_state
from parity.cli._errors import UNEXPECTED, epilog, exit_code_for, missing_serve_dist, with_flags
from parity.cli._render import error_line, warn
from parity.errors import MissingDependencyError

__all__ = ["COMMAND_GROUPS", "app", "main"]


class ParityGroup(TyperGroup):
    """Root command group: turns every error of a subcommand into one red line and a documented exit code."""

    # Any: the Context class of typer's vendored click is private; typer passes a typer.Context.
    def invoke(self, ctx: Any) -> Any:
        """Run the subcommand; map exceptions through EXIT_CODES."""
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise  # typer's own exits and usage errors (exit code 2) keep their behaviour
        except Exception as exc:
            code = exit_code_for(exc)
            if get_state(ctx).debug:
                traceback.print_exception(exc, file=sys.stderr)
            if code == UNEXPECTED:
                text = str(exc) or type(exc).__name__
                message = f"unexpected {type(exc).__name__}: {text} (rerun with --debug for the traceback)"
            else:
                message = with_flags(exc)
            error_line(message)
            raise typer.Exit(code) from None


app = typer.Typer(
    name="parity",
    cls=ParityGroup,
    help="Inspect, verify and score parity model artifacts, and manage the model registry.",
    epilog=epilog(),
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_show_locals=False,
)


class _StderrLogHandler(logging.Handler):
    """Shows parity's log warnings as yellow lines, resolving sys.stderr at each record (test runners swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        warn(self.format(record))


def _route_logs() -> None:
    logger = logging.getLogger("parity")
    if not any(isinstance(h, _StderrLogHandler) for h in logger.handlers):
        logger.addHandler(_StderrLogHandler(logging.WARNING))


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"parity {parity.__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    ctx: typer.Context,
    registry: Annotated[
        str | None,
        typer.Option(
            "--registry",
            envvar="PARITY_HOME",
            show_envvar=True,
            help="Registry root: a directory or s3://bucket/prefix (default: ./.parity).",
        ),
    ] = None,
    debug: Annotated[
        bool, typer.Option("--debug", help="Print the full traceback of an error (the exit code is unchanged).")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or notes on stderr.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Global options (they go before the command)."""
    ctx.obj = CliState(registry_root=registry, debug=debug, quiet=quiet)
    _route_logs()


def _register_serve(app: typer.Typer) -> None:
    """Add ``parity serve``, or, without the `serve` extra, a stand-in that says which extra to install."""
    dist = missing_serve_dist()
    if dist is not None:

        @app.command("serve", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
        def serve_missing(ctx: typer.Context) -> None:
            """Serve models over REST and gRPC (needs the 'serve' extra: pip install 'parity[serve]')."""
            raise MissingDependencyError(
                f"`parity serve` needs the 'serve' extra ({dist} is not installed): pip install 'parity[serve]'"
            )

        return
    from parity.cli import _serve_cmds

    _serve_cmds.register(app)


# One line per command module: each exposes register(app). Add e.g. _serve_cmds.register here.
COMMAND_GROUPS: tuple[Callable[[typer.Typer], None], ...] = (
    _artifact_cmds.register,
    _registry_cmds.register,
    _register_serve,
    _skew_cmds.register,
    _deploy_cmds.register,
    _batch_cmds.register,
    _compose_cmds.register,
)
for _register in COMMAND_GROUPS:
    _register(app)


def main() -> None:
    """Run the ``parity`` command line."""
    app(prog_name="parity")
