"""The model repository of a server: configured refs, loaded versions, hot reload, load/unload.

Each configured ref is a *slot* holding one loaded :class:`ModelHandle`. Slots whose ref moves
(``name@alias`` or a bare ``name`` = latest) are polled every ``reload_interval_s``: when the
resolved version changes, the new version is loaded in a thread, smoke-checked with
``Artifact.verify`` (the stored parity sample must replay), and only then swapped in. The swap is
one assignment on the event loop: requests already holding the old handle finish on it (its
batcher drains, then closes), new requests get the new one. A version that fails to load or
verify is logged, counted, remembered (not retried until the ref moves again) and the old one
keeps serving.

Served model names are artifact names; versions are registry versions as strings ("0" for an
artifact directory that is not registered). A request naming no version gets the handle of the
first configured slot of that name.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from parity.artifact import Artifact, load_artifact
from parity.errors import NotFoundError, ParityError, ParityMismatchError
from parity.registry import Ref, Registry, parse_ref, validate_name
from parity.server._batching import Batcher
from parity.server._checks import echo
from parity.server._errors import LimitExceeded, ModelNotFound

__all__ = ["MAX_SLOTS", "ModelHandle", "ModelRepository"]

MAX_SLOTS = 64
"""Most model refs one server holds (configured + loaded through the repository extension)."""

log = logging.getLogger("parity.server")


class ModelHandle:
    """One loaded model version: the artifact, its batcher and whether it takes requests."""

    def __init__(self, artifact: Artifact, version: int, ref: str, batcher: Batcher) -> None:
        self.artifact = artifact
        self.name = artifact.name
        self.version = version
        self.version_str = str(version)
        self.ref = ref
        self.batcher = batcher
        self.ready = True
        self.signature = artifact.signature
        self.input_names = frozenset(artifact.signature.input_names)
        self.output_names = tuple(artifact.signature.output_names)
        self.platform = "parity-onnx" if artifact.portable else "parity-python"
        sig = artifact.signature
        self.inputs_metadata: list[dict[str, Any]] = [
            {"name": c.name, "datatype": c.datatype, "shape": [-1], "parameters": {"nullable": c.nullable}}
            for c in sig.inputs
        ]
        self.outputs_metadata: list[dict[str, Any]] = [
            {"name": o.name, "datatype": o.datatype, "shape": [-1]} for o in sig.outputs
        ]

    def __repr__(self) -> str:
        return f"<ModelHandle {self.name}:{self.version} ready={self.ready}>"


@dataclass
class _Slot:
    ref: str
    parsed: Ref
    handle: ModelHandle | None = None
    name: str | None = None
    unloaded: bool = False
    failed_version: int | None = None
    last_error: str = ""
    desired_version: int | None = None
    """What the ref resolved to at the last start or poll (the served version may lag: a refused reload)."""

    @property
    def dynamic(self) -> bool:
        return self.parsed.kind in ("alias", "latest")


def _load_ref(name: str) -> Ref:
    """The registry ref a load request names (name, name:N or name@alias), never a server-side path."""
    parsed = parse_ref(name)
    if parsed.kind != "path":
        return parsed
    # parse_ref reads '.x', '~x' and bare words naming a local artifact directory as paths; a client
    # must not make the server load from its filesystem, so only a valid model name passes (as latest).
    return Ref(kind="latest", name=validate_name(name))


def _same_ref(a: Ref, b: Ref) -> bool:
    """True when two refs name the same thing (``penguins:1`` however it was spelled)."""
    return (a.kind, a.name, a.version, a.alias, a.path) == (b.kind, b.name, b.version, b.alias, b.path)


BatcherFactory = Callable[[Artifact, str], Batcher]
ReloadHook = Callable[[str, bool], None]


class ModelRepository:
    """Loaded model versions by name, with hot reload and the repository extension operations."""

    def __init__(
        self,
        refs: tuple[str, ...] | list[str],
        *,
        registry: Registry,
        make_batcher: BatcherFactory,
        trusted: bool = False,
        allow_failed_parity: bool = False,
        on_reload: ReloadHook | None = None,
    ) -> None:
        self.registry = registry
        self.trusted = trusted
        self.allow_failed_parity = allow_failed_parity
        self._make_batcher = make_batcher
        self._on_reload = on_reload
        self._slots = [_Slot(ref, parse_ref(ref)) for ref in refs]
        self._versions: dict[str, dict[str, ModelHandle]] = {}
        self._default: dict[str, ModelHandle] = {}
        self._lock = asyncio.Lock()  # one load/unload/reload at a time
        self._draining: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ lookups (hot path)

    def get(self, name: str, version: str | int | None = None) -> ModelHandle:
        """Return the handle serving ``name`` (at ``version`` if given), or raise ModelNotFound."""
        if version is None or version == "":
            handle = self._default.get(name)
        else:
            handle = self._versions.get(name, {}).get(str(version))
        if handle is None:
            raise ModelNotFound(self._not_found(name, version))
        return handle

    def _not_found(self, name: str, version: str | int | None) -> str:
        if name not in self._versions:
            if any(s.name == name and s.unloaded for s in self._slots):
                return f"model {name!r} is unloaded; load it with POST /v2/repository/models/{name}/load"
            return f"unknown model {echo(name)}; this server serves {sorted(self._versions)}"
        return f"model {name!r} has no version {echo(str(version))}; served versions: {self.versions(name)}"

    def serving(self, handle: ModelHandle) -> dict[str, Any]:
        """Desired vs served version of the slot serving ``handle``: ref, both versions, and why they differ."""
        for slot in self._slots:
            if slot.handle is handle:
                return {
                    "ref": slot.ref,
                    "served_version": handle.version_str,
                    "desired_version": str(
                        slot.desired_version if slot.desired_version is not None else handle.version
                    ),
                    "refused_version": None if slot.failed_version is None else str(slot.failed_version),
                    "reason": slot.last_error,
                }
        return {"ref": handle.ref, "served_version": handle.version_str, "desired_version": handle.version_str}

    def names(self) -> list[str]:
        """Served model names."""
        return sorted(self._versions)

    def versions(self, name: str) -> list[str]:
        """Served versions of ``name`` (numeric order)."""
        return sorted(self._versions.get(name, {}), key=lambda v: int(v) if v.isdigit() else -1)

    def handles(self) -> Iterator[ModelHandle]:
        """Every served handle."""
        for by_version in self._versions.values():
            yield from by_version.values()

    def all_ready(self) -> bool:
        """True when some model serves and every configured (not unloaded) slot has a ready handle."""
        live = [s for s in self._slots if not s.unloaded]
        return bool(live) and all(s.handle is not None and s.handle.ready for s in live)

    def _rebuild(self) -> None:
        """Recompute the lookup maps from the slots (copy-on-write: readers never see a half state)."""
        versions: dict[str, dict[str, ModelHandle]] = {}
        default: dict[str, ModelHandle] = {}
        for slot in self._slots:
            h = slot.handle
            if h is None or slot.unloaded:
                continue
            versions.setdefault(h.name, {}).setdefault(h.version_str, h)
            default.setdefault(h.name, h)
        self._versions, self._default = versions, default

    # ------------------------------------------------------------------ loading

    def _resolve(self, parsed: Ref) -> int:
        """Registry version a ref points at now (0 for an unregistered artifact directory)."""
        if parsed.kind == "path":
            try:
                return self.registry.get(parsed).version
            except ParityError:
                return 0
        return self.registry.get(parsed).version

    def _load_version(self, slot: _Slot, version: int) -> Artifact:
        """Load and smoke-check one version (runs in a worker thread)."""
        if slot.parsed.kind == "path":
            assert slot.parsed.path is not None
            artifact = load_artifact(slot.parsed.path, trusted=self.trusted)
        else:
            # Pin the resolved version: the alias may move again while we load.
            artifact = self.registry.load(f"{slot.parsed.name}:{version}", trusted=self.trusted)
        if not artifact.parity_passed and not self.allow_failed_parity:
            raise ParityMismatchError(
                f"{artifact.name}:{version} FAILED its parity check at packaging "
                f"({artifact.manifest['parity'].get('failure')}); refusing to serve it. "
                "Serve it anyway only with allow_failed_parity=True",
                param="allow_failed_parity",
            )
        report = artifact.verify(raise_on_failure=False)
        # An artifact packaged with allow_mismatch records a failed parity check: only require that it runs.
        if not report.passed and artifact.parity_passed:
            raise ParityMismatchError(
                f"{artifact.name}:{version} failed its smoke check (stored parity sample replay): {report.failure}",
                report=report,
            )
        return artifact

    async def _load_slot(self, slot: _Slot, version: int | None = None) -> ModelHandle:
        if version is None:
            version = await asyncio.to_thread(self._resolve, slot.parsed)
        slot.desired_version = version
        artifact = await asyncio.to_thread(self._load_version, slot, version)
        handle = ModelHandle(artifact, version, slot.ref, self._make_batcher(artifact, str(version)))
        self._swap(slot, handle)
        return handle

    def _swap(self, slot: _Slot, handle: ModelHandle | None) -> None:
        old = slot.handle
        slot.handle = handle
        if handle is not None:
            slot.name = handle.name
            slot.unloaded = False
            slot.failed_version = None
            slot.last_error = ""
        self._rebuild()
        if old is not None and old is not handle and all(s.handle is not old for s in self._slots):
            old.ready = False
            task = asyncio.get_running_loop().create_task(old.batcher.close())
            self._draining.add(task)
            task.add_done_callback(self._draining.discard)

    async def start(self) -> None:
        """Load every configured ref (raises on the first failure: a server must not half-start)."""
        async with self._lock:
            for slot in self._slots:
                handle = await self._load_slot(slot)
                log.info("serving %s as %s:%s (%s)", slot.ref, handle.name, handle.version, handle.platform)

    async def close(self) -> None:
        """Mark every handle not ready and wait for their batchers to drain."""
        for slot in self._slots:
            if slot.handle is not None:
                slot.handle.ready = False
        await asyncio.gather(*(h.batcher.close() for h in list(self.handles())), *self._draining)

    # ------------------------------------------------------------------ hot reload

    async def poll(self) -> None:
        """Check every moving ref once; load, smoke-check and swap in versions that changed."""
        for slot in list(self._slots):
            if not slot.dynamic or slot.unloaded or slot.handle is None:
                continue
            try:
                version = await asyncio.to_thread(self._resolve, slot.parsed)
            except ParityError as exc:
                log.warning("hot reload: cannot resolve %s: %s", slot.ref, exc)
                continue
            slot.desired_version = version
            if version == slot.handle.version or version == slot.failed_version:
                continue
            async with self._lock:
                if slot.handle is None or slot.unloaded or version == slot.handle.version:
                    continue
                old = slot.handle.version
                try:
                    handle = await self._load_slot(slot, version)
                except Exception as exc:  # any failure keeps the old version serving
                    slot.failed_version = version
                    slot.last_error = str(exc)
                    log.error(
                        "hot reload of %s to version %s refused, still serving %s: %s", slot.ref, version, old, exc
                    )
                    if self._on_reload is not None:
                        self._on_reload(slot.name or str(slot.parsed.name), False)
                    continue
            log.info("hot reload: %s now serves %s:%s (was %s)", slot.ref, handle.name, handle.version, old)
            if self._on_reload is not None:
                self._on_reload(handle.name, True)

    async def run_reloader(self, interval_s: float) -> None:
        """Poll forever (cancel the task to stop)."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.poll()
            except Exception:  # the reloader must survive anything
                log.exception("hot reload poll failed")

    @property
    def has_dynamic_refs(self) -> bool:
        """True when some configured ref can move (alias or bare name)."""
        return any(s.dynamic for s in self._slots)

    # ------------------------------------------------------------------ repository extension

    async def load(self, name: str) -> None:
        """(Re)load the slots of ``name`` (a model name, ``name:N`` or ``name@alias``); a new ref gets a slot."""
        async with self._lock:
            parsed = _load_ref(name)  # validates the name (RegistryError -> 400)
            # A bare name reloads every slot of that model; a pinned ref the slot of the same ref.
            if parsed.kind == "latest":
                slots = [s for s in self._slots if s.name == parsed.name or _same_ref(s.parsed, parsed)]
            else:
                slots = [s for s in self._slots if _same_ref(s.parsed, parsed)]
            if not slots:
                if len(self._slots) >= MAX_SLOTS:
                    raise LimitExceeded(
                        f"this server already holds {len(self._slots)} model refs (the limit is {MAX_SLOTS}); "
                        "unload one or restart with the refs to serve"
                    )
                slot = _Slot(name, parsed)
                try:
                    await self._load_slot(slot)
                except NotFoundError as exc:
                    # The registry's message names its storage location: a client must not learn paths.
                    raise ModelNotFound(str(exc).replace(repr(self.registry.storage), "the registry")) from None
                self._slots.append(slot)
                self._rebuild()
                return
            for slot in slots:
                await self._load_slot(slot)

    async def unload(self, name: str) -> None:
        """Stop serving every version of model ``name`` (in-flight requests still finish)."""
        async with self._lock:
            slots = [s for s in self._slots if s.name == name and not s.unloaded]
            if not slots:
                raise ModelNotFound(self._not_found(name, None))
            for slot in slots:
                slot.unloaded = True
                self._swap(slot, None)

    def index(self) -> list[dict[str, Any]]:
        """OIP repository index: every configured model and every registry model, with its state."""
        out: list[dict[str, Any]] = []
        seen: set[str] = set()
        for slot in self._slots:
            name = slot.name or str(slot.parsed.name or slot.ref)
            seen.add(name)
            if slot.handle is not None and not slot.unloaded:
                state = "READY" if slot.handle.ready else "UNAVAILABLE"
                entry = {"name": name, "version": slot.handle.version_str, "state": state, "reason": ""}
            else:
                entry = {"name": name, "version": "", "state": "UNAVAILABLE", "reason": "unloaded"}
            if slot.last_error:
                entry["reason"] = f"last reload failed: {slot.last_error}"
            out.append(entry)
        try:
            listed = self.registry.list()
        except (ParityError, OSError):
            listed = []
        for summary in listed:
            if summary.name not in seen:
                out.append({"name": summary.name, "version": "", "state": "UNAVAILABLE", "reason": "not loaded"})
        return out
