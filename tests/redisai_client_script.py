"""Drive a learnhub hub with the `redisai` client (redisai-py 1.3.0, made for RedisAI 1.2.7).

Run by tests/test_ai_compat.py with the python of a separate virtualenv (redisai 1.3.0 pins
redis<5), never imported by pytest:

    python redisai_client_script.py --socket /path/hub.sock --models DIR

DIR holds add.onnx (c = a + b, FLOAT [N, 2]), add.pt (the same in TorchScript) and script.py
(tests/ai_models.TORCH_SCRIPT). Each check prints "ok <name>" when it passed; the first
mismatch prints "FAILED <name>: <what>" on stderr and exits 1.
"""

from __future__ import annotations

import argparse
import sys
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import redis
import redisai

# redisai-py warns on its deprecated and experimental calls; those calls are what we test.
warnings.simplefilter("ignore")

Check = Callable[[redisai.Client, Path], None]
CHECKS: list[Check] = []


def check(fn: Check) -> Check:
    CHECKS.append(fn)
    return fn


class Mismatch(Exception):
    pass


def expect(got: Any, want: Any, what: str) -> None:
    if got != want:
        raise Mismatch(f"{what}: got {got!r}, expected {want!r}")


def expect_array(got: Any, want: np.ndarray, what: str) -> None:
    if not isinstance(got, np.ndarray):
        raise Mismatch(f"{what}: got {type(got).__name__} {got!r}, expected an ndarray")
    if got.dtype != want.dtype or got.shape != want.shape or not np.array_equal(got, want):
        raise Mismatch(f"{what}: got {got!r} ({got.dtype}), expected {want!r} ({want.dtype})")


def expect_error(call: Callable[[], Any], text: str, what: str) -> None:
    try:
        result = call()
    except redis.ResponseError as exc:
        if text not in str(exc):
            raise Mismatch(f"{what}: error {str(exc)!r} does not say {text!r}") from None
        return
    raise Mismatch(f"{what}: expected an error saying {text!r}, got {result!r}")


# --- tensors ------------------------------------------------------------------------------

NUMERIC = {
    "FLOAT": np.float32,
    "DOUBLE": np.float64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "BOOL": np.bool_,
}


@check
def tensorset_tensorget_numpy(con: redisai.Client, models: Path) -> None:
    for name, dtype in NUMERIC.items():
        raw = [[1, 0, 1], [1, 1, 0]] if dtype is np.bool_ else [[1, -2, 3], [4, 5, 6]]
        if np.issubdtype(dtype, np.unsignedinteger):
            raw = [[1, 2, 3], [250, 5, 6]]
        array = np.array(raw).astype(dtype)
        expect(con.tensorset(f"t_{name}", array), "OK", f"tensorset {name}")
        expect_array(con.tensorget(f"t_{name}"), array, f"tensorget {name}")


@check
def tensorget_values_and_meta_only(con: redisai.Client, models: Path) -> None:
    con.tensorset("f", np.array([[1.5, -2.0]], dtype=np.float32))
    got = con.tensorget("f", as_numpy=False)
    expect(got, {"dtype": "FLOAT", "shape": [1, 2], "values": [1.5, -2.0]}, "as_numpy=False")
    expect(con.tensorget("f", meta_only=True), {"dtype": "FLOAT", "shape": [1, 2]}, "meta_only")
    got = con.tensorget("t_INT16", as_numpy=False)
    expect(got["values"], [1, -2, 3, 4, 5, 6], "INT16 values")


@check
def tensorset_from_lists(con: redisai.Client, models: Path) -> None:
    expect(con.tensorset("l", [1, 2, 3], dtype="int32"), "OK", "tensorset list")
    expect_array(con.tensorget("l"), np.array([1, 2, 3], dtype=np.int32), "list tensor")
    expect(con.tensorset("l2", (1.5, 2.5), shape=(2, 1), dtype="float"), "OK", "tuple")
    expect_array(con.tensorget("l2"), np.array([[1.5], [2.5]], dtype=np.float32), "tuple tensor")


