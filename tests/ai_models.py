"""Small models and scripts for the ai tests and benchmarks, built in code (no binary fixtures).

ONNX models use the ``onnx`` helper API with a symbolic batch dimension "N", so AI.MODELSTORE
... BATCHSIZE can merge requests. Torch builders import torch when called.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# opset 13 / IR 8: old enough for any onnxruntime the project supports.
_OPSET = [helper.make_opsetid("", 13)]


def _model(
    nodes: list[onnx.NodeProto],
    inputs: list[tuple[str, int]],
    outputs: list[tuple[str, int]],
    initializers: Sequence[onnx.TensorProto] = (),
    elem_type: int = TensorProto.FLOAT,
) -> bytes:
    """A one-graph model; inputs/outputs are (name, width), each of shape [N, width]."""
    graph = helper.make_graph(
        nodes,
        "learnhub_test",
        [helper.make_tensor_value_info(n, elem_type, ["N", w]) for n, w in inputs],
        [helper.make_tensor_value_info(n, elem_type, ["N", w]) for n, w in outputs],
        list(initializers),
    )
    model = helper.make_model(graph, opset_imports=_OPSET)
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def onnx_add_model() -> bytes:
    """Inputs a, b: FLOAT [N, 2]; output c = a + b."""
    return _model([helper.make_node("Add", ["a", "b"], ["c"])], [("a", 2), ("b", 2)], [("c", 2)])


def onnx_string_identity_model() -> bytes:
    """Input s: STRING [N, 1]; output t = s."""
    return _model(
        [helper.make_node("Identity", ["s"], ["t"])],
        [("s", 1)],
        [("t", 1)],
        elem_type=TensorProto.STRING,
    )


def onnx_mul_model(k: float) -> bytes:
    """Input x: FLOAT [N, 2]; output y = k * x."""
    scale = numpy_helper.from_array(np.array(k, dtype=np.float32), "k")
    return _model([helper.make_node("Mul", ["x", "k"], ["y"])], [("x", 2)], [("y", 2)], [scale])


def linear_weights(in_dim: int, out_dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The (W, b) that ``onnx_linear_model`` with the same arguments uses."""
    rng = np.random.default_rng(seed)
    weight = rng.standard_normal((in_dim, out_dim)).astype(np.float32)
    bias = rng.standard_normal(out_dim).astype(np.float32)
    return weight, bias


def onnx_linear_model(in_dim: int, out_dim: int, seed: int = 0) -> bytes:
    """Input x: FLOAT [N, in_dim]; output y = x @ W + b with W, b = linear_weights(...)."""
    weight, bias = linear_weights(in_dim, out_dim, seed)
    return _model(
        [helper.make_node("Gemm", ["x", "W", "b"], ["y"])],
        [("x", in_dim)],
        [("y", out_dim)],
        [numpy_helper.from_array(weight, "W"), numpy_helper.from_array(bias, "b")],
    )


def onnx_heavy_model(dim: int = 256, depth: int = 1024, seed: int = 0) -> bytes:
    """Input x: FLOAT [N, dim]; output y after ``depth`` rounds of y = tanh(y @ W).

    Real single-thread CPU work: with the defaults one run of a 1-row input takes about 3 ms
    on a 2020s x86 core, 16 rows about 4 times that (so merging requests pays). All rounds
    share one W (256 KB) to keep the blob small; tanh keeps the values bounded.
    """
    rng = np.random.default_rng(seed)
    weight = (rng.standard_normal((dim, dim)) / np.sqrt(dim)).astype(np.float32)
    nodes, previous = [], "x"
    for i in range(depth):
        output = "y" if i == depth - 1 else f"t{i}"
        nodes.append(helper.make_node("MatMul", [previous, "W"], [f"m{i}"]))
        nodes.append(helper.make_node("Tanh", [f"m{i}"], [output]))
        previous = output
    return _model(nodes, [("x", dim)], [("y", dim)], [numpy_helper.from_array(weight, "W")])


def torch_model_bytes() -> bytes:
    """A scripted module whose forward(a, b) returns a + b, saved the way AI.MODELSTORE takes it."""
    import torch

    class Add(torch.nn.Module):
        def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return a + b

    buffer = io.BytesIO()
    with warnings.catch_warnings():  # torch 2.13 deprecates TorchScript; RedisAI still needs it
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(Add()), buffer)
    return buffer.getvalue()


# Entry points in RedisAI 1.2's signature (for AI.SCRIPTSTORE ... ENTRY_POINTS 2 bar_entry split),
# plus bar(a, b) in the old positional style (for AI.SCRIPTSET and AI.SCRIPTRUN / DAGRUN).
TORCH_SCRIPT = """
def bar(a, b):
    return a + b

def bar_entry(tensors: List[Tensor], keys: List[str], args: List[str]):
    scale = 1.0
    if len(args) > 0:
        scale = float(args[0])
    return tensors[0] + tensors[1] * scale + len(keys)

def split(tensors: List[Tensor], keys: List[str], args: List[str]):
    return tensors[0] + 1, tensors[0] - 1
"""
