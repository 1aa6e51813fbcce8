"""``parity registry ...``: push, list, show, alias, history and versions of registered models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from parity._format import read_manifest
from parity.cli._context import check_ref, get_state
from parity.cli._render import kv_table, manifest_summary, out, passed_text, print_json, table
from parity.errors import NotFoundError, RegistryError
from parity.registry import AliasChange, ModelVersion

__all__ = ["register", "registry_app"]

registry_app = typer.Typer(
    name="registry",
    help="Numbered, immutable, verified model versions with movable aliases (root: --registry / $PARITY_HOME).",
    no_args_is_help=True,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON (only) to stdout.")]
NameArg = Annotated[str, typer.Argument(metavar="NAME", help="Model name.")]


def register(app: typer.Typer) -> None:
    """Add the ``registry`` command group to ``app``."""
    app.add_typer(registry_app, name="registry")


def _version_dict(version: ModelVersion) -> dict[str, Any]:
    return {
        "name": version.name,
        "version": version.version,
        "digest": version.digest,
        "created": version.created,
        "path": str(version.path),
        "aliases": list(version.aliases),
    }


def _change_dict(change: AliasChange) -> dict[str, Any]:
    return {
        "time": change.time,
        "name": change.name,
        "alias": change.alias,
        "old_version": change.old_version,
        "new_version": change.new_version,
    }


AllowFailedOpt = Annotated[
    bool,
    typer.Option(
        "--allow-failed-parity", help="Accept a version whose parity check FAILED (it will not answer like Python)."
    ),
]


def _arrow(old: int | None, new: int | None) -> str:
    return f"{'-' if old is None else old} -> {'(deleted)' if new is None else new}"


@registry_app.command("push")
def push_cmd(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(metavar="PATH", help="Artifact directory to register.")],
    alias: Annotated[str | None, typer.Option("--alias", "-a", help="Point this alias at the pushed version.")] = None,
    allow_failed_parity: AllowFailedOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Register an artifact directory as the next version of its model (identical content is not duplicated)."""
    if not path.exists():
        raise FileNotFoundError(f"no artifact directory {str(path)!r}: it does not exist")
    registry = get_state(ctx).registry()
    manifest = read_manifest(path)  # only the name: push() verifies every file
    try:
        known = {v.version for v in registry.versions(str(manifest.get("name")))}
    except NotFoundError:
        known = set()
    version = registry.push(path, allow_failed_parity=allow_failed_parity)
    created = version.version not in known
    if alias is not None:
        registry.set_alias(version.name, alias, version.version, allow_failed_parity=allow_failed_parity)
        version = registry.get(f"{version.name}:{version.version}")  # refresh its aliases
    if json_out:
        print_json({**_version_dict(version), "new": created})
        return
    verb = "registered" if created else "already registered as"
    where = escape(str(registry.root))
    out.print(f"{verb} [bold]{version}[/bold] (digest {version.digest[:12]}) in {where}", soft_wrap=True)
    if alias is not None:
        out.print(f"alias [bold]{version.name}@{alias}[/bold] -> {version.version}", soft_wrap=True)


@registry_app.command("list")
def list_cmd(ctx: typer.Context, json_out: JsonOpt = False) -> None:
    """List registered models with their latest version and aliases."""
    summaries = get_state(ctx).registry().list()
    if json_out:
        print_json(
            [{"name": s.name, "latest": s.latest, "aliases": s.aliases, "created": s.created} for s in summaries]
        )
        return
    out.print(
        table(
            "Models",
            ("name", "latest", "aliases", "first registered"),
            (
                (s.name, s.latest, ", ".join(f"{a}={v}" for a, v in s.aliases.items()) or None, s.created)
                for s in summaries
            ),
        )
    )


