"""Model and script backends: ONNX through onnxruntime, TorchScript through torch.

Both libraries are imported on first use, so ``import learnhub.ai.backends`` works without
them; a model or script that needs a missing one raises ``BackendUnavailable``. Tensors are
numpy arrays (STRING tensors: object arrays of ``bytes``). Every failure is an ``AIError``
whose text is one line, as RedisAI replies it.
"""

from __future__ import annotations

import contextlib
import functools
import io
import re
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np

from learnhub.errors import AIError, BackendUnavailable

BACKENDS = ("ONNX", "TORCH")
# RedisAI's other backends, named so that a model for them gets a clear "not here" error.
UNAVAILABLE_BACKENDS = ("TF", "TFLITE")

# The element types RedisAI tensors can hold; a backend result of another type cannot be stored.
_TENSOR_DTYPES = frozenset(
    np.dtype(name)
    for name in ("float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16")
) | {np.dtype(bool), np.dtype(object)}


def _not_installed(backend: str, library: str, install: str) -> BackendUnavailable:
    return BackendUnavailable(
        f"backend {backend} is not available: {library} is not installed (install {install})"
    )


@functools.cache
def _onnxruntime() -> ModuleType:
    try:
        import onnxruntime
    except ImportError:
        raise _not_installed("ONNX", "onnxruntime", "learnhub[onnx]") from None
    return onnxruntime


@functools.cache
def _torch() -> ModuleType:
    try:
        import torch
    except ImportError:
        raise _not_installed("TORCH", "torch", "torch") from None
    # One thread per run, as for ONNX: the hub gets its parallelism from running independent
    # runs (DAG branches, clients) on many threads, and oversubscribed pools only slow that.
    # torch's pools are process-wide, so this is set once rather than per call.
    torch.set_num_threads(1)
    # Fails once inter-op work has started (e.g. torch used before the hub): keep what is there.
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)
    return torch


def check_device(device: str) -> str:
    """Accept CPU, cpu, CPU:0 ...; GPU devices and anything else are errors."""
    kind, _, index = device.upper().partition(":")
    if index and not index.isdigit():
        raise AIError("unsupported device")
    if kind == "GPU":
        raise AIError("device GPU is not available on this hub (CPU only)")
    if kind != "CPU":
        raise AIError("unsupported device")
    return device


def _check_backend(backend: str) -> str:
    name = backend.upper()
    if name in UNAVAILABLE_BACKENDS:
        raise BackendUnavailable(
            f"backend {name} is not available in learnhub (ONNX and TORCH are; "
            "install learnhub[onnx] for ONNX, torch for TORCH)"
        )
    if name not in BACKENDS:
        raise AIError("unsupported backend")
    return name


def _check_result(array: np.ndarray, what: str) -> np.ndarray:
    if array.dtype not in _TENSOR_DTYPES:
        raise AIError(f"{what} has type {array.dtype}, which RedisAI tensors cannot hold")
    return array


def _ort_message(exc: Exception) -> str:
    """onnxruntime's message on one line, without the Python binding's "[ONNXRuntimeError] : 2 :
    INVALID_ARGUMENT :" prefix (RedisAI replies with the bare message)."""
    text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", str(exc).strip())
    return " ".join(text.split()) or type(exc).__name__


