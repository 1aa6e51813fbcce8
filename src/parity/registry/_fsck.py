"""``Registry.fsck``: find (and repair) what crashed writers left behind, model by model, under each lock.

The index is the single source of truth. What fsck reports, and what ``repair`` does about it:

=====================  ======================================================  =========================
kind                   meaning                                                 repair
=====================  ======================================================  =========================
``stale_staging``      a push died while copying (``.staging/<id>`` older      deleted
                       than ``stale_after_s``)
``orphan_version``     ``versions/<n>`` the index does not list (died between  deleted (never
                       rename and index write)                                 acknowledged)
``temp_file``          an interrupted atomic write's temp file                 deleted
``history``            history file differs from what the index implies        rewritten from the index
                       (torn last line, missing or unapplied change)
``missing_version``    the index lists a version whose folder is gone          none: restore it
``corrupt_version``    a stored file or manifest differs from its digest       none: restore it
``no_index``           a model folder without ``index.json`` (first push       deleted when only debris
                       died) or an unreadable index                            remains
=====================  ======================================================  =========================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

from parity._format import verify_dir
from parity.errors import ParityError

if TYPE_CHECKING:
    from parity.registry._registry import Registry

__all__ = ["FsckProblem", "ProblemKind", "fsck"]

ProblemKind = Literal[
    "stale_staging", "orphan_version", "temp_file", "history", "missing_version", "corrupt_version", "no_index"
]


@dataclass(frozen=True)
class FsckProblem:
    """One finding of :meth:`Registry.fsck`."""

    model: str
    kind: ProblemKind
    key: str
    """Storage key concerned (relative to the registry root)."""
    detail: str
    repaired: bool = False


_DEBRIS_TEXT = {
    "stale_staging": "a push that never finished (crashed while copying)",
    "orphan_version": "a version folder the index does not list (crashed before the index write)",
    "temp_file": "temp file of an interrupted atomic write",
}


def fsck(registry: Registry, *, repair: bool, verify: bool) -> list[FsckProblem]:
    """Check (and with ``repair`` fix) every model folder of ``registry``; see the module docstring."""
    problems: list[FsckProblem] = []
    storage = registry.storage
    for name in storage.list("models"):
        if name.startswith("."):
            continue
        model = f"models/{name}"
        with storage.lock(name):
            try:
                index = registry._read_index(name)
            except ParityError as exc:
                problems.append(FsckProblem(name, "no_index", f"{model}/index.json", str(exc)))
                continue
            problems += _debris(registry, name, index, repair)
            if index is None:
                empty = not storage.list(f"{model}/versions") and not storage.list(f"{model}/.staging")
                repaired = repair and empty
                if repaired:
                    storage.delete(model)
                problems.append(FsckProblem(name, "no_index", model, "model folder without index.json", repaired))
                continue
            lines, torn = registry._read_history(name)
            derived = registry._derived_history(index, lines)
            if derived != lines or torn:
                what = "torn last line" if torn else f"{len(lines)} line(s), the index implies {len(derived)}"
                if repair:
                    registry._sync_history(name, index)
                problems.append(FsckProblem(name, "history", f"{model}/history.jsonl", what, repair))
            for version in registry.versions(name):
                key = f"{model}/versions/{version.version}"
                if not storage.exists(key):
                    problems.append(FsckProblem(name, "missing_version", key, f"{version} is in the index only"))
                elif verify:
                    try:
                        storage.fetch(key)
                        verify_dir(version.path, digest=version.digest, scheme=version.digest_scheme, label=version)
                    except ParityError as exc:
                        problems.append(FsckProblem(name, "corrupt_version", key, str(exc)))
    return problems


def _debris(registry: Registry, name: str, index: dict[str, Any] | None, repair: bool) -> list[FsckProblem]:
    found = registry.find_debris(name, index)
    if repair:
        for _, key in found:
            registry.storage.delete(key)
    return [FsckProblem(name, cast(ProblemKind, kind), key, _DEBRIS_TEXT[kind], repair) for kind, key in found]