@check
def string_tensors(con: redisai.Client, models: Path) -> None:
    array = np.array(["a", "hello", "x y"])
    expect(con.tensorset("s", array), "OK", "tensorset STRING")
    expect(con.tensorget("s", meta_only=True), {"dtype": "STRING", "shape": [3]}, "STRING meta")
    got = con.tensorget("s")
    if not np.array_equal(got, array):
        raise Mismatch(f"STRING tensor: got {got!r}, expected {array!r}")


@check
def dtypes_redisai_lacks_are_refused(con: redisai.Client, models: Path) -> None:
    # redisai-py sends UINT32 / UINT64 for these; RedisAI 1.2.7 has neither.
    for dtype in (np.uint32, np.uint64):
        array = np.array([1, 2], dtype=dtype)
        expect_error(lambda a=array: con.tensorset("u", a), "invalid data type", str(dtype))
    expect(con.exists("u"), 0, "refused tensor stored")


@check
def pipeline_without_transaction(con: redisai.Client, models: Path) -> None:
    pipe = con.pipeline(transaction=False)
    pipe.tensorset("p", np.array([7, 8], dtype=np.int64))
    pipe.tensorget("p")
    ok, array = pipe.execute()
    expect(ok, b"OK", "pipelined tensorset")
    expect_array(array, np.array([7, 8], dtype=np.int64), "pipelined tensorget")


# --- models -------------------------------------------------------------------------------


def inputs(con: redisai.Client) -> tuple[np.ndarray, np.ndarray]:
    a = np.array([[1, 2], [3, 4]], dtype=np.float32)
    b = np.array([[10, 20], [30, 40]], dtype=np.float32)
    con.tensorset("a", a)
    con.tensorset("b", b)
    return a, b


@check
def modelstore_in_chunks_and_modelget(con: redisai.Client, models: Path) -> None:
    blob = (models / "add.onnx").read_bytes()
    # modelstore asks AI.CONFIG GET MODEL_CHUNK_SIZE and sends the blob in chunks that size.
    expect(con.config("MODEL_CHUNK_SIZE", 64), "OK", "AI.CONFIG MODEL_CHUNK_SIZE 64")
    expect(con.config("MODEL_CHUNK_SIZE"), 64, "AI.CONFIG GET MODEL_CHUNK_SIZE")
    expect(con.modelstore("add", "ONNX", "CPU", blob, tag="v1"), "OK", "modelstore")
    meta = con.modelget("add", meta_only=True)
    want = {
        "backend": "ONNX",
        "device": "CPU",
        "tag": "v1",
        "batchsize": 0,
        "minbatchsize": 0,
        "inputs": ["a", "b"],
        "outputs": ["c"],
        "minbatchtimeout": 0,
    }
    expect(meta, want, "modelget meta_only")
    got = con.modelget("add")["blob"]
    # RedisAI replies with a model larger than MODEL_CHUNK_SIZE in chunks.
    expect(b"".join(got) if isinstance(got, list) else got, blob, "modelget blob")
    expect(con.config("MODEL_CHUNK_SIZE", 511 * 1024 * 1024), "OK", "chunk size back")
    expect(con.modelget("add")["blob"], blob, "modelget blob in one piece")
    # Lower-case names, batching options.
    stored = con.modelstore("batched", "onnx", "cpu", blob, batch=4, minbatch=2, minbatchtimeout=9)
    expect(stored, "OK", "modelstore with batching")
    meta = con.modelget("batched", meta_only=True)
    got = (meta["batchsize"], meta["minbatchsize"], meta["minbatchtimeout"])
    expect(got, (4, 2, 9), "batching options")


