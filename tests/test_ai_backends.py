"""learnhub.ai.backends (ONNX, TorchScript models and scripts) and learnhub.ai.batcher."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from learnhub.ai import backends
from learnhub.ai.backends import load_model, load_script
from learnhub.ai.batcher import Batcher
from learnhub.errors import AIError, BackendUnavailable

sys.path.insert(0, str(Path(__file__).parent))
import ai_models  # noqa: E402

WAIT = 10.0  # seconds: a deadline for things that should happen at once, never a pause

# torch 2.13 deprecates TorchScript (torch.jit.load ...), which RedisAI's TORCH backend is.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.:DeprecationWarning")


def f32(*rows: list[float]) -> np.ndarray:
    return np.array(rows, dtype=np.float32)


# --- ONNX -------------------------------------------------------------------------------


def test_onnx_model_runs_and_names_its_inputs_and_outputs() -> None:
    model = load_model("ONNX", "CPU", ai_models.onnx_add_model())
    assert (model.backend, model.device) == ("ONNX", "CPU")
    assert (model.inputs, model.outputs) == (["a", "b"], ["c"])
    (c,) = model.run([f32([1, 2], [3, 4]), f32([10, 20], [30, 40])])
    assert c.dtype == np.float32
    np.testing.assert_array_equal(c, f32([11, 22], [33, 44]))


def test_onnx_linear_and_mul_models_compute_what_they_say() -> None:
    x = np.random.default_rng(1).standard_normal((5, 3)).astype(np.float32)
    weight, bias = ai_models.linear_weights(3, 4, seed=7)
    (y,) = load_model("ONNX", "CPU", ai_models.onnx_linear_model(3, 4, seed=7)).run([x])
    np.testing.assert_allclose(y, x @ weight + bias, rtol=1e-5, atol=1e-5)
    (z,) = load_model("onnx", "cpu", ai_models.onnx_mul_model(2.5)).run([f32([1, -2])])
    np.testing.assert_array_equal(z, f32([2.5, -5]))


def test_onnx_string_tensors_round_trip_as_bytes() -> None:
    model = load_model("ONNX", "CPU", ai_models.onnx_string_identity_model())
    strings = np.array([[b"red"], ["caf\u00e9".encode()]], dtype=object)
    (out,) = model.run([strings])
    assert out.dtype == object and out.shape == (2, 1)
    assert out.tolist() == [[b"red"], ["caf\u00e9".encode()]]


def test_onnx_wrong_number_of_inputs_is_redisai_error() -> None:
    model = load_model("ONNX", "CPU", ai_models.onnx_add_model())
    with pytest.raises(AIError, match="^Expected 2 inputs but got 1$"):
        model.run([f32([1, 2])])


def test_onnx_wrong_dtype_and_shape_are_one_line_errors() -> None:
    model = load_model("ONNX", "CPU", ai_models.onnx_add_model())
    doubles = np.ones((1, 2), dtype=np.float64)
    with pytest.raises(AIError, match="Unexpected input data type") as caught:
        model.run([doubles, f32([1, 2])])
    assert "\n" not in str(caught.value) and "[ONNXRuntimeError]" not in str(caught.value)
    with pytest.raises(AIError, match="invalid dimensions") as caught:
        model.run([f32([1, 2, 3]), f32([1, 2, 3])])
    assert "\n" not in str(caught.value)


def test_a_blob_that_is_not_onnx_is_rejected() -> None:
    with pytest.raises(AIError, match="not a valid ONNX model: .*protobuf"):
        load_model("ONNX", "CPU", b"this is no model")


@pytest.mark.parametrize("backend", ["TF", "TFLITE", "tf"])
def test_tensorflow_backends_are_unavailable(backend: str) -> None:
    with pytest.raises(BackendUnavailable, match=f"backend {backend.upper()} is not available"):
        load_model(backend, "CPU", b"graph")


def test_unknown_backend_is_an_error_but_not_unavailable() -> None:
    with pytest.raises(AIError, match="^unsupported backend$") as caught:
        load_model("PORCH", "CPU", ai_models.onnx_add_model())
    assert not isinstance(caught.value, BackendUnavailable)


@pytest.mark.parametrize("device", ["CPU", "cpu", "CPU:0", "cpu:3"])
def test_cpu_devices_are_accepted_as_given(device: str) -> None:
    assert load_model("ONNX", device, ai_models.onnx_add_model()).device == device


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("GPU", "^device GPU is not available on this hub \\(CPU only\\)$"),
        ("gpu:1", "^device GPU is not available on this hub \\(CPU only\\)$"),
        ("TPU", "^unsupported device$"),
        ("CPU:x", "^unsupported device$"),
    ],
)
def test_other_devices_are_errors(device: str, message: str) -> None:
    with pytest.raises(AIError, match=message):
        load_model("ONNX", device, ai_models.onnx_add_model())
    with pytest.raises(AIError, match=message):
        load_script(device, ai_models.TORCH_SCRIPT, None)


def test_missing_libraries_give_backend_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes "import x" raise ImportError, as if x were not installed.
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    monkeypatch.setitem(sys.modules, "torch", None)
    backends._onnxruntime.cache_clear()
    backends._torch.cache_clear()
    try:
        with pytest.raises(BackendUnavailable, match="onnxruntime is not installed"):
            load_model("ONNX", "CPU", ai_models.onnx_add_model())
        with pytest.raises(BackendUnavailable, match="torch is not installed"):
            load_model("TORCH", "CPU", b"model")
        with pytest.raises(BackendUnavailable, match="torch is not installed"):
            load_script("CPU", ai_models.TORCH_SCRIPT, None)
    finally:
        backends._onnxruntime.cache_clear()
        backends._torch.cache_clear()


def test_importing_backends_loads_neither_library() -> None:
    code = (
        "import sys; sys.modules['torch'] = sys.modules['onnxruntime'] = None\n"
        "import learnhub.ai.backends, learnhub.ai.batcher\n"
        "print('imported')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.stdout.strip() == "imported", done.stderr


# --- TORCH ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dtype", ["float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool"]
)
def test_torch_model_runs_and_keeps_dtypes(dtype: str) -> None:
    model = load_model("TORCH", "CPU", ai_models.torch_model_bytes(), ["a", "b"], ["c"])
    assert (model.backend, model.inputs, model.outputs) == ("TORCH", ["a", "b"], ["c"])
    a = np.array([[1, 0], [1, 1]]).astype(dtype)
    # A tensor parsed from a BLOB is a read-only view; the backend must cope.
    b = np.frombuffer(np.array([[1, 1], [0, 1]]).astype(dtype).tobytes(), dtype).reshape(2, 2)
    (c,) = model.run([a, b])
    assert c.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(c, (a + b) if dtype != "bool" else (a | b))


def test_torch_model_names_default_to_empty() -> None:
    model = load_model("TORCH", "CPU", ai_models.torch_model_bytes())
    assert (model.inputs, model.outputs) == ([], [])


def test_torch_model_errors() -> None:
    model = load_model("TORCH", "CPU", ai_models.torch_model_bytes())
    with pytest.raises(AIError, match="missing value for argument 'b'") as caught:
        model.run([f32([1, 2])])
    assert "\n" not in str(caught.value)
    with pytest.raises(AIError, match="STRING tensors are not supported"):
        model.run([np.array([b"x"], dtype=object)] * 2)
    with pytest.raises(AIError, match="not a valid TorchScript model"):
        load_model("TORCH", "CPU", b"not a torch model")


def test_script_entry_point_gets_tensors_keys_and_args() -> None:
    script = load_script("CPU", ai_models.TORCH_SCRIPT, ["bar_entry", "split"])
    assert script.entry_points == ["bar_entry", "split"]
    assert script.source == ai_models.TORCH_SCRIPT and script.device == "CPU"
    a, b = f32([1, 2]), f32([10, 20])
    # tensors[0] + tensors[1] * float(args[0]) + len(keys)
    (out,) = script.run("bar_entry", [a, b], ["k1", "k2"], ["3"], legacy=False)
    np.testing.assert_array_equal(out, f32([33, 64]))
    (out,) = script.run("bar_entry", [a, b], [], [], legacy=False)
    np.testing.assert_array_equal(out, f32([11, 22]))


def test_script_tuple_result_is_several_outputs() -> None:
    script = load_script("CPU", ai_models.TORCH_SCRIPT, ["split"])
    plus, minus = script.run("split", [f32([5, 6])], [], [], legacy=False)
    np.testing.assert_array_equal(plus, f32([6, 7]))
    np.testing.assert_array_equal(minus, f32([4, 5]))


def test_legacy_script_run_passes_tensors_positionally() -> None:
    script = load_script("CPU", ai_models.TORCH_SCRIPT, None)
    assert script.entry_points == []
    (out,) = script.run("bar", [f32([1, 2]), f32([3, 4])], [], [], legacy=True)
    np.testing.assert_array_equal(out, f32([4, 6]))


def test_script_errors() -> None:
    script = load_script("CPU", ai_models.TORCH_SCRIPT, None)
    with pytest.raises(AIError, match="^function nope does not exist in script$"):
        script.run("nope", [f32([1])], [], [], legacy=False)
    with pytest.raises(AIError, match="^list index out of range$"):
        script.run("bar_entry", [f32([1])], [], [], legacy=False)
    with pytest.raises(AIError, match="STRING tensors are not supported"):
        script.run("bar", [np.array([b"x"], dtype=object), f32([1])], [], [], legacy=True)


def test_bad_script_sources_and_entry_points() -> None:
    with pytest.raises(AIError, match=r"^script does not compile: expected .*\(line \d+\)$"):
        load_script("CPU", "def f(x):\n    return x +\n", None)
    with pytest.raises(AIError, match="^function nope does not exist in script$"):
        load_script("CPU", ai_models.TORCH_SCRIPT, ["bar_entry", "nope"])
    # bar(a, b) is a legacy function, not an entry point of RedisAI 1.2's signature.
    with pytest.raises(AIError, match=r"entry point bar must be declared as bar\(tensors"):
        load_script("CPU", ai_models.TORCH_SCRIPT, ["bar"])


# --- ONNX runs release the GIL -------------------------------------------------------------


def test_two_onnx_runs_on_two_threads_overlap() -> None:
    """With the GIL held during a run, the second thread could not even record its start
    before the first run ended: the huge switch interval below stops Python from handing
    the GIL over on its own, so only a run that releases it lets the other thread in."""
    model = load_model("ONNX", "CPU", ai_models.onnx_heavy_model())
    x = np.ones((16, 256), dtype=np.float32)
    model.run([x])  # warm up outside the measured runs
    barrier = threading.Barrier(2)
    spans: list[tuple[float, float]] = []

    def one_run() -> None:
        barrier.wait(WAIT)
        start = time.perf_counter()
        model.run([x])
        spans.append((start, time.perf_counter()))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(100.0)
    try:
        threads = [threading.Thread(target=one_run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT)
    finally:
        sys.setswitchinterval(interval)
    assert len(spans) == 2
    (start1, end1), (start2, end2) = spans
    assert max(start1, start2) < min(end1, end2), f"runs did not overlap: {spans}"


# --- Batcher ---------------------------------------------------------------------------


class Backend:
    """A model run the tests control: records every call; with ``hold``, the first call
    blocks until ``release`` is set, so requests can queue up behind it."""

    def __init__(self, run: Callable[[list[np.ndarray]], list[np.ndarray]], hold: bool) -> None:
        self._run = run
        self.calls: list[list[np.ndarray]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        if not hold:
            self.release.set()

    def __call__(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        self.calls.append(inputs)
        self.entered.set()
        assert self.release.wait(WAIT), "the test never released the backend"
        return self._run(inputs)

    @property
    def rows(self) -> list[int]:
        return [len(inputs[0]) for inputs in self.calls]


class Call:
    """``batcher.run(inputs)`` on a daemon thread (a stuck batcher fails the test, not hangs it)."""

    def __init__(self, batcher: Batcher, inputs: list[np.ndarray]) -> None:
        self.done = threading.Event()
        self.result: list[np.ndarray] | None = None
        self.error: Exception | None = None
        threading.Thread(target=self._run, args=(batcher, inputs), daemon=True).start()

    def _run(self, batcher: Batcher, inputs: list[np.ndarray]) -> None:
        try:
            self.result = batcher.run(inputs)
        except Exception as exc:
            self.error = exc
        finally:
            self.done.set()

    def get(self) -> list[np.ndarray]:
        assert self.done.wait(WAIT), "the batcher never answered"
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


def double(inputs: list[np.ndarray]) -> list[np.ndarray]:
    return [inputs[0] * 2]


def rows_of(value: float, rows: int, width: int = 2, dtype: str = "float32") -> np.ndarray:
    return np.full((rows, width), value, dtype=dtype)


def test_concurrent_requests_merge_and_each_caller_gets_its_own_rows() -> None:
    onnx_add = load_model("ONNX", "CPU", ai_models.onnx_add_model())
    backend = Backend(onnx_add.run, hold=True)
    batcher = Batcher(backend, batchsize=64)
    count = 8
    barrier = threading.Barrier(count)
    results: dict[int, list[np.ndarray]] = {}

    def client(i: int) -> None:
        rows = 1 + i % 3  # requests of 1, 2 and 3 rows
        barrier.wait(WAIT)
        results[i] = batcher.run([rows_of(i, rows), rows_of(100 * i, rows)])

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    # The first backend call holds on; every other request must queue behind it.
    assert backend.entered.wait(WAIT)
    in_first_call = len(set(backend.calls[0][0][:, 0].tolist()))  # rows of request i hold i
    assert batcher.wait_pending(count - in_first_call, WAIT)
    backend.release.set()
    for thread in threads:
        thread.join(WAIT)

    # Usually one request or a few went into the first call; all the others into the second.
    assert batcher.calls == len(backend.calls) == (1 if in_first_call == count else 2)
    assert sum(backend.rows) == sum(1 + i % 3 for i in range(count))
    for i in range(count):
        (c,) = results[i]
        np.testing.assert_array_equal(c, rows_of(101 * i, 1 + i % 3))


def test_minbatchsize_holds_requests_until_enough_rows_are_queued() -> None:
    backend = Backend(double, hold=False)
    batcher = Batcher(backend, batchsize=8, minbatchsize=3)
    first = Call(batcher, [rows_of(1, 1)])
    assert batcher.wait_pending(1, WAIT)
    second = Call(batcher, [rows_of(2, 1)])
    assert batcher.wait_pending(2, WAIT)  # the first request was not run on its own
    assert backend.calls == [] and not first.done.is_set() and not second.done.is_set()
    third = Call(batcher, [rows_of(3, 1)])
    for call, value in ((first, 1), (second, 2), (third, 3)):
        np.testing.assert_array_equal(call.get()[0], rows_of(2 * value, 1))
    assert backend.rows == [3]


def test_minbatchtimeout_releases_a_lone_request() -> None:
    backend = Backend(double, hold=False)
    batcher = Batcher(backend, batchsize=8, minbatchsize=4, minbatchtimeout_ms=20)
    (out,) = Call(batcher, [rows_of(5, 1)]).get()
    np.testing.assert_array_equal(out, rows_of(10, 1))
    assert backend.rows == [1]


def test_a_request_of_batchsize_rows_or_more_runs_alone() -> None:
    backend = Backend(double, hold=True)
    batcher = Batcher(backend, batchsize=2)
    first = Call(batcher, [rows_of(1, 1)])
    assert backend.entered.wait(WAIT)
    big = Call(batcher, [rows_of(2, 3)])
    assert batcher.wait_pending(1, WAIT)
    small = [Call(batcher, [rows_of(3, 1)]), Call(batcher, [rows_of(4, 1)])]
    assert batcher.wait_pending(3, WAIT)
    backend.release.set()
    np.testing.assert_array_equal(big.get()[0], rows_of(4, 3))
    np.testing.assert_array_equal(small[0].get()[0], rows_of(6, 1))
    np.testing.assert_array_equal(small[1].get()[0], rows_of(8, 1))
    first.get()
    assert backend.rows == [1, 3, 2]


def test_a_batch_never_exceeds_batchsize_rows() -> None:
    backend = Backend(double, hold=True)
    batcher = Batcher(backend, batchsize=3)
    first = Call(batcher, [rows_of(1, 1)])
    assert backend.entered.wait(WAIT)
    calls = []
    for n, (value, rows) in enumerate([(2, 2), (3, 2), (4, 1)]):
        calls.append(Call(batcher, [rows_of(value, rows)]))
        assert batcher.wait_pending(n + 1, WAIT)
    backend.release.set()
    for call, (value, rows) in zip(calls, [(2, 2), (3, 2), (4, 1)], strict=True):
        np.testing.assert_array_equal(call.get()[0], rows_of(2 * value, rows))
    first.get()
    # 2 + 2 rows would be too many: the 1-row request joins the first instead, the other waits.
    assert backend.rows == [1, 3, 2]
    assert [inputs[0][:, 0].tolist() for inputs in backend.calls[1:]] == [[2, 2, 4], [3, 3]]


def test_only_requests_of_the_same_dtype_and_trailing_shape_merge() -> None:
    backend = Backend(double, hold=True)
    batcher = Batcher(backend, batchsize=16)
    first = Call(batcher, [rows_of(1, 1)])
    assert backend.entered.wait(WAIT)
    calls = []
    for n, inputs in enumerate(
        [
            [rows_of(2, 1)],
            [rows_of(3, 1, width=3)],  # other shape[1:]
            [rows_of(4, 1, dtype="float64")],  # other dtype
            [rows_of(5, 2)],  # merges with the first of these
        ]
    ):
        calls.append(Call(batcher, inputs))
        assert batcher.wait_pending(n + 1, WAIT)
    backend.release.set()
    for call, value in zip(calls, (2, 3, 4, 5), strict=True):
        assert call.get()[0][0, 0] == 2 * value
    first.get()
    shapes = [(inputs[0].shape, inputs[0].dtype.name) for inputs in backend.calls]
    assert shapes == [
        ((1, 2), "float32"),
        ((3, 2), "float32"),
        ((1, 3), "float32"),
        ((1, 2), "float64"),
    ]


def test_a_failing_backend_call_fails_every_request_in_it() -> None:
    def fail(inputs: list[np.ndarray]) -> list[np.ndarray]:
        raise AIError("the model broke")

    backend = Backend(fail, hold=True)
    batcher = Batcher(backend, batchsize=8)
    calls = [Call(batcher, [rows_of(0, 1)])]
    assert backend.entered.wait(WAIT)
    calls += [Call(batcher, [rows_of(i, 1)]) for i in (1, 2, 3)]
    assert batcher.wait_pending(3, WAIT)
    backend.release.set()
    for call in calls:
        with pytest.raises(AIError, match="^the model broke$"):
            call.get()
    assert backend.rows == [1, 3]


def test_outputs_without_the_batch_rows_fail_the_merged_requests() -> None:
    backend = Backend(lambda inputs: [inputs[0][:1]], hold=True)  # always one row back
    batcher = Batcher(backend, batchsize=8)
    first = Call(batcher, [rows_of(1, 1)])
    assert backend.entered.wait(WAIT)
    merged = [Call(batcher, [rows_of(i, 1)]) for i in (2, 3)]
    assert batcher.wait_pending(2, WAIT)
    backend.release.set()
    np.testing.assert_array_equal(first.get()[0], rows_of(1, 1))  # alone: passed through
    for call in merged:
        with pytest.raises(AIError, match="^Model did not generate the expected batch size$"):
            call.get()
