"""The composition part of `make demo`: two model servers, the composition service over them, a fallback.

Starts ``parity serve`` for the species classifier (REST) and the body-mass regressor (gRPC),
``parity compose serve penguin_rules.py:composition`` over both, sends penguins through it and
checks the answers against the same rule run in-process on the artifacts, kills the mass server
to show the fallback, then prints the decision log (``parity compose explain``) and a skew report
of the composition's lake (inputs, both models' outputs and the decisions).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent


def _start(cmd: list[str], env: dict[str, str], log: Path, url: str) -> subprocess.Popen[bytes]:
    """Start a server in the background and wait until it reports ready."""
    import httpx

    print("$ " + " ".join(cmd) + " &", flush=True)
    proc = subprocess.Popen(cmd, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT)  # noqa: SIM115
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    raise SystemExit(f"{cmd[1:3]} did not become ready; see {log}\n{log.read_text(errors='replace')[-2000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_compose_demo(out: Path, env: dict[str, str], free_port: Any, rows: pd.DataFrame) -> dict[str, Any]:
    """Run the composition demo; return what the summary checks."""
    import httpx

    from parity._io import atomic_write_json
    from parity.compose import load_composition, reference
    from parity.registry import Registry

    bin_dir = Path(sys.executable).parent
    parity_cli = str(bin_dir / "parity")
    sys.path.insert(0, str(HERE))
    from train_body_mass import train

    mass_art = train(out / "penguin_mass")
    print(f"packaged penguin_mass: holdout MAE {mass_art.manifest['metrics']['holdout_mae_g']:.0f} g")
    subprocess.run([parity_cli, "registry", "push", str(out / "penguin_mass")], env=env, check=True)
    registry = Registry(env["PARITY_HOME"])
    species_art, mass_art = registry.load("penguins@production"), registry.load("penguin_mass")

    p_species, p_mass, g_mass, p_comp, g_comp = (free_port() for _ in range(5))
    lake = out / "compose-lake"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        species = _start(
            [
                parity_cli,
                "serve",
                "penguins@production",
                "--port",
                str(p_species),
                "--grpc-port",
                "0",
                "--lake",
                "none",
            ],
            env,
            out / "species.log",
            f"http://127.0.0.1:{p_species}",
        )
        procs.append(species)
        mass = _start(
            [parity_cli, "serve", "penguin_mass", "--port", str(p_mass), "--grpc-port", str(g_mass), "--lake", "none"],
            env,
            out / "mass.log",
            f"http://127.0.0.1:{p_mass}",
        )
        procs.append(mass)
        comp_env = {
            **env,
            "PENGUIN_SPECIES_URL": f"http://127.0.0.1:{p_species}",
            "PENGUIN_MASS_URL": f"grpc://127.0.0.1:{g_mass}",
        }
        spec = f"{HERE / 'penguin_rules.py'}:composition"
        subprocess.run([parity_cli, "compose", "check", spec], env=comp_env, check=True)
        base = f"http://127.0.0.1:{p_comp}"
        composed = _start(
            [
                parity_cli,
                "compose",
                "serve",
                spec,
                "--port",
                str(p_comp),
                "--grpc-port",
                str(g_comp),
                "--lake",
                str(lake),
            ],
            comp_env,
            out / "compose.log",
            base,
        )
        procs.append(composed)

        records = json.loads(rows.to_json(orient="records"))
        answers = []
        for i in range(0, len(records), 5):
            r = httpx.post(
                f"{base}/v1/models/penguin_care:predict",
                json={"instances": records[i : i + 5]},
                headers={"x-request-id": f"demo-{i}"},
                timeout=10,
            )
            r.raise_for_status()
            answers += r.json()["predictions"]
        comp = load_composition(spec)
        expected = comp.run(rows, models={"species": species_art, "mass": mass_art}).rows()
        same = [a["species"] for a in answers] == [e["species"] for e in expected] and [
            a["status"] for a in answers
        ] == [e["status"] for e in expected]
        ratio_diff = float(
            np.nanmax(
                np.abs(
                    np.array([a["mass_ratio"] for a in answers], dtype=float)
                    - np.array([e["mass_ratio"] for e in expected], dtype=float)
                )
            )
        )
        statuses = pd.Series([a["status"] for a in answers]).value_counts().to_dict()
        print(f"composition answered {len(answers)} rows: statuses {statuses}")
        print(f"same as the rule in-process on the artifacts: {same} (max |mass_ratio diff| {ratio_diff:.1e})")

        print("killing the body-mass server (SIGKILL) ...")
        mass.kill()
        mass.wait()
        r = httpx.post(
            f"{base}/v1/models/penguin_care:predict",
            json={"instances": records[:3]},
            headers={"x-request-id": "demo-fallback"},
            timeout=10,
        )
        r.raise_for_status()
        fallback = r.json()
        print(f"with the mass model down: {fallback['predictions']}")
        print(f"response parameters: {fallback['parameters']}")
        metrics = httpx.get(f"{base}/metrics", timeout=5).text
        print(
            "metrics: "
            + "; ".join(line for line in metrics.splitlines() if line.startswith("parity_compose_fallbacks"))
        )
        _stop(composed)  # graceful: flushes the lake
    finally:
        for p in reversed(procs):
            _stop(p)

    explained = subprocess.run(
        [parity_cli, "compose", "explain", "demo-fallback", "--lake", str(lake)],
        env={**env, "COLUMNS": "160"},
        text=True,
        capture_output=True,
        check=True,
    )
    print("decision log of request demo-fallback:\n" + explained.stdout.rstrip())

    from train_penguins import CATEGORICAL, NUMERIC, load_data

    data = load_data()
    # The rows both models were trained on (the mass model never saw a penguin without measurements).
    known = data[data["body_mass_g"].notna()][NUMERIC + CATEGORICAL]
    ref = reference(comp, known, models={"species": species_art, "mass": mass_art})
    atomic_write_json(out / "compose-reference.json", ref)
    skew = subprocess.run(
        [
            parity_cli,
            "skew",
            str(out / "compose-reference.json"),
            "--data",
            str(lake),
            "--json",
            str(out / "compose-skew.json"),
        ],
        env={**env, "COLUMNS": "160"},
        text=True,
        capture_output=True,
        check=False,
    )
    print(skew.stdout.rstrip())
    if skew.returncode != 0:
        raise SystemExit(f"parity skew on the composition failed: {skew.stderr}")
    features = [f["name"] for f in json.loads((out / "compose-skew.json").read_text())["features"]]
    comp.close()
    return {
        "same": same and ratio_diff < 1e-9,
        "fallback": fallback["parameters"].get("composition_fallback") == "mass=default"
        and all(p["status"] in ("mass-unknown", "check-species") for p in fallback["predictions"]),
        "skew_features": features,
    }
