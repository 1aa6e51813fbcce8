"""The declaration API: a composition's schema, its model endpoints and its business rule, recorded first.

Nothing connects while a composition is declared: :meth:`Composition.check` (and serving, and
:meth:`Composition.run`) validate the declaration against each downstream's live V2 metadata or
the artifact's signature before the first request.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from parity.compose._clients import Client, GrpcClient, LocalClient, RestClient, StubClient
from parity.compose._resilience import Retry
from parity.errors import DeclarationError
from parity.schema import ColumnSpec, OutputSpec, Signature

if TYPE_CHECKING:
    from parity.compose._engine import Decision, Runner

__all__ = ["Composition", "Endpoint", "Fallback", "Local", "Remote", "Split", "Stub", "Target"]


@dataclass(frozen=True)
class Remote:
    """A model behind an OIP V2 server: ``http(s)://host:port`` (REST) or ``grpc(s)://host:port`` (gRPC)."""

    url: str
    model: str
    version: str | None = None
    token: str | None = None
    """Bearer token; ``token_env`` reads it from an environment variable at connect time instead."""
    token_env: str | None = None
    verify: bool | str = True
    """TLS: True (system CAs), False (no verification), or a CA bundle path."""
    cert: str | tuple[str, str] | None = None
    """Client certificate (REST mutual TLS)."""
    parameters: Mapping[str, Any] | None = None
    """Request-level OIP parameters, e.g. ``{"content_type": "pd"}`` for MLServer's pandas codec (REST)."""

    def client(self) -> Client:
        """A client for this endpoint (connections open on first use)."""
        token = self.token or (os.environ.get(self.token_env) if self.token_env else None)
        if self.url.startswith(("grpc://", "grpcs://")):
            tls = self.url.startswith("grpcs://")
            target = self.url.split("://", 1)[1]
            roots = self.verify if isinstance(self.verify, str) else None
            return GrpcClient(target, self.model, version=self.version, token=token, tls=tls, root_certificates=roots)
        if not self.url.startswith(("http://", "https://")):
            raise DeclarationError(
                f"Remote url must start with http://, https://, grpc:// or grpcs://; got {self.url!r}", field="url"
            )
        return RestClient(
            self.url,
            self.model,
            version=self.version,
            token=token,
            verify=self.verify,
            cert=self.cert,
            parameters=self.parameters,
        )

    def __str__(self) -> str:
        return f"{self.model} at {self.url}"


@dataclass(frozen=True)
class Local:
    """An artifact run in-process: a registry ref (``name``, ``name:3``, ``name@alias``), a directory or an Artifact."""

    ref: Any
    registry: str | None = None
    trusted: bool = False

    def client(self) -> Client:
        """An in-process client (the artifact loads, digests verified, on first use)."""
        from parity.registry import Registry

        registry = Registry(self.registry) if self.registry else None
        return LocalClient(self.ref, registry=registry, trusted=self.trusted)

    def __str__(self) -> str:
        return f"in-process {self.ref}"


@dataclass(frozen=True)
class Stub:
    """A stand-in: a callable of the model's input columns (sync or async) or constant outputs per row."""

    fn: Callable[..., Any] | Mapping[str, Any]
    name: str = "stub"

    def client(self) -> Client:
        """A stub client."""
        return StubClient(self.fn, name=self.name)

    def __str__(self) -> str:
        return f"stub {self.name!r}"


Target = Remote | Local | Stub


@dataclass(frozen=True)
class Split:
    """Traffic split: ``share`` (0..1) of requests go to ``candidate``, sticky by the input column ``key``."""

    primary: Target
    candidate: Target
    share: float
    key: str | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.share <= 1.0:
            raise DeclarationError(f"Split.share must be within [0, 1]; got {self.share}", field="share")


@dataclass(frozen=True)
class Fallback:
    """What answers when a downstream fails: constant ``default`` outputs, or another ``model``."""

    default: Mapping[str, Any] | None = None
    model: Target | None = None

    def __post_init__(self) -> None:
        if (self.default is None) == (self.model is None):
            raise DeclarationError("Fallback takes exactly one of default={...} or model=...", field="fallback")


@dataclass(frozen=True)
class Endpoint:
    """One model the composition uses, with how its inputs are supplied and how its failures are handled."""

    name: str
    target: Target | Split
    inputs: Mapping[str, str] = field(default_factory=dict)
    """Model input -> composition input, where the names differ (same name otherwise)."""
    computed: tuple[str, ...] = ()
    """Model inputs the rule computes and passes as ``models.call(name, inputs={...})``."""
    reads: tuple[str, ...] | None = None
    """Outputs the rule reads (None: every output of the model)."""
    fallback: Fallback | None = None
    shadow: Target | None = None
    timeout_s: float = 1.0
    retry: Retry = field(default_factory=Retry)
    breaker_failures: int = 5
    breaker_reset_s: float = 2.0
    required: bool = True
    """Whether the composition reports not-ready while this downstream is not ready."""

    def targets(self) -> dict[str, Target]:
        """Every target by role: primary (and candidate), fallback model, shadow."""
        out: dict[str, Target] = {}
        if isinstance(self.target, Split):
            out["primary"], out["candidate"] = self.target.primary, self.target.candidate
        else:
            out["primary"] = self.target
        if self.fallback is not None and self.fallback.model is not None:
            out["fallback"] = self.fallback.model
        if self.shadow is not None:
            out["shadow"] = self.shadow
        return out