@check
def modelexecute_and_modelrun(con: redisai.Client, models: Path) -> None:
    a, b = inputs(con)
    expect(con.modelexecute("add", inputs=["a", "b"], outputs=["c"]), "OK", "modelexecute")
    expect_array(con.tensorget("c"), a + b, "modelexecute output")
    expect(con.modelexecute("add", ["c", "a"], ["c"], timeout=60_000), "OK", "with timeout")
    expect_array(con.tensorget("c"), a + b + a, "output replaced in place")
    expect(con.modelrun("add", ["a", "a"], ["d"]), "OK", "modelrun (deprecated)")
    expect_array(con.tensorget("d"), a + a, "modelrun output")
    torch_blob = (models / "add.pt").read_bytes()
    expect(con.modelstore("tm", "TORCH", "CPU", torch_blob), "OK", "modelstore TORCH")
    expect(con.modelexecute("tm", ["a", "b"], ["e"]), "OK", "modelexecute TORCH")
    expect_array(con.tensorget("e"), a + b, "TORCH output")
    expect_error(
        lambda: con.modelexecute("add", ["a", "nope"], ["f"]),
        "tensor key is empty",
        "modelexecute with a missing input",
    )


@check
def modelscan_and_modeldel(con: redisai.Client, models: Path) -> None:
    scanned = sorted(con.modelscan())
    expect(scanned, [["add", "v1"], ["batched", ""], ["tm", ""]], "modelscan")
    expect(con.modeldel("batched"), "OK", "modeldel")
    expect_error(lambda: con.modelget("batched"), "model key is empty", "modelget after del")
    expect(con.exists("batched"), 0, "deleted model exists")


@check
def infoget_and_inforeset(con: redisai.Client, models: Path) -> None:
    info = con.infoget("tm")
    want = {"key": "tm", "type": "MODEL", "backend": "TORCH", "device": "CPU", "tag": ""}
    expect({k: info[k] for k in want}, want, "infoget")
    expect((info["calls"], info["errors"], info["samples"]), (1, 0, 2), "infoget counters")
    expect(con.inforeset("tm"), "OK", "inforeset")
    info = con.infoget("tm")
    got = (info["calls"], info["errors"], info["samples"], info["duration"])
    expect(got, (0, 0, 0, 0), "counters after inforeset")


# --- scripts ------------------------------------------------------------------------------


@check
def scriptstore_and_scriptexecute(con: redisai.Client, models: Path) -> None:
    a, b = inputs(con)
    source = (models / "script.py").read_text()
    stored = con.scriptstore("s1", "CPU", source, entry_points=["bar_entry", "split"], tag="t")
    expect(stored, "OK", "scriptstore")
    # bar_entry: tensors[0] + tensors[1] * float(args[0]) + len(keys)
    ran = con.scriptexecute(
        "s1", "bar_entry", keys=["k1"], inputs=["a", "b"], args=["2"], outputs=["out"]
    )
    expect(ran, "OK", "scriptexecute")
    expect_array(con.tensorget("out"), a + b * 2 + 1, "scriptexecute output")
    got = con.scriptget("s1")
    expect((got["device"], got["tag"], got["source"]), ("CPU", "t", source), "scriptget")
    expect(got["entry points"], [b"bar_entry", b"split"], "scriptget entry points")
    expect(con.scriptscan(), [["s1", "t"]], "scriptscan")
    expect(con.scriptset("old", "cpu", source), "OK", "scriptset (deprecated)")
    expect(con.scriptrun("old", "bar", ["a", "b"], ["o2"]), "OK", "scriptrun (deprecated)")
    expect_array(con.tensorget("o2"), a + b, "scriptrun output")
    expect(con.infoget("s1")["calls"], 1, "script calls")
    expect(con.scriptdel("old"), "OK", "scriptdel")
    expect_error(lambda: con.scriptget("old"), "script key is empty", "scriptget after del")


# --- DAGs ---------------------------------------------------------------------------------


