"""Runtimes execute a model on validated column arrays: ONNX (portable) or Python (trusted only).

Like MLServer's model runtime, loading and predicting are split: a runtime is built once from
an artifact's files and then answers ``predict(columns) -> outputs`` many times. Columns are
already validated and typed by :mod:`parity.codec`.
"""

from __future__ import annotations

import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from parity.codec import frame_from_columns
from parity.model import reference_outputs, restore_dtypes
from parity.postprocess import OutputPlan
from parity.schema import Signature

if TYPE_CHECKING:
    from parity._dictgraph import DictionaryFeeds

__all__ = ["OnnxRuntime", "PythonRuntime", "Runtime"]


class Runtime(ABC):
    """Runs one model on typed columns."""

    kind: str

    @abstractmethod
    def predict(self, columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Return the declared outputs for validated input columns."""


class OnnxRuntime(Runtime):
    """Runs ``model.onnx`` with onnxruntime."""

    kind = "onnx"
    parallel_rows = 4096
    """Batches at least this large run on a multi-threaded session (when ``threads`` is None)."""

    def __init__(
        self, model: bytes | str | os.PathLike[str], signature: Signature, *, threads: int | None = None
    ) -> None:
        self._source = model if isinstance(model, bytes) else os.fspath(model)
        env = os.environ.get("PARITY_ORT_THREADS")
        self._threads = threads if threads is not None else (int(env) if env else None)
        # Small batches (the serving case) run on one thread: a thread pool costs more than it
        # saves there, and a server runs many requests concurrently anyway.
        self.session = self._session(self._threads or 1)
        self._parallel: Any = None
        self._inputs = [i.name for i in self.session.get_inputs()]
        self._outputs = list(signature.output_names)
        self._text = [c.name for c in signature.inputs if c.datatype == "BYTES" and c.name in self._inputs]
        self._dictionary: tuple[Any, dict[str, DictionaryFeeds]] | None = None
        self._lock = threading.Lock()

    def _session(self, threads: int, source: bytes | str | None = None) -> Any:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        model = self._source if source is None else source
        return ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])

    def _dictionary_session(self) -> tuple[Any, dict[str, DictionaryFeeds]]:
        """The graph taking text as distinct values + row indices (built on first use, one thread)."""
        with self._lock:  # batch engines call from several threads at once
            if self._dictionary is None:
                from parity._dictgraph import dictionary_model  # imports onnx: only batch scoring needs it

                model = self._source if isinstance(self._source, bytes) else Path(self._source).read_bytes()
                rewritten, feeds = dictionary_model(model, self._text)
                self._dictionary = (self._session(self._threads or 1, rewritten), feeds)
            return self._dictionary

    def _session_for(self, rows: int) -> Any:
        if self._threads is not None or rows < self.parallel_rows:
            return self.session
        if self._parallel is None:
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
            self._parallel = self._session(cores) if cores > 1 else self.session
        return self._parallel

    def predict(self, columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the graph (on each text column's distinct values when the columns carry them)."""
        dictionaries = getattr(columns, "dictionaries", None)
        if self._text and dictionaries and all(name in dictionaries for name in self._text):
            session, names = self._dictionary_session()
            feeds = {name: columns[name] for name in self._inputs if name not in names}
            for name, feed in names.items():
                feeds[feed.values] = dictionaries[name].values
                feeds[feed.indices] = dictionaries[name].indices
            results = session.run(self._outputs, feeds)
        else:
            feeds = {name: columns[name] for name in self._inputs}
            rows = len(next(iter(feeds.values()))) if feeds else 0
            results = self._session_for(rows).run(self._outputs, feeds)
        return dict(zip(self._outputs, results, strict=True))


class PythonRuntime(Runtime):
    """Runs the original Python model (only for artifacts loaded with trusted=True)."""

    kind = "python"

    def __init__(self, model: Any, signature: Signature, plan: OutputPlan, dtypes: Mapping[str, str]) -> None:
        self.model = model
        self.signature = signature
        self.plan = plan
        self.dtypes = dict(dtypes)

    def predict(self, columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Rebuild the raw frame and run the model with its postprocessing."""
        frame = restore_dtypes(frame_from_columns(self.signature, columns), self.dtypes)
        return reference_outputs(self.model, frame, self.plan)
