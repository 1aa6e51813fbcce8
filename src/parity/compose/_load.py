"""Find a composition by ``MODULE:OBJECT`` (a module path or a .py file, and an attribute)."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

from parity.compose._declare import Composition
from parity.errors import DeclarationError

__all__ = ["load_composition"]


def load_composition(spec: str) -> Composition:
    """Import ``MODULE:OBJECT`` (e.g. ``rules:composition`` or ``path/rules.py:composition``) and return it."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise DeclarationError(f"expected MODULE:OBJECT (e.g. rules:composition); got {spec!r}")
    if module_name.endswith(".py") or "/" in module_name:
        path = Path(module_name)
        if not path.is_file():
            raise DeclarationError(f"composition module file {str(path)!r} does not exist")
        name = f"_parity_composition_{path.stem}"
        loader = importlib.util.spec_from_file_location(name, path)
        if loader is None or loader.loader is None:
            raise DeclarationError(f"cannot import {str(path)!r} as a Python module")
        module = importlib.util.module_from_spec(loader)
        sys.modules[name] = module
        sys.path.insert(0, str(path.parent.resolve()))
        try:
            loader.loader.exec_module(module)
        finally:
            sys.path.remove(str(path.parent.resolve()))
    else:
        if "" not in sys.path and "." not in sys.path:
            sys.path.insert(0, "")  # like `python -m`: modules of the working directory import
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            raise DeclarationError(f"cannot import composition module {module_name!r}: {exc}") from exc
    obj = getattr(module, attr, None)
    if obj is None:
        raise DeclarationError(f"module {module_name!r} has no attribute {attr!r}")
    if callable(obj) and not isinstance(obj, Composition):
        obj = obj()  # a factory
    if not isinstance(obj, Composition):
        raise DeclarationError(f"{spec} is a {type(obj).__name__}, not a parity.compose.Composition")
    return obj