@check
def dag_with_load_and_persist(con: redisai.Client, models: Path) -> None:
    a, _ = inputs(con)
    local = np.array([[100, 200], [300, 400]], dtype=np.float32)
    dag = con.dag(load=["a"], persist=["sum"])
    dag.tensorset("local", local)
    dag.modelexecute("add", inputs=["a", "local"], outputs=["sum"])
    dag.scriptexecute("s1", "bar_entry", inputs=["sum", "a"], args=["0"], outputs=["tmp"])
    dag.tensorget("sum")
    dag.tensorget("tmp", as_numpy=False)
    result = dag.execute()
    expect(result[:3], ["OK", "OK", "OK"], "dag replies")
    expect_array(result[3], a + local, "dag tensorget")
    expect(result[4]["values"], [101.0, 202.0, 303.0, 404.0], "dag tensorget values")
    expect_array(con.tensorget("sum"), a + local, "persisted output")
    expect(con.exists("local", "tmp"), 0, "local names in the keyspace")


@check
def dag_readonly(con: redisai.Client, models: Path) -> None:
    a, _ = inputs(con)
    dag = con.dag(load=["a"], readonly=True)
    dag.modelexecute("add", inputs=["a", "a"], outputs=["double"])
    dag.tensorget("double")
    ok, double = dag.execute()
    expect(ok, "OK", "read-only dag modelexecute")
    expect_array(double, a + a, "read-only dag output")
    expect(con.exists("double"), 0, "read-only dag wrote")
    expect_error(
        lambda: con.execute_command(
            "AI.DAGEXECUTE_RO",
            "PERSIST",
            1,
            "x",
            "|>",
            "AI.TENSORSET",
            "x",
            "FLOAT",
            1,
            "VALUES",
            1,
        ),  # fmt: skip
        "PERSIST cannot be specified in a read-only DAG",
        "read-only dag with PERSIST",
    )
    expect_error(
        lambda: con.dag(load=["a"], readonly=True).tensorget("never").execute(),
        "INPUT key cannot be found in DAG",
        "read-only dag reading an unknown name",
    )
    expect(con.exists("x"), 0, "refused dag wrote")


@check
def dag_error_then_na(con: redisai.Client, models: Path) -> None:
    reply = con.execute_command(
        "AI.DAGEXECUTE", "PERSIST", 1, "o", "|>", "AI.TENSORSET", "w", "INT32", 1, 2, "VALUES",
        1, 2, "|>", "AI.MODELEXECUTE", "add", "INPUTS", 2, "w", "w", "OUTPUTS", 1, "o", "|>",
        "AI.TENSORGET", "o", "VALUES",
    )  # fmt: skip
    expect(reply[0], b"OK", "op before the failure")
    if not isinstance(reply[1], redis.ResponseError):
        raise Mismatch(f"failing op: got {reply[1]!r}, expected an error")
    expect(reply[2], b"NA", "op after the failure")
    expect(con.exists("o"), 0, "failed dag persisted")


@check
def dag_deprecated_dagrun(con: redisai.Client, models: Path) -> None:
    a, b = inputs(con)
    dag = con.dag()  # no LOAD/PERSIST/ROUTING: redisai-py sends AI.DAGRUN
    dag.tensorset("x", a)
    dag.modelrun("add", inputs=["x", "x"], outputs=["y"])
    dag.tensorget("y")
    ok1, ok2, y = dag.execute()
    expect((ok1, ok2), ("OK", "OK"), "dagrun replies")
    expect_array(y, a + a, "dagrun output")
    expect(con.exists("x", "y"), 0, "dagrun wrote local names")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--socket", required=True)
    parser.add_argument("--models", required=True, type=Path)
    options = parser.parse_args()
    con = redisai.Client(unix_socket_path=options.socket, socket_timeout=60)
    con.flushall()
    for fn in CHECKS:
        try:
            fn(con, options.models)
        except Exception as exc:
            traceback.print_exc()
            print(f"FAILED {fn.__name__}: {exc}", file=sys.stderr)
            return 1
        print(f"ok {fn.__name__}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
