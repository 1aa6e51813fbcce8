"""``parity build``, ``parity deploy k8s`` and ``parity env verify``: run an artifact anywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from parity.cli._context import get_state, resolve_verified
from parity.cli._errors import flag_of
from parity.cli._render import err, out, passed_text, print_json, table
from parity.deploy import InvalidOptionError
from parity.deploy._compose import plan_composition
from parity.deploy._envcheck import default_wheel_cache, verify_environment
from parity.deploy._image import build_compose_context, build_context
from parity.deploy._k8s import K8S_VERSION, K8sOptions, render, render_composition, write_manifests
from parity.deploy._lock import PLATFORMS
from parity.errors import ParityMismatchError

__all__ = ["build_cmd", "deploy_k8s_cmd", "env_verify_cmd", "register"]

RefArg = Annotated[
    str, typer.Argument(metavar="REF", help="Artifact directory, or registry ref: name, name:VERSION, name@ALIAS.")
]
OptionalRefArg = Annotated[
    str | None,
    typer.Argument(
        metavar="REF", help="Artifact directory, or registry ref: name, name:VERSION, name@ALIAS (or --compose)."
    ),
]
ComposeOpt = Annotated[
    str | None,
    typer.Option(
        "--compose", metavar="MODULE:OBJECT", help="A composition service instead of a model (e.g. rules.py:comp)."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON (only) to stdout.")]

deploy_app = typer.Typer(name="deploy", help="Generate deployment manifests for an artifact.", no_args_is_help=True)
env_app = typer.Typer(name="env", help="Check the runtime environment of an artifact.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add ``build``, ``deploy k8s`` and ``env verify`` to ``app``."""
    app.command("build")(build_cmd)
    deploy_app.command("k8s")(deploy_k8s_cmd)
    env_app.command("verify")(env_verify_cmd)
    app.add_typer(deploy_app)
    app.add_typer(env_app)


def _bad_option(exc: InvalidOptionError) -> typer.BadParameter:
    # The library names the parameter; the user typed the flag that sets it.
    return typer.BadParameter(str(exc), param_hint=flag_of(exc.param))


def _one_of(ref: str | None, compose: str | None) -> None:
    if (ref is None) == (compose is None):
        raise typer.BadParameter(
            "give exactly one of REF (a model) or --compose MODULE:OBJECT (a composition)", param_hint="REF / --compose"
        )