def _torch_message(exc: Exception) -> str:
    """The line of a torch error that says what went wrong: for a TorchScript interpreter
    traceback the last line (the cause), otherwise the first, plus the source line if given."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    if lines[0].startswith("The following operation failed"):
        message = lines[-1]
    else:
        message = lines[0]
        where = re.search(r'File "<string>", line (\d+)', str(exc))
        if where:
            message = f"{message} (line {where.group(1)})"
    return re.sub(r"^\w+(Error|Exception): ", "", message)


class Model:
    """A loaded model; ``run`` is thread-safe and takes and returns numpy arrays."""

    backend: str
    device: str
    inputs: list[str]
    outputs: list[str]

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError


class _OnnxModel(Model):
    def __init__(self, device: str, blob: bytes) -> None:
        ort = _onnxruntime()
        options = ort.SessionOptions()
        # One thread per run: parallel DAG branches and clients then scale across cores
        # (the run releases the GIL) instead of fighting over one pool per session.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors reach the caller as AIError; no stderr noise
        try:
            self._session = ort.InferenceSession(
                blob, sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # the binding raises its own types for every kind of bad blob
            raise AIError(f"model blob is not a valid ONNX model: {_ort_message(exc)}") from None
        self.backend = "ONNX"
        self.device = device
        self.inputs = [node.name for node in self._session.get_inputs()]
        self.outputs = [node.name for node in self._session.get_outputs()]

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        if len(inputs) != len(self.inputs):
            raise AIError(f"Expected {len(self.inputs)} inputs but got {len(inputs)}")
        feed = {name: _to_onnx(array) for name, array in zip(self.inputs, inputs, strict=True)}
        try:
            results = self._session.run(None, feed)
        except Exception as exc:  # InvalidArgument, Fail, ... are not one hierarchy
            raise AIError(_ort_message(exc)) from None
        return [
            _from_onnx(result, f"ONNX output {name}")
            for name, result in zip(self.outputs, results, strict=True)
        ]


def _to_onnx(array: np.ndarray) -> np.ndarray:
    if array.dtype != object:
        return array
    # onnxruntime takes strings as str (it would turn bytes into "b'...'"); ONNX strings are UTF-8.
    try:
        return np.vectorize(_utf8_text, otypes=[object])(array)
    except UnicodeDecodeError:
        raise AIError("ONNX STRING inputs must be valid UTF-8") from None


def _utf8_text(element: bytes | str) -> str:
    return element.decode() if isinstance(element, bytes) else element


def _from_onnx(result: Any, what: str) -> np.ndarray:
    if not isinstance(result, np.ndarray):
        raise AIError(f"{what} is not a tensor (sequences and maps are not supported)")
    if result.dtype == object:
        return np.vectorize(str.encode, otypes=[object])(result)
    return _check_result(result, what)


class _TorchModel(Model):
    def __init__(
        self, device: str, blob: bytes, inputs: Sequence[str], outputs: Sequence[str]
    ) -> None:
        torch = _torch()
        try:
            self._module = torch.jit.load(io.BytesIO(blob), map_location="cpu")
        except Exception as exc:  # zip, pickle and TorchScript errors alike
            raise AIError(
                f"model blob is not a valid TorchScript model: {_torch_message(exc)}"
            ) from None
        self.backend = "TORCH"
        self.device = device
        self.inputs = list(inputs)
        self.outputs = list(outputs)

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        torch = _torch()
        tensors = [_to_torch(array) for array in inputs]
        try:
            with torch.no_grad():
                result = self._module(*tensors)
        except Exception as exc:  # TorchScript raises RuntimeError and others
            raise AIError(_torch_message(exc)) from None
        return _from_torch(result, "TORCH model")


def _to_torch(array: np.ndarray) -> Any:
    if array.dtype == object:
        raise AIError("STRING tensors are not supported by the TORCH backend")
    if array.dtype not in _TENSOR_DTYPES:
        raise AIError(f"tensors of type {array.dtype} are not supported by the TORCH backend")
    # torch.from_numpy shares memory and wants a writable, contiguous array; tensors parsed from
    # a BLOB are read-only views, so those are copied.
    return _torch().from_numpy(np.require(array, requirements=["C", "W"]))


def _from_torch(result: Any, what: str) -> list[np.ndarray]:
    """A tensor, or a tuple or list of tensors, as numpy arrays (RedisAI's output rule)."""
    torch = _torch()
    items = list(result) if isinstance(result, tuple | list) else [result]
    arrays = []
    for item in items:
        if not isinstance(item, torch.Tensor):
            raise AIError(f"{what} returned a non-tensor value ({type(item).__name__})")
        try:
            array = item.detach().cpu().contiguous().numpy()
        except TypeError:  # bfloat16 and other types numpy has no dtype for
            raise AIError(f"{what} returned a tensor of type {item.dtype}") from None
        arrays.append(_check_result(array, f"{what} output"))
    return arrays


def load_model(
    backend: str,
    device: str,
    blob: bytes,
    inputs: Sequence[str] = (),
    outputs: Sequence[str] = (),
) -> Model:
    """Load a model blob. ONNX takes its input and output names from the model itself (RedisAI
    ignores INPUTS/OUTPUTS for it); TORCH keeps the names given."""
    name = _check_backend(backend)
    check_device(device)
    if name == "ONNX":
        return _OnnxModel(device, blob)
    return _TorchModel(device, blob, inputs, outputs)


# RedisAI 1.2's entry-point signature: fn(tensors: List[Tensor], keys: List[str], args: List[str])
_ENTRY_POINT_TYPES = ["List[Tensor]", "List[str]", "List[str]"]


class Script:
    """A TorchScript source compiled once; ``run`` calls one of its functions."""

    def __init__(self, device: str, source: str, entry_points: Sequence[str] | None) -> None:
        torch = _torch()
        try:
            self._unit = torch.jit.CompilationUnit(source)
        except Exception as exc:  # a syntax or type error in the source
            raise AIError(f"script does not compile: {_torch_message(exc)}") from None
        self.device = device
        self.source = source
        self.entry_points = list(entry_points or [])
        for fn in self.entry_points:
            function = self._function(fn)
            types = [str(argument.type) for argument in function.schema.arguments]
            if types != _ENTRY_POINT_TYPES:
                raise AIError(
                    f"entry point {fn} must be declared as {fn}(tensors: List[Tensor], "
                    "keys: List[str], args: List[str])"
                )

    def _function(self, fn: str) -> Any:
        function = self._unit.find_function(fn)
        if function is None:
            raise AIError(f"function {fn} does not exist in script")
        return function

    def run(
        self,
        fn: str,
        tensors: list[np.ndarray],
        keys: list[str],
        args: list[str],
        legacy: bool,
    ) -> list[np.ndarray]:
        """SCRIPTEXECUTE calls fn(tensors, keys, args); legacy SCRIPTRUN calls fn(*tensors)."""
        function = self._function(fn)
        inputs = [_to_torch(array) for array in tensors]
        try:
            with _torch().no_grad():
                result = function(*inputs) if legacy else function(inputs, list(keys), list(args))
        except Exception as exc:  # TorchScript raises RuntimeError and others
            raise AIError(_torch_message(exc)) from None
        return _from_torch(result, f"function {fn}")


def load_script(device: str, source: str, entry_points: Sequence[str] | None) -> Script:
    """Compile a TorchScript source; ENTRY_POINTS (AI.SCRIPTSTORE) must exist and have RedisAI
    1.2's signature; None (AI.SCRIPTSET) accepts any functions."""
    check_device(device)
    return Script(device, source, entry_points)