Rule = Callable[..., Any]


def _fallback_kind(fallback: Fallback | None) -> str | None:
    if fallback is None:
        return None
    return "default" if fallback.default is not None else "model"


@dataclass
class _RuleSpec:
    fn: Rule
    calls: tuple[str, ...] | None
    per_row: bool
    is_async: bool


class Composition:
    """Business logic as a service: typed inputs and outputs, model endpoints, and one rule over their outputs."""

    def __init__(
        self,
        name: str,
        *,
        inputs: Signature | Sequence[ColumnSpec],
        outputs: Sequence[OutputSpec],
        version: int = 1,
        deadline_s: float = 2.0,
        description: str = "",
        shadow_queue: int = 256,
    ) -> None:
        if not name or "/" in name or "=" in name:
            raise DeclarationError(f"composition name must be non-empty without '/' or '='; got {name!r}", field="name")
        self.name = name
        ins = list(inputs.inputs) if isinstance(inputs, Signature) else list(inputs)
        self.signature = Signature(tuple(ins), tuple(outputs))
        self.version = int(version)
        self.deadline_s = float(deadline_s)
        self.description = description
        self.shadow_queue = int(shadow_queue)
        self.endpoints: dict[str, Endpoint] = {}
        self._rule: _RuleSpec | None = None
        self._runners: dict[tuple[Any, ...], Runner] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"<Composition {self.name}:{self.version} endpoints={list(self.endpoints)}>"

    # ------------------------------------------------------------------ declaration

    def model(
        self,
        name: str,
        target: Target | Split,
        *,
        inputs: Mapping[str, str] | None = None,
        computed: Sequence[str] = (),
        reads: Sequence[str] | None = None,
        fallback: Fallback | None = None,
        shadow: Target | None = None,
        timeout_s: float = 1.0,
        retry: Retry | None = None,
        breaker_failures: int = 5,
        breaker_reset_s: float = 2.0,
        required: bool | None = None,
    ) -> Composition:
        """Declare a model endpoint ``name`` (chainable); nothing connects until check/serve/run."""
        if name in self.endpoints:
            raise DeclarationError(f"endpoint {name!r} is declared twice", endpoint=name)
        if not name.isidentifier():
            raise DeclarationError(f"endpoint name must be an identifier; got {name!r}", endpoint=name)
        if not isinstance(target, Remote | Local | Stub | Split):
            raise DeclarationError(
                f"endpoint {name!r}: target must be Remote, Local, Stub or Split; got {type(target).__name__}",
                endpoint=name,
            )
        if timeout_s <= 0:
            raise DeclarationError(f"endpoint {name!r}: timeout_s must be > 0; got {timeout_s}", endpoint=name)
        if breaker_failures < 1:  # checked here, not when the first runner builds the breaker
            raise DeclarationError(
                f"endpoint {name!r}: breaker_failures must be >= 1; got {breaker_failures}",
                endpoint=name,
                field="breaker_failures",
            )
        self.endpoints[name] = Endpoint(
            name=name,
            target=target,
            inputs=dict(inputs or {}),
            computed=tuple(computed),
            reads=None if reads is None else tuple(reads),
            fallback=fallback,
            shadow=shadow,
            timeout_s=float(timeout_s),
            retry=retry or Retry(),
            breaker_failures=breaker_failures,
            breaker_reset_s=breaker_reset_s,
            # A downstream with a fallback does not stop the composition from answering.
            required=(fallback is None) if required is None else required,
        )
        return self

    def rule(self, fn: Rule | None = None, *, calls: Sequence[str] | None = None, per_row: bool = False) -> Any:
        """Decorator declaring the business rule (sync or async).

        ``rule(request, models)`` runs once per request: ``request`` maps input names to arrays and
        ``models`` gives each endpoint's outputs (``models["species"]["label"]``) or calls them
        (``await models.call("species", "mass")`` runs both concurrently). It returns the outputs as
        a mapping of columns or a list of row dicts. With ``per_row=True`` the rule is
        ``rule(row, outputs)`` per row, both plain dicts. ``calls`` names the endpoints called
        (concurrently) before the rule runs: by default all of them, except for an async rule
        that is not per-row, which calls what it needs itself.
        """

        def register(f: Rule) -> Rule:
            is_async = inspect.iscoroutinefunction(f)
            self._rule = _RuleSpec(f, None if calls is None else tuple(calls), per_row, is_async)
            return f

        return register(fn) if fn is not None else register

    @property
    def rule_spec(self) -> _RuleSpec:
        """The declared rule (DeclarationError if none)."""
        if self._rule is None:
            raise DeclarationError(f"composition {self.name!r} has no rule: decorate a function with @composition.rule")
        return self._rule

    def prefetch(self) -> tuple[str, ...]:
        """Endpoints called before the rule runs."""
        spec = self.rule_spec
        if spec.calls is not None:
            return spec.calls
        if spec.is_async and not spec.per_row:
            return ()
        return tuple(self.endpoints)

    def describe(self) -> dict[str, Any]:
        """The declaration as plain data (for printing and docs)."""
        eps = {}
        for ep in self.endpoints.values():
            eps[ep.name] = {
                "targets": {role: str(t) for role, t in ep.targets().items()},
                "split": ({"share": ep.target.share, "key": ep.target.key} if isinstance(ep.target, Split) else None),
                "inputs": dict(ep.inputs),
                "computed": list(ep.computed),
                "reads": None if ep.reads is None else list(ep.reads),
                "fallback": None
                if ep.fallback is None
                else ("default" if ep.fallback.default is not None else "model"),
                "timeout_s": ep.timeout_s,
                "required": ep.required,
            }
        return {
            "name": self.name,
            "version": self.version,
            "deadline_s": self.deadline_s,
            "signature": self.signature.to_dict(),
            "endpoints": eps,
            "prefetch": list(self.prefetch()) if self._rule else [],
        }

    # ------------------------------------------------------------------ running in-process

    def runner(self, models: Mapping[str, Any] | None = None, *, lake: Any = None) -> Runner:
        """A new runner over the declared endpoints, with some replaced by ``models`` (artifacts, stubs...)."""
        from parity.compose._engine import Runner

        return Runner(self, overrides=models, lake=lake)

    def _cached_runner(self, models: Mapping[str, Any] | None) -> Runner:
        key = tuple(sorted((k, id(v)) for k, v in (models or {}).items()))
        runner = self._runners.get(key)
        if runner is None:
            if len(self._runners) >= 16:  # unit tests build many model maps: keep the cache small
                self.close()
            runner = self.runner(models)
            self._runners[key] = runner
        return runner

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise DeclarationError(
                "Composition.run cannot be called inside an event loop; use `await composition.arun(...)`"
            )
        if self._loop is None:
            # A private loop kept across calls: clients and their pools live on it, and unlike
            # asyncio.run / asyncio.Runner it installs no signal handlers per call (~1 ms each).
            self._loop = asyncio.new_event_loop()
            # Close it when the composition is collected (close() does it at once).
            self._finalizer = weakref.finalize(self, self._loop.close)
        return self._loop

    def run(self, inputs: Any, models: Mapping[str, Any] | None = None, *, request_id: str | None = None) -> Decision:
        """Run the composition in this process on ``inputs`` (records, a column mapping or a DataFrame).

        ``models`` replaces endpoints by name: an Artifact, a Remote/Local/Stub, a callable of the
        input columns, or a mapping of constant outputs. The declaration is validated on first use.
        """
        loop = self._event_loop()
        runner = self._cached_runner(models)
        return loop.run_until_complete(runner.run(inputs, request_id=request_id))

    async def arun(
        self, inputs: Any, models: Mapping[str, Any] | None = None, *, request_id: str | None = None
    ) -> Decision:
        """Async :meth:`run` (inside an event loop)."""
        runner = self._cached_runner(models)
        return await runner.run(inputs, request_id=request_id)

    def drain(self) -> None:
        """Wait until background shadow calls of :meth:`run` finished."""
        loop = self._event_loop()
        for runner in self._runners.values():
            loop.run_until_complete(runner.drain())

    def check(self, models: Mapping[str, Any] | None = None, *, timeout_s: float = 5.0) -> dict[str, Any]:
        """Validate the declaration against every downstream's live metadata; DeclarationError on a mismatch."""
        runner = self.runner(models)

        async def go() -> dict[str, Any]:
            try:
                return await runner.validate(timeout_s)
            finally:
                await runner.aclose()

        return asyncio.run(go())

    def close(self) -> None:
        """Close the connections of in-process runs."""
        if self._loop is not None:
            for runner in self._runners.values():
                self._loop.run_until_complete(runner.aclose())
            self._loop.close()
            self._loop = None
        self._runners.clear()


def target_of(value: Any) -> Target:
    """What a ``models={...}`` override means: a target, an Artifact, a callable or constant outputs."""
    from parity.artifact import Artifact

    if isinstance(value, Remote | Local | Stub):
        return value
    if isinstance(value, Artifact):
        return Local(value)
    if isinstance(value, str):
        return Local(value)
    if callable(value) or isinstance(value, Mapping):
        return Stub(value, name=getattr(value, "__name__", "stub"))
    raise DeclarationError(
        f"a models={{...}} value must be an Artifact, a ref, Remote/Local/Stub, a callable or a mapping; "
        f"got {type(value).__name__}"
    )