@registry_app.command("show")
def show_cmd(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(metavar="REF", help="name, name:VERSION, name@ALIAS or a pushed directory.")],
    json_out: JsonOpt = False,
) -> None:
    """Show one registered version: digest, aliases and a summary of its manifest."""
    check_ref(ref)
    version = get_state(ctx).registry().get(ref)
    summary = manifest_summary(read_manifest(version.path))
    if json_out:
        print_json({**_version_dict(version), "manifest": summary})
        return
    rows: list[tuple[str, Any]] = [
        ("version", str(version)),
        ("aliases", list(version.aliases) or None),
        ("digest", version.digest),
        ("registered", version.created),
        ("path", str(version.path)),
    ]
    rows += [(k, v) for k, v in summary.items() if k not in ("parity_passed", "blocked_by", "metrics")]
    rows.append(("parity", passed_text(bool(summary["parity_passed"]))))
    if summary["blocked_by"]:
        rows.append(("NOT PORTABLE", f"blocked by {summary['blocked_by'].get('step')}"))
    rows += [(f"metric {k}", v) for k, v in sorted(summary["metrics"].items())]
    out.print(kv_table(rows, title=f"{version}"))


@registry_app.command("alias")
def alias_cmd(
    ctx: typer.Context,
    name: NameArg,
    alias: Annotated[str, typer.Argument(metavar="ALIAS", help="Alias to create or move, e.g. production.")],
    version: Annotated[int, typer.Argument(metavar="VERSION", min=1, help="Version number the alias points at.")],
    allow_failed_parity: AllowFailedOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Point ALIAS of model NAME at VERSION (recorded in the alias history)."""
    change = get_state(ctx).registry().set_alias(name, alias, version, allow_failed_parity=allow_failed_parity)
    if json_out:
        print_json(_change_dict(change))
        return
    out.print(f"[bold]{name}@{alias}[/bold]: {_arrow(change.old_version, change.new_version)}", soft_wrap=True)


@registry_app.command("history")
def history_cmd(ctx: typer.Context, name: NameArg, json_out: JsonOpt = False) -> None:
    """Show every alias change of model NAME, oldest first."""
    changes = get_state(ctx).registry().history(name)
    if json_out:
        print_json([_change_dict(c) for c in changes])
        return
    out.print(
        table(
            f"Alias history of {name}",
            ("time", "alias", "change"),
            ((c.time, c.alias, _arrow(c.old_version, c.new_version)) for c in changes),
        )
    )


@registry_app.command("versions")
def versions_cmd(ctx: typer.Context, name: NameArg, json_out: JsonOpt = False) -> None:
    """List every version of model NAME, oldest first."""
    versions = get_state(ctx).registry().versions(name)
    if json_out:
        print_json([_version_dict(v) for v in versions])
        return
    out.print(
        table(
            f"Versions of {name}",
            ("version", "registered", "digest", "aliases"),
            ((v.version, v.created, v.digest[:12], list(v.aliases) or None) for v in versions),
        )
    )


@registry_app.command("fsck")
def fsck_cmd(
    ctx: typer.Context,
    repair: Annotated[
        bool, typer.Option("--repair", help="Delete crash debris and rewrite history from the index.")
    ] = False,
    verify: Annotated[bool, typer.Option("--verify/--no-verify", help="Also check every stored file's sha256.")] = True,
    json_out: JsonOpt = False,
) -> None:
    """Report what crashed writers left (stale pushes, orphan versions, history out of sync) and repair it."""
    problems = get_state(ctx).registry().fsck(repair=repair, verify=verify)
    left = [p for p in problems if not p.repaired]
    if json_out:
        print_json([p.__dict__ for p in problems])
    elif problems:
        out.print(
            table(
                "Registry check",
                ("model", "problem", "key", "detail", "repaired"),
                ((p.model, p.kind, p.key, escape(p.detail), "yes" if p.repaired else "no") for p in problems),
            )
        )
    else:
        out.print("registry is consistent")
    if left:
        hint = "" if repair else "; rerun with --repair"
        raise RegistryError(f"{len(left)} registry problem(s) left{hint}")
