"""The README's Python blocks run as written (in a fresh working directory, with its own registry)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    """Every fenced ```python block of the README."""
    return re.findall(r"^```python\n(.*?)^```$", README.read_text(encoding="utf-8"), flags=re.S | re.M)


def test_readme_has_a_python_quick_start() -> None:
    assert python_blocks(), "README.md lost its Python quick start"


def test_readme_python_blocks_run_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The quick start packages, registers and loads; the composition blocks declare without a server."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PARITY_HOME", raising=False)
    namespace: dict[str, object] = {"__name__": "__readme__"}
    for index, block in enumerate(python_blocks()):
        exec(compile(block, f"README.md python block {index}", "exec"), namespace)
        if index == 0:
            assert (tmp_path / "out" / "churn").is_dir() and (tmp_path / ".parity").is_dir()
    from parity.compose import Composition

    assert isinstance(namespace.get("composition"), Composition)
    assert callable(namespace.get("test_retention_rule"))
