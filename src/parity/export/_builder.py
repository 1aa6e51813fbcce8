"""A tiny ONNX graph builder: unique names, constants and nodes, nothing else.

Every exporter in this package appends to one :class:`GraphBuilder`, so the whole pipeline
(raw inputs -> preprocessing -> estimator -> postprocessing) ends up in a single graph.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["ML_DOMAIN", "ML_OPSET", "ONNX_OPSET", "GraphBuilder"]

# Opset 21 for the default domain and ai.onnx.ml 5 for the TreeEnsemble op with double
# thresholds and leaf weights; both are supported by onnxruntime >= 1.20.
ONNX_OPSET = 21
ML_OPSET = 5
ML_DOMAIN = "ai.onnx.ml"


@dataclass
class GraphBuilder:
    """Accumulates nodes, initializers, inputs and outputs of one ONNX graph."""

    name: str = "parity"
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    initializers: list[onnx.TensorProto] = field(default_factory=list)
    inputs: list[onnx.ValueInfoProto] = field(default_factory=list)
    outputs: list[onnx.ValueInfoProto] = field(default_factory=list)
    _used: set[str] = field(default_factory=set)
    _counter: int = 0

    def unique(self, hint: str) -> str:
        """Return a tensor/node name based on ``hint`` that is not used yet."""
        base = "".join(ch if ch.isalnum() or ch in "_." else "_" for ch in hint) or "t"
        name = base
        while name in self._used:
            self._counter += 1
            name = f"{base}_{self._counter}"
        self._used.add(name)
        return name

    def reserve(self, name: str) -> str:
        """Claim an exact name (graph inputs/outputs), failing if it is taken."""
        if name in self._used:
            raise ValueError(f"ONNX name {name!r} is used twice")
        self._used.add(name)
        return name

    def const(self, value: Any, hint: str = "const", dtype: Any = None) -> str:
        """Add a constant initializer and return its name."""
        arr = np.asarray(value, dtype=dtype) if dtype is not None else np.asarray(value)
        if arr.dtype.kind in "OUS":
            arr = np.asarray(arr, dtype=object)
            tensor = helper.make_tensor(
                self.unique(hint),
                TensorProto.STRING,
                arr.shape,
                [str(v).encode() for v in arr.ravel()],  # type: ignore[misc]
            )
        else:
            tensor = numpy_helper.from_array(arr, self.unique(hint))
        self.initializers.append(tensor)
        return tensor.name

    def node(
        self,
        op: str,
        inputs: list[str],
        hint: str | None = None,
        *,
        n_outputs: int = 1,
        domain: str = "",
        outputs: list[str] | None = None,
        **attrs: Any,
    ) -> str:
        """Append one node and return the name of its (first) output."""
        outs = outputs or [self.unique(f"{hint or op.lower()}_out{i or ''}") for i in range(n_outputs)]
        self.nodes.append(
            helper.make_node(op, inputs, outs, name=self.unique(f"{hint or op}_node"), domain=domain, **attrs)
        )
        return outs[0]

    def cast(self, x: str, to: int, hint: str = "cast") -> str:
        """Cast ``x`` to the ONNX element type ``to``."""
        return self.node("Cast", [x], hint, to=to)

    def add_input(self, name: str, elem_type: int, shape: list[Any]) -> str:
        """Declare a graph input with an exact name."""
        self.reserve(name)
        self.inputs.append(helper.make_tensor_value_info(name, elem_type, shape))
        return name

    def add_output(self, source: str, name: str, elem_type: int, shape: list[Any]) -> str:
        """Expose ``source`` as graph output ``name`` (through Identity so names stay exact)."""
        self.reserve(name)
        self.node("Identity", [source], f"out_{name}", outputs=[name])
        self.outputs.append(helper.make_tensor_value_info(name, elem_type, shape))
        return name

    def producer(self, name: str) -> onnx.NodeProto | None:
        """The node that outputs tensor ``name`` (None for inputs and constants)."""
        return next((n for n in reversed(self.nodes) if name in n.output), None)

    def _live_nodes(self) -> list[onnx.NodeProto]:
        """The nodes some graph output depends on, in order: onnxruntime runs a superseded node too."""
        needed = {o.name for o in self.outputs}
        live = []
        for node in reversed(self.nodes):
            if not needed.intersection(node.output):
                continue
            live.append(node)
            needed.update(node.input)
            subgraphs = [a.g for a in node.attribute if a.type == onnx.AttributeProto.GRAPH]
            subgraphs += [g for a in node.attribute for g in a.graphs]
            while subgraphs:  # names a nested graph reads from the outer scope
                sub = subgraphs.pop()
                for inner in sub.node:
                    needed.update(inner.input)
                    subgraphs += [a.g for a in inner.attribute if a.type == onnx.AttributeProto.GRAPH]
                    subgraphs += [g for a in inner.attribute for g in a.graphs]
        return live[::-1]

    def build(self, doc: str = "") -> onnx.ModelProto:
        """Return the checked ONNX model (without nodes no output depends on)."""
        graph = helper.make_graph(
            self._live_nodes(), self.name, self.inputs, self.outputs, self.initializers, doc_string=doc
        )
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", ONNX_OPSET), helper.make_opsetid(ML_DOMAIN, ML_OPSET)],
            producer_name="parity",
        )
        model.ir_version = 10
        onnx.checker.check_model(model, full_check=True)
        return model