def build_cmd(
    ctx: typer.Context,
    output: Annotated[Path, typer.Option("--output", "-o", help="New (or empty) directory for the build context.")],
    ref: OptionalRefArg = None,
    python: Annotated[
        str | None, typer.Option("--python", help="CPython version of the image (default: the training one).")
    ] = None,
    platform: Annotated[
        str, typer.Option("--platform", help=f"Image platform: {', '.join(PLATFORMS)}.")
    ] = "linux/amd64",
    wheel: Annotated[
        Path | None, typer.Option("--wheel", help="parity wheel to install (default: built from the installed source).")
    ] = None,
    compose: ComposeOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Write a Docker build context (Dockerfile, hash-pinned requirements.lock, the artifact, parity-image.json)."""
    _one_of(ref, compose)
    if compose is not None:
        try:
            result = build_compose_context(
                compose, output, registry=get_state(ctx).registry(), python=python, platform=platform, wheel=wheel
            )
        except InvalidOptionError as exc:
            raise _bad_option(exc) from None
        _report_build(result.image, len(result.lock.packages), result.directory, json_out)
        return
    assert ref is not None
    resolved = resolve_verified(ref, get_state(ctx).registry())
    try:
        result = build_context(
            resolved.path,
            output,
            python=python,
            platform=platform,
            wheel=wheel,
            version=resolved.version.version if resolved.version else None,
        )
    except InvalidOptionError as exc:
        raise _bad_option(exc) from None
    _report_build(result.image, len(result.lock.packages), result.directory, json_out)


def _report_build(image: dict[str, Any], packages: int, directory: Path, json_out: bool) -> None:
    if json_out:
        print_json({"directory": str(directory), "image": image})
        return
    what = f"composition {image['composition']['name']!r}" if "composition" in image else repr(image["model"]["name"])
    err.print(
        f"wrote the build context of {what} to {directory} ({packages} locked packages, base {image['base_image']})\n"
        f"  docker build -t IMAGE {directory}",
        soft_wrap=True,
    )


def deploy_k8s_cmd(
    ctx: typer.Context,
    image: Annotated[str, typer.Option("--image", help="Image reference built from `parity build` (pushed).")],
    ref: OptionalRefArg = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="New (or empty) directory (default: ./k8s-NAME).")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Object names (default: the model name).")] = None,
    replicas: Annotated[int, typer.Option("--replicas", help="Initial replicas.")] = 2,
    min_replicas: Annotated[int | None, typer.Option("--min-replicas", help="Autoscaler minimum.")] = None,
    max_replicas: Annotated[int | None, typer.Option("--max-replicas", help="Autoscaler maximum.")] = None,
    cpu: Annotated[str, typer.Option("--cpu", help="CPU request per pod (e.g. 500m, 2).")] = "1",
    memory: Annotated[str, typer.Option("--memory", help="Memory request and limit per pod (e.g. 1Gi).")] = "1Gi",
    namespace: Annotated[str | None, typer.Option("--namespace", help="Namespace of every object.")] = None,
    lake: Annotated[
        str | None, typer.Option("--lake", help="Prediction lake: s3://bucket/prefix or a path in the pod.")
    ] = None,
    token_secret: Annotated[
        str | None, typer.Option("--token-secret", help="Secret whose key 'token' is the bearer token.")
    ] = None,
    kserve: Annotated[
        bool, typer.Option("--kserve", help="Write a KServe InferenceService instead (models only).")
    ] = False,
    compose: ComposeOpt = None,
    downstream: Annotated[
        list[str] | None,
        typer.Option(
            "--downstream",
            metavar="NAME=SERVICE[:PORT]",
            help="With --compose: wire endpoint NAME to a model Service (repeatable).",
        ),
    ] = None,
) -> None:
    """Write Kubernetes manifests (Deployment, Service, HPA, PDB, ServiceAccount, NetworkPolicy) + kustomization."""
    _one_of(ref, compose)
    if downstream and compose is None:
        raise typer.BadParameter("--downstream wires a composition's endpoints: use it with --compose")
    opts = K8sOptions(
        image=image,
        name=name,
        replicas=replicas,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        cpu=cpu,
        memory=memory,
        namespace=namespace,
        lake=lake,
        token_secret=token_secret,
        kserve=kserve,
    )
    try:
        if compose is not None:
            plan = plan_composition(compose)
            registry = get_state(ctx).registry()
            artifacts = [registry.verified_manifest(r)[1] for r in plan.local_refs]
            files = render_composition(plan, opts, downstream or [], artifacts=artifacts)
            target = output or Path(f"k8s-{name or plan.name}")
        else:
            assert ref is not None
            resolved = resolve_verified(ref, get_state(ctx).registry())
            files = render(resolved.manifest, opts)
            target = output or Path(f"k8s-{name or resolved.manifest['name']}")
        written = write_manifests(files, target, namespace=namespace)
    except InvalidOptionError as exc:
        raise _bad_option(exc) from None
    err.print(
        f"wrote {len(written)} files to {target} (Kubernetes {K8S_VERSION})\n  kubectl apply -k {target}",
        soft_wrap=True,
    )


def env_verify_cmd(
    ctx: typer.Context,
    ref: RefArg,
    lock: Annotated[
        Path | None,
        typer.Option(
            "--lock", help="requirements.lock of a build context (default: generate one like `parity build`)."
        ),
    ] = None,
    wheel_cache: Annotated[
        Path | None, typer.Option("--wheel-cache", help="Wheel cache directory (default $PARITY_WHEEL_CACHE).")
    ] = None,
    trusted: Annotated[bool, typer.Option("--trusted", help="Allow a non-portable artifact.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Build a fresh virtualenv from exactly the image's lock, replay the parity sample there and compare."""
    resolved = resolve_verified(ref, get_state(ctx).registry())
    if lock is not None and not lock.is_file():
        raise FileNotFoundError(f"--lock {str(lock)!r} does not exist")
    if not (get_state(ctx).quiet or json_out):
        err.print(f"building a fresh virtualenv (wheel cache {wheel_cache or default_wheel_cache()})...")
    report = verify_environment(resolved.path, lock_path=lock, cache=wheel_cache, trusted=trusted)
    if json_out:
        print_json(report.to_dict())
    else:
        out.print(passed_text(report.passed), f"outputs identical to this environment: {report.identical}; "
                  f"parity sample within tolerance: {report.parity_passed} ({report.seconds:.1f} s)")  # fmt: skip
        if report.differences:
            rows = [
                (d["package"], d["training"], d["venv"] or "-", "yes" if d["can_change_numbers"] else "no", d["note"])
                for d in report.differences
            ]
            out.print(table("Differences from the training environment",
                            ["package", "training", "venv", "can change numbers", "note"], rows))  # fmt: skip
    if not report.passed:
        raise ParityMismatchError(
            f"the fresh environment does not reproduce {resolved.manifest['name']!r}: identical={report.identical}, "
            f"parity_passed={report.parity_passed}"
        )
