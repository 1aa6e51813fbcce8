"""Start-up validation: a composition's declaration against each downstream's metadata.

For every endpoint and every target of it (primary, split candidate, fallback model, shadow):
the downstream must answer its metadata (an unknown model or server is an error), every model
input must be supplied (a composition input of the same or the mapped name, or a declared
``computed`` input), a supplied input must have the model's datatype, a mapped name must be a
model input, every output the rule reads must exist, and a default fallback must give every
output the rule reads. Every problem is collected and raised as one
:class:`~parity.errors.DeclarationError` naming the endpoint and field.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from parity.compose._clients import Client, ModelMeta
from parity.errors import DeclarationError, DownstreamError, ParityError

if TYPE_CHECKING:
    from parity.compose._declare import Composition, Endpoint

__all__ = ["Problem", "validate"]


class Problem(DeclarationError):
    """One mismatch between a declaration and a downstream."""


def _check_endpoint(
    comp: Composition, ep: Endpoint, role: str, client: Client, meta: ModelMeta | None
) -> list[Problem]:
    where = f"endpoint {ep.name!r} ({role}: {client.label})"
    if meta is None:
        return []  # a stub: nothing declared to check against
    problems: list[Problem] = []
    comp_inputs = {c.name: c.datatype for c in comp.signature.inputs}
    for model_input, datatype in meta.inputs.items():
        if model_input in ep.computed:
            continue
        source = ep.inputs.get(model_input, model_input)
        if source not in comp_inputs:
            problems.append(
                Problem(
                    f"{where}: model input {model_input!r} ({datatype}) is never supplied: the composition has no "
                    f"input {source!r}; map it with inputs={{{model_input!r}: '<composition input>'}} or list it in "
                    "computed=[...] and pass it in models.call(..., inputs=...)",
                    endpoint=ep.name,
                    field=model_input,
                )
            )
        elif comp_inputs[source] != datatype:
            problems.append(
                Problem(
                    f"{where}: datatype mismatch for model input {model_input!r}: the model expects {datatype}, "
                    f"composition input {source!r} is {comp_inputs[source]}",
                    endpoint=ep.name,
                    field=model_input,
                )
            )
    for model_input in [*ep.inputs, *ep.computed]:
        if model_input not in meta.inputs:
            problems.append(
                Problem(
                    f"{where}: {model_input!r} is declared as a model input but the model has no such input; "
                    f"its inputs are {list(meta.inputs)}",
                    endpoint=ep.name,
                    field=model_input,
                )
            )
    if role != "shadow":
        for output in ep.reads or ():
            if output not in meta.outputs:
                problems.append(
                    Problem(
                        f"{where}: the rule reads output {output!r} but the model has no such output; "
                        f"its outputs are {list(meta.outputs)}",
                        endpoint=ep.name,
                        field=output,
                    )
                )
    return problems


def _check_default(ep: Endpoint, outputs: dict[str, str] | None) -> list[Problem]:
    if ep.fallback is None or ep.fallback.default is None:
        return []
    wanted = list(ep.reads) if ep.reads is not None else list(outputs or {})
    return [
        Problem(
            f"endpoint {ep.name!r}: fallback default gives no value for output {name!r} the rule reads",
            endpoint=ep.name,
            field=name,
        )
        for name in wanted
        if name not in ep.fallback.default
    ]


async def validate(
    comp: Composition, clients: dict[str, dict[str, Client]], timeout_s: float
) -> dict[str, dict[str, ModelMeta | None]]:
    """Fetch every downstream's metadata and check the declaration; return the metadata by endpoint and role."""
    problems: list[DeclarationError] = []
    spec = comp.rule_spec
    for name in spec.calls or ():
        if name not in comp.endpoints:
            problems.append(
                DeclarationError(
                    f"the rule calls endpoint {name!r}, which is not declared; declared: {list(comp.endpoints)}",
                    endpoint=name,
                )
            )
    for ep in comp.endpoints.values():
        for col in ep.inputs.values():
            if col not in comp.signature.input_names:
                problems.append(
                    DeclarationError(
                        f"endpoint {ep.name!r}: inputs maps to composition input {col!r}, which is not declared",
                        endpoint=ep.name,
                        field=col,
                    )
                )
    roles = [(ep, role, client) for ep in comp.endpoints.values() for role, client in clients[ep.name].items()]

    async def fetch(client: Client) -> ModelMeta | BaseException | None:
        try:
            return await client.metadata(timeout_s)
        except (DownstreamError, ParityError, OSError) as exc:
            return exc

    metas = await asyncio.gather(*(fetch(c) for _, _, c in roles))
    found: dict[str, dict[str, ModelMeta | None]] = {ep: {} for ep in comp.endpoints}
    for (ep, role, client), meta in zip(roles, metas, strict=True):
        if isinstance(meta, BaseException):
            problems.append(
                DeclarationError(
                    f"endpoint {ep.name!r} ({role}): unknown or unreachable downstream {client.label}: {meta}",
                    endpoint=ep.name,
                )
            )
            continue
        found[ep.name][role] = meta
        problems.extend(_check_endpoint(comp, ep, role, client, meta))
    for ep in comp.endpoints.values():
        primary = found[ep.name].get("primary")
        problems.extend(_check_default(ep, primary.outputs if primary else None))
    if problems:
        first = problems[0]
        text = "\n".join(f"  - {p}" for p in problems)
        raise DeclarationError(
            f"composition {comp.name!r} does not match its downstreams ({len(problems)} problem(s)):\n{text}",
            endpoint=first.endpoint,
            field=first.field,
        )
    return found


def summary(found: dict[str, dict[str, ModelMeta | None]]) -> dict[str, Any]:
    """What was validated, as plain data."""
    return {
        ep: {role: None if m is None else {"model": m.name, "versions": list(m.versions)} for role, m in roles.items()}
        for ep, roles in found.items()
    }
