"""The AI.* commands end to end: a served hub, real clients (redis-py over RESP2 and RESP3,
redis-cli), RedisAI 1.2.7's syntax, replies and error texts.

Sections: 1. tensors  2. models  3. scripts  4. DAGs  5. asynchronous DAGs  6. AI.INFO and
AI.CONFIG  7. generic keyspace commands and notifications  8. bad input  9. property tests.
Tests whose subject is the store run on SQLite and PostgreSQL (``ai_server``); the others on
SQLite only (``sqlite_server``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ai_fixtures
from ai_fixtures import (
    TIMEOUT,
    AIServer,
    connect,
    error_of,
    keys,
    next_message,
)
from ai_models import (
    TORCH_SCRIPT,
    onnx_add_model,
    onnx_heavy_model,
    onnx_mul_model,
    torch_model_bytes,
)
from conftest import ServeProcess
from learnhub.ai.parse import parse, plan

# Fixtures shared with test_ai_compat.py: a hub served in-process on both store backends, or
# on SQLite only.
ai_server = ai_fixtures.ai_server
sqlite_server = ai_fixtures.sqlite_server

OK = b"OK"
NA = b"NA"
# How long AI.DAGRESULT ... BLOCK waits for a run: well within the client's socket timeout.
BLOCK_MS = TIMEOUT * 1000 // 2
WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
# Scripts of our own beside ai_models.TORCH_SCRIPT: the seed's "bar baz" and a 3-way join.
SEED_SCRIPT = """
def baz(c):
    return c * 10
"""
JOIN_SCRIPT = """
def join3(tensors: List[Tensor], keys: List[str], args: List[str]):
    return tensors[0] + tensors[1] + tensors[2]
"""


@functools.cache
def heavy_model() -> bytes:
    return onnx_heavy_model()


def words(line: str) -> list[str]:
    """A command written as one line, split on spaces (no argument has one)."""
    return line.split()


def ai(r: redis.Redis, *args: Any) -> Any:
    return r.execute_command(*args)


def tensorset(r: redis.Redis, key: str, dtype: str, shape: list[int], values: list[Any]) -> None:
    assert ai(r, "AI.TENSORSET", key, dtype, *shape, "VALUES", *values) == OK


def values_of(r: redis.Redis, key: str) -> Any:
    return ai(r, "AI.TENSORGET", key, "VALUES")


def store_models(r: redis.Redis) -> None:
    """add(a, b) = a + b and mulK(x) = K * x (K = 2, 3, 5): FLOAT [N, 2] in and out."""
    assert ai(r, "AI.MODELSTORE", "add", "ONNX", "CPU", "BLOB", onnx_add_model()) == OK
    for k in (2, 3, 5):
        assert ai(r, "AI.MODELSTORE", f"mul{k}", "ONNX", "CPU", "BLOB", onnx_mul_model(k)) == OK


def as_dict(reply: list[Any]) -> dict[Any, Any]:
    """A flat [name, value, name, value ...] reply (AI.INFO, AI.MODELGET META) as a dict."""
    return dict(zip(reply[::2], reply[1::2], strict=True))


def info_of(r: redis.Redis, key: str) -> dict[bytes, Any]:
    return as_dict(ai(r, "AI.INFO", key))


def dag(*ops: tuple[Any, ...], header: tuple[Any, ...] = ()) -> list[Any]:
    """The argv after AI.DAGEXECUTE: the header, then each op behind a "|>"."""
    argv = list(header)
    for op in ops:
        argv += ["|>", *op]
    return argv


# --- 1. tensors ---------------------------------------------------------------------------

# dtype: (numpy dtype, VALUES arguments, the VALUES reply RedisAI gives for them)
DTYPES: dict[str, tuple[Any, list[Any], list[Any]]] = {
    "FLOAT": (np.float32, ["1.5", "-2", "0.25", "3"], [b"1.5", b"-2", b"0.25", b"3"]),
    "DOUBLE": (np.float64, ["2.5", "-0.125", "1e3", "7"], [b"2.5", b"-0.125", b"1000", b"7"]),
    "INT8": (np.int8, [-128, 127, 0, -1], [-128, 127, 0, -1]),
    "INT16": (np.int16, [-32768, 32767, 1, -2], [-32768, 32767, 1, -2]),
    "INT32": (np.int32, [-(2**31), 2**31 - 1, 3, 0], [-(2**31), 2**31 - 1, 3, 0]),
    "INT64": (np.int64, [-(2**63), 2**63 - 1, 4, 5], [-(2**63), 2**63 - 1, 4, 5]),
    "UINT8": (np.uint8, [0, 255, 128, 1], [0, 255, 128, 1]),
    "UINT16": (np.uint16, [0, 65535, 256, 2], [0, 65535, 256, 2]),
    "BOOL": (np.bool_, [1, 0, 0, 1], [1, 0, 0, 1]),
    "STRING": (object, ["a", "hello world", "", "x\ty"], [b"a", b"hello world", b"", b"x\ty"]),
}


def blob_of(dtype: str, args: list[Any]) -> bytes:
    """The BLOB RedisAI holds for these VALUES: raw little-endian C order; STRING elements
    each followed by a NUL."""
    if dtype == "STRING":
        return b"".join(str(v).encode() + b"\0" for v in args)
    np_type = DTYPES[dtype][0]
    numbers = [float(v) if dtype in ("FLOAT", "DOUBLE") else int(v) for v in args]
    return np.array(numbers).astype(np_type).tobytes()


def same_values(dtype: str, got: list[Any], want: list[Any], protocol: int) -> bool:
    """RESP2 values must be RedisAI's exactly; under RESP3 a double may come as a double."""
    if protocol == 2 or dtype not in ("FLOAT", "DOUBLE"):
        return got == want
    return [float(g) for g in got] == [float(w) for w in want]


@pytest.mark.parametrize("protocol", [2, 3])
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_tensor_round_trip_every_dtype_and_reply_shape(
    ai_server: AIServer, dtype: str, protocol: int
) -> None:
    r = ai_server.redis(protocol)
    _, args, want_values = DTYPES[dtype]
    blob = blob_of(dtype, args)
    meta = [b"dtype", dtype.encode(), b"shape", [2, 2]]

    tensorset(r, "by_values", dtype, [2, 2], args)
    assert ai(r, "AI.TENSORSET", "by_blob", dtype, 2, 2, "BLOB", blob) == OK
    for key in ("by_values", "by_blob"):
        assert ai(r, "AI.TENSORGET", key, "META") == meta
        assert ai(r, "AI.TENSORGET", key, "BLOB") == blob
        assert same_values(dtype, ai(r, "AI.TENSORGET", key, "VALUES"), want_values, protocol)
        assert ai(r, "AI.TENSORGET", key, "META", "BLOB") == [*meta, b"blob", blob]
        with_values = ai(r, "AI.TENSORGET", key, "meta", "values")  # case-insensitive
        assert with_values[:5] == [*meta, b"values"]
        assert same_values(dtype, with_values[5], want_values, protocol)
        assert ai(r, "AI.TENSORGET", key) == [*meta, b"blob", blob]  # no argument: META BLOB
    # Without data: zeros (empty strings for STRING), in the declared shape.
    assert ai(r, "AI.TENSORSET", "empty", dtype, 3) == OK
    got = values_of(r, "empty")
    if dtype == "STRING":
        assert got == [b"", b"", b""]
    else:
        assert [float(v) for v in got] == [0, 0, 0]
    assert ai(r, "AI.TENSORGET", "empty", "META") == [b"dtype", dtype.encode(), b"shape", [3]]


def test_tensor_overwrite_and_missing_key(ai_server: AIServer) -> None:
    r = ai_server.redis()
    tensorset(r, "t", "INT32", [2], [1, 2])
    tensorset(r, "t", "FLOAT", [1, 3], ["0.5", "1", "2"])
    assert ai(r, "AI.TENSORGET", "t", "META", "VALUES") == [
        b"dtype",
        b"FLOAT",
        b"shape",
        [1, 3],
        b"values",
        [b"0.5", b"1", b"2"],
    ]
    assert error_of(r, "AI.TENSORGET", "nope", "VALUES") == (
        "tensor key is empty or in a different shard"
    )
    assert error_of(r, "AI.TENSORGET", "t", "BLOB", "VALUES") == "both BLOB and VALUES specified"
    assert error_of(r, "AI.TENSORGET", "t", "JSON") == "unsupported data format"


def test_tensors_with_redis_cli(sqlite_server: AIServer) -> None:
    cli = sqlite_server.cli
    assert cli("AI.TENSORSET", "t", "FLOAT", "2", "VALUES", "1.5", "2").stdout == b"OK\n"
    got = cli("AI.TENSORGET", "t", "META", "VALUES").stdout.decode().splitlines()
    assert got == ["dtype", "FLOAT", "shape", "2", "values", "1.5", "2"]
    # -x: the last argument is stdin, byte for byte (the BLOB).
    assert cli("-x", "AI.TENSORSET", "b", "INT8", "3", "BLOB", stdin=b"\x01\x02\xff").stdout == (
        b"OK\n"
    )
    assert cli("AI.TENSORGET", "b", "VALUES").stdout == b"1\n2\n-1\n"
    assert cli("AI.TENSORSET", "bad", "FLOAT32", "1").stdout.strip() == b"ERR invalid data type"
    assert cli("EXISTS", "bad").stdout == b"0\n"
    # A model by -x, then a whole DAG on one command line.
    stored = cli("-x", "AI.MODELSTORE", "m", "ONNX", "CPU", "BLOB", stdin=onnx_add_model())
    assert stored.stdout == b"OK\n", stored
    ran = cli(
        *["AI.DAGEXECUTE", "PERSIST", "1", "c"],
        *["|>", "AI.TENSORSET", "a", "FLOAT", "1", "2", "VALUES", "1", "2"],
        *["|>", "AI.TENSORSET", "b", "FLOAT", "1", "2", "VALUES", "3", "4"],
        *["|>", "AI.MODELEXECUTE", "m", "INPUTS", "2", "a", "b", "OUTPUTS", "1", "c"],
        *["|>", "AI.TENSORGET", "c", "VALUES"],
    )
    assert ran.stdout.decode().splitlines() == ["OK", "OK", "OK", "4", "6"]
    assert sorted(cli("KEYS", "*").stdout.decode().split()) == ["b", "c", "m", "t"]


# --- 2. models ----------------------------------------------------------------------------


def test_modelstore_in_chunks_modelget_modelexecute(ai_server: AIServer) -> None:
    r = ai_server.redis()
    blob = onnx_add_model()
    third = len(blob) // 3
    chunks = [blob[:third], blob[third : 2 * third], blob[2 * third :]]
    assert ai(r, "AI.MODELSTORE", "m", "ONNX", "CPU", "TAG", "v1", "BLOB", *chunks) == OK
    meta = [
        *[b"backend", b"ONNX", b"device", b"CPU", b"tag", b"v1"],
        *[b"batchsize", 0, b"minbatchsize", 0],
        *[b"inputs", [b"a", b"b"], b"outputs", [b"c"], b"minbatchtimeout", 0],
    ]
    assert ai(r, "AI.MODELGET", "m", "META") == meta
    assert ai(r, "AI.MODELGET", "m", "BLOB") == blob
    assert ai(r, "AI.MODELGET", "m", "META", "BLOB") == [*meta, b"blob", blob]
    assert ai(r, "AI.MODELGET", "m") == [*meta, b"blob", blob]
    assert ai(r, "AI._MODELSCAN") == [[b"m", b"v1"]]

    tensorset(r, "a", "FLOAT", [2, 2], [1, 2, 3, 4])
    tensorset(r, "b", "FLOAT", [2, 2], [10, 20, 30, 40])
    assert ai(r, "AI.MODELEXECUTE", "m", "INPUTS", 2, "a", "b", "OUTPUTS", 1, "c") == OK
    assert ai(r, "AI.TENSORGET", "c", "META", "VALUES") == [
        *[b"dtype", b"FLOAT", b"shape", [2, 2]],
        *[b"values", [b"11", b"22", b"33", b"44"]],
    ]
    # A run's output may be its input: the new value replaces the old.
    assert ai(r, "AI.MODELEXECUTE", "m", "INPUTS", 2, "c", "a", "OUTPUTS", 1, "c") == OK
    assert values_of(r, "c") == [b"12", b"24", b"36", b"48"]

    # Batching options show in META.
    stored = ai(
        r, "AI.MODELSTORE", "batched", "ONNX", "CPU", "BATCHSIZE", 4, "MINBATCHSIZE", 2,
        "MINBATCHTIMEOUT", 7, "BLOB", blob,
    )  # fmt: skip
    assert stored == OK
    got = as_dict(ai(r, "AI.MODELGET", "batched", "META"))
    assert (got[b"batchsize"], got[b"minbatchsize"], got[b"minbatchtimeout"]) == (4, 2, 7)

    assert ai(r, "AI.MODELDEL", "m") == OK
    assert error_of(r, "AI.MODELGET", "m", "META") == "model key is empty"
    assert error_of(r, "AI.MODELDEL", "m") == "model key is empty"
    assert error_of(r, "AI.MODELEXECUTE", "m", "INPUTS", 2, "a", "b", "OUTPUTS", 1, "x") == (
        "model key is empty"
    )
    assert ai(r, "EXISTS", "m", "x") == 0
    assert error_of(r, "AI.TENSORGET", "batched") == WRONGTYPE
    assert error_of(r, "AI.MODELGET", "a") == WRONGTYPE


def test_modelexecute_with_a_missing_input_writes_nothing(ai_server: AIServer) -> None:
    r = ai_server.redis()
    store_models(r)
    tensorset(r, "a", "FLOAT", [1, 2], [1, 2])
    args = ("AI.MODELEXECUTE", "add", "INPUTS", 2, "a", "nope", "OUTPUTS", 1, "c")
    assert error_of(r, *args) == "tensor key is empty or in a different shard"
    assert ai(r, "EXISTS", "c") == 0


def test_modelset_and_modelrun_old_forms(sqlite_server: AIServer) -> None:
    r = sqlite_server.redis()
    assert ai(r, "AI.MODELSET", "m", "ONNX", "CPU", "TAG", "old", "BLOB", onnx_add_model()) == OK
    tensorset(r, "a", "FLOAT", [1, 2], [2, 3])
    tensorset(r, "b", "FLOAT", [1, 2], [5, 7])
    assert ai(r, "AI.MODELRUN", "m", "INPUTS", "a", "b", "OUTPUTS", "c") == OK
    assert values_of(r, "c") == [b"7", b"10"]
    # TorchScript through the same commands.
    assert ai(r, "AI.MODELSET", "tm", "TORCH", "CPU", "BLOB", torch_model_bytes()) == OK
    assert ai(r, "AI.MODELRUN", "tm", "INPUTS", "a", "c", "OUTPUTS", "d") == OK
    assert values_of(r, "d") == [b"9", b"13"]
    assert ai(r, "AI.MODELGET", "tm", "META")[:4] == [b"backend", b"TORCH", b"device", b"CPU"]


# --- 3. scripts ---------------------------------------------------------------------------


def test_scriptstore_and_scriptexecute(ai_server: AIServer) -> None:
    r = ai_server.redis()
    stored = ai(
        r, "AI.SCRIPTSTORE", "s", "CPU", "TAG", "t1", "ENTRY_POINTS", 2, "bar_entry", "split",
        "SOURCE", TORCH_SCRIPT,
    )  # fmt: skip
    assert stored == OK
    tensorset(r, "a", "FLOAT", [1, 2], [1, 2])
    tensorset(r, "b", "FLOAT", [1, 2], [3, 4])
    # bar_entry: tensors[0] + tensors[1] * float(args[0]) + len(keys)
    ran = ai(
        r, "AI.SCRIPTEXECUTE", "s", "bar_entry", "KEYS", 2, "k1", "k2", "INPUTS", 2, "a", "b",
        "ARGS", 1, "10", "OUTPUTS", 1, "out",
    )  # fmt: skip
    assert ran == OK
    assert values_of(r, "out") == [b"33", b"44"]
    # Two outputs.
    ran = ai(r, "AI.SCRIPTEXECUTE", "s", "split", "INPUTS", 1, "a", "OUTPUTS", 2, "p", "q")
    assert ran == OK
    assert (values_of(r, "p"), values_of(r, "q")) == ([b"2", b"3"], [b"0", b"1"])

    meta = [b"device", b"CPU", b"tag", b"t1", b"Entry Points", [b"bar_entry", b"split"]]
    assert ai(r, "AI.SCRIPTGET", "s", "META") == meta
    assert ai(r, "AI.SCRIPTGET", "s", "SOURCE") == TORCH_SCRIPT.encode()
    assert ai(r, "AI.SCRIPTGET", "s") == [*meta, b"source", TORCH_SCRIPT.encode()]
    assert ai(r, "AI._SCRIPTSCAN") == [[b"s", b"t1"]]

    missing = ("AI.SCRIPTEXECUTE", "s", "nosuch", "INPUTS", 1, "a", "OUTPUTS", 1, "never")
    assert error_of(r, *missing) == "function nosuch does not exist in script"
    assert ai(r, "EXISTS", "never") == 0

    assert ai(r, "AI.SCRIPTDEL", "s") == OK
    assert error_of(r, "AI.SCRIPTGET", "s") == "script key is empty"
    assert error_of(r, "AI.SCRIPTDEL", "s") == "script key is empty"


def test_scriptset_and_scriptrun_old_forms(sqlite_server: AIServer) -> None:
    r = sqlite_server.redis()
    assert ai(r, "AI.SCRIPTSET", "s", "CPU", "TAG", "old", "SOURCE", TORCH_SCRIPT) == OK
    tensorset(r, "a", "FLOAT", [2], [1, 2])
    tensorset(r, "b", "FLOAT", [2], [10, 20])
    assert ai(r, "AI.SCRIPTRUN", "s", "bar", "INPUTS", "a", "b", "OUTPUTS", "c") == OK
    assert values_of(r, "c") == [b"11", b"22"]
    refused = error_of(r, "AI.SCRIPTSET", "bad", "CPU", "SOURCE", "def f(:\n")
    assert refused.startswith("script does not compile: ") and "\n" not in refused, refused
    assert ai(r, "EXISTS", "bad") == 0


# --- 4. DAGs ------------------------------------------------------------------------------


def test_dag_load_and_persist(ai_server: AIServer) -> None:
    r = ai_server.redis()
    store_models(r)
    tensorset(r, "a", "FLOAT", [1, 2], [1, 2])
    tensorset(r, "b", "FLOAT", [1, 2], [10, 20])
    reply = ai(
        r,
        "AI.DAGEXECUTE",
        *dag(
            ("AI.TENSORSET", "local", "FLOAT", 1, 2, "VALUES", 100, 200),
            ("AI.MODELEXECUTE", "add", "INPUTS", 2, "a", "local", "OUTPUTS", 1, "tmp"),
            ("AI.MODELEXECUTE", "add", "INPUTS", 2, "tmp", "b", "OUTPUTS", 1, "out"),
            ("AI.TENSORGET", "out", "VALUES"),
            ("AI.TENSORGET", "tmp", "META"),
            header=("LOAD", 2, "a", "b", "PERSIST", 1, "out"),
        ),
    )
    assert reply == [
        OK,
        OK,
        OK,
        [b"111", b"222"],
        [b"dtype", b"FLOAT", b"shape", [1, 2]],
    ]
    assert values_of(r, "out") == [b"111", b"222"]
    assert ai(r, "EXISTS", "local", "tmp") == 0
    assert keys(r) == [b"a", b"add", b"b", b"mul2", b"mul3", b"mul5", b"out"]
    # A name neither loaded nor produced by an earlier op.
    unknown = dag(("AI.TENSORGET", "a", "VALUES"), header=("PERSIST", 1, "x"))
    assert error_of(r, "AI.DAGEXECUTE", *unknown) == "INPUT key cannot be found in DAG"


def test_dag_read_only(ai_server: AIServer) -> None:
    r = ai_server.redis()
    store_models(r)
    tensorset(r, "x", "FLOAT", [1, 2], [1, 2])
    persisting = dag(("AI.TENSORSET", "y", "FLOAT", 1, "VALUES", 1), header=("PERSIST", 1, "y"))
    for command in ("AI.DAGEXECUTE_RO", "AI.DAGRUN_RO"):
        assert error_of(r, command, *persisting) == "PERSIST cannot be specified in a read-only DAG"
    assert ai(r, "EXISTS", "y") == 0
    # Read-only without PERSIST runs, and writes nothing.
    reply = ai(
        r,
        "AI.DAGEXECUTE_RO",
        *dag(
            ("AI.MODELEXECUTE", "mul2", "INPUTS", 1, "x", "OUTPUTS", 1, "y"),
            ("AI.TENSORGET", "y", "VALUES"),
            header=("LOAD", 1, "x"),
        ),
    )
    assert reply == [OK, [b"2", b"4"]]
    assert ai(r, "EXISTS", "y") == 0


def test_failing_op_then_na_and_nothing_persisted(ai_server: AIServer) -> None:
    r = ai_server.redis()
    store_models(r)
    tensorset(r, "x", "FLOAT", [1, 2], [9, 9])
    reply = ai(
        r,
        "AI.DAGEXECUTE",
        *dag(
            ("AI.TENSORSET", "x", "FLOAT", 1, 2, "VALUES", 1, 2),
            ("AI.TENSORSET", "wrong", "INT32", 1, 2, "VALUES", 1, 2),
            ("AI.MODELEXECUTE", "add", "INPUTS", 2, "x", "wrong", "OUTPUTS", 1, "out"),
            ("AI.TENSORGET", "out", "VALUES"),
            ("AI.MODELEXECUTE", "mul2", "INPUTS", 1, "x", "OUTPUTS", 1, "other"),
            header=("PERSIST", 2, "x", "out"),
        ),
    )
    assert reply[:2] == [OK, OK]
    assert isinstance(reply[2], redis.ResponseError), reply
    assert reply[3:] == [NA, NA]
    assert values_of(r, "x") == [b"9", b"9"]  # the PERSIST of x did not happen either
    assert ai(r, "EXISTS", "out", "other", "wrong") == 0
    info = info_of(r, "add")
    assert (info[b"calls"], info[b"errors"]) == (1, 1)


def test_ensemble_of_three_models_joined_by_a_fourth_op(ai_server: AIServer) -> None:
    r = ai_server.redis()
    store_models(r)
    stored = ai(
        r, "AI.SCRIPTSTORE", "join", "CPU", "ENTRY_POINTS", 1, "join3", "SOURCE", JOIN_SCRIPT
    )
    assert stored == OK
    tensorset(r, "x", "FLOAT", [2, 2], [1, 2, 3, 4])
    argv = [
        "AI.DAGEXECUTE",
        *dag(
            ("AI.MODELEXECUTE", "mul2", "INPUTS", 1, "x", "OUTPUTS", 1, "y2"),
            ("AI.MODELEXECUTE", "mul3", "INPUTS", 1, "x", "OUTPUTS", 1, "y3"),
            ("AI.MODELEXECUTE", "mul5", "INPUTS", 1, "x", "OUTPUTS", 1, "y5"),
            ("AI.SCRIPTEXECUTE", "join", "join3", "INPUTS", 3, "y2", "y3", "y5", "OUTPUTS", 1, "y"),
            ("AI.TENSORGET", "y", "VALUES"),
            header=("LOAD", 1, "x", "PERSIST", 1, "y"),
        ),
    ]
    # The plan: the three models depend on nothing in the DAG (they may run in parallel),
    # the join waits for all three, the get for the join.
    assert plan(parse([str(a).encode() for a in argv])) == [(), (), (), (0, 1, 2), (3,)]
    assert ai(r, *argv) == [OK, OK, OK, OK, [b"10", b"20", b"30", b"40"]]
    assert values_of(r, "y") == [b"10", b"20", b"30", b"40"]
    assert ai(r, "EXISTS", "y2", "y3", "y5") == 0
    for model in ("mul2", "mul3", "mul5"):
        info = info_of(r, model)
        assert (info[b"calls"], info[b"samples"]) == (1, 2)


def test_seed_dialect(ai_server: AIServer) -> None:
    r = ai_server.redis()
    assert ai(r, "AI.MODELSTORE", "foo", "ONNX", "CPU", "BLOB", onnx_add_model()) == OK
    assert ai(r, "AI.SCRIPTSET", "bar", "CPU", "SOURCE", SEED_SCRIPT) == OK
    reply = ai(
        r,
        *words("AI.DAGRUN TENSORSET ~a~ FLOAT 1 2 VALUES 2 3 =>"),
        *words("TENSORSET ~b~ FLOAT 1 2 VALUES 2 3 =>"),
        *words("MODELRUN foo INPUTS ~a~ ~b~ OUTPUTS ~c~ =>"),
        *words("SCRIPTRUN bar baz INPUTS ~c~ OUTPUTS d"),
    )
    assert reply == [OK, OK, OK, OK]
    assert keys(r) == [b"bar", b"d", b"foo"]  # only d: the ~x~ names are volatile
    assert values_of(r, "d") == [b"40", b"60"]
    # Plain names read are loaded from the keyspace; a volatile result comes back by TENSORGET.
    tensorset(r, "a", "FLOAT", [1, 2], [1, 1])
    reply = ai(r, *words("AI.DAGRUN MODELRUN foo INPUTS a d OUTPUTS ~c~ => TENSORGET ~c~ VALUES"))
    assert reply == [OK, [b"41", b"61"]]
    assert keys(r) == [b"a", b"bar", b"d", b"foo"]
    # "~a~" is its own name, not the key "a".
    missing = "AI.DAGRUN MODELRUN foo INPUTS ~a~ a OUTPUTS ~c~ => TENSORGET ~c~ VALUES"
    assert error_of(r, *missing.split()) == "INPUT key cannot be found in DAG"
    # Both dialects compile to the same plan.
    seed = parse(b"AI.DAGRUN MODELRUN foo INPUTS a d OUTPUTS e".split())
    pipe = parse(
        b"AI.DAGRUN LOAD 2 a d PERSIST 1 e |> AI.MODELRUN foo INPUTS a d OUTPUTS e".split()
    )
    assert (seed.load, seed.persist, plan(seed)) == (pipe.load, pipe.persist, plan(pipe))


def test_names_set_again_run_in_program_order(ai_server: AIServer) -> None:
    """A "cycle" through re-set names: a -> b -> a -> b. Each read sees the latest write."""
    r = ai_server.redis()
    store_models(r)
    reply = ai(
        r,
        "AI.DAGEXECUTE",
        *dag(
            ("AI.TENSORSET", "a", "FLOAT", 1, 2, "VALUES", 1, 2),
            ("AI.MODELEXECUTE", "mul2", "INPUTS", 1, "a", "OUTPUTS", 1, "b"),
            ("AI.MODELEXECUTE", "mul3", "INPUTS", 1, "b", "OUTPUTS", 1, "a"),
            ("AI.MODELEXECUTE", "mul2", "INPUTS", 1, "a", "OUTPUTS", 1, "b"),
            ("AI.TENSORGET", "a", "VALUES"),
            ("AI.TENSORGET", "b", "VALUES"),
            ("AI.TENSORSET", "a", "FLOAT", 1, 2, "VALUES", 7, 7),
            header=("PERSIST", 2, "a", "b"),
        ),
    )
    assert reply == [OK, OK, OK, OK, [b"6", b"12"], [b"12", b"24"], OK]
    assert (values_of(r, "a"), values_of(r, "b")) == ([b"7", b"7"], [b"12", b"24"])


def test_timeout_exceeded_is_timedout(sqlite_server: AIServer) -> None:
    r = sqlite_server.redis()
    assert ai(r, "AI.MODELSTORE", "heavy", "ONNX", "CPU", "BLOB", heavy_model()) == OK
    x = np.ones((16, 256), dtype=np.float32)
    assert ai(r, "AI.TENSORSET", "x", "FLOAT", 16, 256, "BLOB", x.tobytes()) == OK
    run = ("AI.MODELEXECUTE", "heavy", "INPUTS", 1, "x", "OUTPUTS", 1, "y")
    assert ai(r, *run, "TIMEOUT", 1) == b"TIMEDOUT"
    assert ai(r, "AI.MODELRUN", "heavy", "TIMEOUT", 1, "INPUTS", "x", "OUTPUTS", "y") == (
        b"TIMEDOUT"
    )
    in_dag = dag(run, header=("LOAD", 1, "x", "PERSIST", 1, "y", "TIMEOUT", 1))
    assert ai(r, "AI.DAGEXECUTE", *in_dag) == b"TIMEDOUT"
    assert ai(r, "EXISTS", "y") == 0
    # The same runs without the deadline succeed: the timeout was the only obstacle.
    assert ai(r, *run) == OK
    assert ai(r, "AI.TENSORGET", "y", "META") == [b"dtype", b"FLOAT", b"shape", [16, 256]]


# --- 5. asynchronous DAGs -----------------------------------------------------------------


def async_dag(model: str = "mul2") -> list[Any]:
    return [
        "AI.DAGEXECUTEASYNC",
        *dag(
            ("AI.MODELEXECUTE", model, "INPUTS", 1, "x", "OUTPUTS", 1, "y"),
            ("AI.TENSORGET", "y", "VALUES"),
            header=("LOAD", 1, "x", "PERSIST", 1, "y"),
        ),
    ]


def test_async_dags_with_a_worker(
    serve: Callable[..., ServeProcess], store_url: str, sock_dir: Path
) -> None:
    server = serve(store_url, sock_dir / "w.sock", "--workers", "1")
    r = connect(server.socket_path)
    store_models(r)
    tensorset(r, "x", "FLOAT", [1, 2], [1, 2])
    run_id = ai(r, *async_dag())
    assert isinstance(run_id, bytes) and run_id
    assert ai(r, "AI.DAGRESULT", run_id, "BLOCK", BLOCK_MS) == [OK, [b"2", b"4"]]
    assert ai(r, "AI.DAGSTATUS", run_id) == b"done"
    assert values_of(r, "y") == [b"2", b"4"]
    assert ai(r, "AI.DAGRESULT", run_id) == [OK, [b"2", b"4"]]  # and again, without BLOCK

    seed_id = ai(r, *words("AI.DAGRUNASYNC MODELRUN mul3 INPUTS x OUTPUTS z => TENSORGET z VALUES"))
    assert ai(r, "AI.DAGRESULT", seed_id, "BLOCK", BLOCK_MS) == [OK, [b"3", b"6"]]
    assert values_of(r, "z") == [b"3", b"6"]

    # A run whose op fails: its reply is the sync form's, its status "failed".
    tensorset(r, "x", "INT32", [1, 2], [1, 2])
    failing = ai(r, *async_dag("mul5"))
    reply = ai(r, "AI.DAGRESULT", failing, "BLOCK", BLOCK_MS)
    assert isinstance(reply[0], redis.ResponseError) and reply[1] == NA, reply
    assert ai(r, "AI.DAGSTATUS", failing) == b"failed"
    assert values_of(r, "y") == [b"2", b"4"]
    # Errors found by parsing come at once, not as a run.
    bad = ["AI.DAGEXECUTEASYNC", *dag(("AI.TENSORGET", "nope", "VALUES"), header=("ROUTING", "x"))]
    assert error_of(r, *bad) == "INPUT key cannot be found in DAG"
    r.close()


def test_async_dag_status_result_and_cancel_without_a_worker(ai_server: AIServer) -> None:
    r = ai_server.redis()
    store_models(r)
    tensorset(r, "x", "FLOAT", [1, 2], [1, 2])
    run_id = ai(r, *async_dag())
    assert ai(r, "AI.DAGSTATUS", run_id) == b"queued"
    assert ai(r, "AI.DAGRESULT", run_id) is None
    assert ai(r, "AI.DAGRESULT", run_id, "BLOCK", 50) is None  # nobody runs it: nil after 50 ms
    assert ai(r, "AI.DAGCANCEL", run_id) == OK
    assert ai(r, "AI.DAGSTATUS", run_id) == b"cancelled"
    rid = run_id.decode()
    assert error_of(r, "AI.DAGRESULT", run_id) == f"DAG run {rid} was cancelled"
    assert error_of(r, "AI.DAGCANCEL", run_id) == f"DAG run {rid} has already finished (cancelled)"
    assert ai(r, "EXISTS", "y") == 0
    for command in ("AI.DAGSTATUS", "AI.DAGRESULT", "AI.DAGCANCEL"):
        assert error_of(r, command, "999999") == "no DAG run with id 999999"
        assert error_of(r, command, "not-an-id") == "no DAG run with id not-an-id"


def test_async_dag_survives_a_restart(
    serve: Callable[..., ServeProcess], store_url: str, sock_dir: Path
) -> None:
    first = serve(store_url, sock_dir / "hub.sock", "--workers", "0")
    r = connect(first.socket_path)
    store_models(r)
    tensorset(r, "x", "FLOAT", [1, 2], [3, 4])
    run_id = ai(r, *async_dag("mul5"))
    assert ai(r, "AI.DAGSTATUS", run_id) == b"queued"
    r.close()
    first.stop()

    second = serve(store_url, sock_dir / "hub.sock", "--workers", "1")
    r = connect(second.socket_path)
    assert ai(r, "AI.DAGRESULT", run_id, "BLOCK", BLOCK_MS) == [OK, [b"15", b"20"]]
    assert ai(r, "AI.DAGSTATUS", run_id) == b"done"
    assert values_of(r, "y") == [b"15", b"20"]
    r.close()


# --- 6. AI.INFO and AI.CONFIG -------------------------------------------------------------


def test_info_counters_and_resetstat(ai_server: AIServer) -> None:
    r = ai_server.redis()
    assert ai(r, "AI.MODELSTORE", "m", "ONNX", "CPU", "TAG", "v1", "BLOB", onnx_mul_model(2)) == OK
    first = info_of(r, "m")
    assert first == {
        **{b"key": b"m", b"type": b"MODEL", b"backend": b"ONNX", b"device": b"CPU", b"tag": b"v1"},
        **{b"duration": 0, b"samples": 0, b"calls": 0, b"errors": 0},
    }
    tensorset(r, "one", "FLOAT", [1, 2], [1, 2])
    tensorset(r, "three", "FLOAT", [3, 2], [1, 2, 3, 4, 5, 6])
    tensorset(r, "wrong", "INT32", [1, 2], [1, 2])
    for x in ("one", "three"):
        assert ai(r, "AI.MODELEXECUTE", "m", "INPUTS", 1, x, "OUTPUTS", 1, "y") == OK
    error_of(r, "AI.MODELEXECUTE", "m", "INPUTS", 1, "wrong", "OUTPUTS", 1, "y")
    # A DAG's runs count too.
    in_dag = dag(
        ("AI.MODELEXECUTE", "m", "INPUTS", 1, "one", "OUTPUTS", 1, "z"), header=("LOAD", 1, "one")
    )
    assert ai(r, "AI.DAGEXECUTE", *in_dag) == [OK]
    info = info_of(r, "m")
    assert (info[b"calls"], info[b"errors"], info[b"samples"]) == (4, 1, 5)
    assert isinstance(info[b"duration"], int) and info[b"duration"] > 0
    assert ai(r, "AI.INFO", "m", "RESETSTAT") == OK
    assert info_of(r, "m") == first

    assert ai(r, "AI.SCRIPTSET", "s", "CPU", "TAG", "st", "SOURCE", TORCH_SCRIPT) == OK
    assert ai(r, "AI.SCRIPTRUN", "s", "bar", "INPUTS", "one", "one", "OUTPUTS", "w") == OK
    script = info_of(r, "s")
    assert (script[b"type"], script[b"backend"], script[b"tag"]) == (b"SCRIPT", b"TORCH", b"st")
    assert (script[b"calls"], script[b"errors"]) == (1, 0)

    for key in ("nope", "one"):  # no such key; a tensor has no run info
        assert error_of(r, "AI.INFO", key) == "cannot find run info for key"


def test_config_model_chunk_size(sqlite_server: AIServer) -> None:
    r = sqlite_server.redis()
    assert ai(r, "AI.CONFIG", "GET", "MODEL_CHUNK_SIZE") == 511 * 1024 * 1024
    blob = onnx_add_model()
    assert ai(r, "AI.MODELSTORE", "m", "ONNX", "CPU", "BLOB", blob) == OK
    assert ai(r, "AI.MODELGET", "m", "BLOB") == blob  # smaller than a chunk: one string
    size = len(blob) // 3 + 1
    while len(blob) % size == 0:
        size += 1
    assert ai(r, "AI.CONFIG", "MODEL_CHUNK_SIZE", size) == OK
    assert ai(r, "AI.CONFIG", "GET", "MODEL_CHUNK_SIZE") == size
    for bad in ("0", "-5", "many"):
        assert "MODEL_CHUNK_SIZE" in error_of(r, "AI.CONFIG", "MODEL_CHUNK_SIZE", bad)
    assert ai(r, "AI.CONFIG", "GET", "MODEL_CHUNK_SIZE") == size
    # RedisAI replies with a larger model in chunks of that size.
    chunks = [blob[i : i + size] for i in range(0, len(blob), size)]
    assert len(chunks) == 3
    assert ai(r, "AI.MODELGET", "m", "BLOB") == chunks
    assert ai(r, "AI.MODELGET", "m", "META", "BLOB")[-2:] == [b"blob", chunks]


# --- 7. generic keyspace commands and notifications ---------------------------------------


def test_generic_keyspace_commands(ai_server: AIServer) -> None:
    r = ai_server.redis()
    for key in ("t1", "t2", "u1"):
        tensorset(r, key, "INT8", [1], [1])
    assert ai(r, "AI.MODELSTORE", "m", "ONNX", "CPU", "BLOB", onnx_add_model()) == OK
    assert ai(r, "AI.SCRIPTSET", "s", "CPU", "SOURCE", TORCH_SCRIPT) == OK

    assert [r.type(k) for k in ("t1", "m", "s", "nope")] == [
        b"AI_TENSOR",
        b"AI__MODEL",
        b"AI_SCRIPT",
        b"none",
    ]
    assert keys(r) == [b"m", b"s", b"t1", b"t2", b"u1"]
    assert sorted(r.keys("t*")) == [b"t1", b"t2"]
    assert sorted(r.keys("?1")) == [b"t1", b"u1"]
    assert sorted(r.scan_iter(count=2)) == [b"m", b"s", b"t1", b"t2", b"u1"]
    assert sorted(r.scan_iter(match="*1", count=1)) == [b"t1", b"u1"]
    assert sorted(r.scan_iter(_type="AI_TENSOR")) == [b"t1", b"t2", b"u1"]
    assert r.exists("t1", "t1", "m", "nope") == 3
    assert r.delete("t1", "m", "nope") == 2
    assert keys(r) == [b"s", b"t2", b"u1"]
    assert error_of(r, "AI.MODELGET", "m") == "model key is empty"
    assert r.flushall() is True
    assert keys(r) == []
    assert error_of(r, "AI.SCRIPTGET", "s") == "script key is empty"


@pytest.mark.parametrize("protocol", [2, 3])
def test_keyspace_notifications(sqlite_server: AIServer, protocol: int) -> None:
    r = sqlite_server.redis(protocol)
    store_models(r)
    listener = sqlite_server.redis(protocol).pubsub()
    listener.psubscribe("__keyspace@0__:*")
    assert next_message(listener)["type"] == "psubscribe"

    tensorset(r, "t", "FLOAT", [1, 2], [1, 2])
    in_dag = dag(
        ("AI.TENSORSET", "local", "FLOAT", 1, 2, "VALUES", 5, 5),
        ("AI.MODELEXECUTE", "add", "INPUTS", 2, "t", "local", "OUTPUTS", 1, "mid"),
        ("AI.MODELEXECUTE", "mul2", "INPUTS", 1, "mid", "OUTPUTS", 1, "out"),
        header=("LOAD", 1, "t", "PERSIST", 1, "out"),
    )
    assert ai(r, "AI.DAGEXECUTE", *in_dag) == [OK, OK, OK]
    seed = "AI.DAGRUN TENSORSET ~v~ FLOAT 1 2 VALUES 1 1 => MODELRUN mul3 INPUTS ~v~ OUTPUTS w"
    assert ai(r, *seed.split()) == [OK, OK]
    tensorset(r, "marker", "INT8", [1], [0])  # the last event: all before it have arrived

    channels = []
    while not channels or channels[-1] != b"__keyspace@0__:marker":
        message = next_message(listener)
        assert message["type"] == "pmessage" and message["data"], message
        channels.append(message["channel"])
    assert channels == [
        b"__keyspace@0__:t",
        b"__keyspace@0__:out",
        b"__keyspace@0__:w",
        b"__keyspace@0__:marker",
    ]
    listener.close()


# --- 8. bad input: the exact error, and nothing changed ----------------------------------


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("FLOAT32", 2, "VALUES", 1, 2), "invalid data type"),
        (("UINT32", 2, "VALUES", 1, 2), "invalid data type"),
        (("FLOAT", 2, "BLOB", b"\0" * 7), "data length does not match tensor shape and type"),
        (("INT16", 2, 2, "BLOB", b"\0" * 16), "data length does not match tensor shape and type"),
        (
            ("FLOAT", 2, "VALUES", 1, 2, 3),
            "wrong number of values was given in 'AI.TENSORSET' command",
        ),
        (("FLOAT", -1, "VALUES", 1), "invalid or negative value found in tensor shape"),
        (("FLOAT", 2, -2), "invalid or negative value found in tensor shape"),
        (("FLOAT", "two", "VALUES", 1, 2), "invalid or negative value found in tensor shape"),
        (("INT8", 2, "VALUES", 1, 128), "invalid value"),
        (("BOOL", 2, "VALUES", 1, 2), "invalid value"),
        (("FLOAT", 2, "VALUES", 1, "one"), "invalid value"),
        (
            ("FLOAT", 1024, 1024, 512),
            "tensor too large: 2147483648 bytes (at most 536870912)",
        ),
        (
            ("INT8", 1024, 1024, 2048, "BLOB", b"\0"),
            "tensor too large: 2147483648 bytes (at most 536870912)",
        ),
    ],
)
def test_bad_tensorset_changes_nothing(ai_server: AIServer, args: tuple, error: str) -> None:
    r = ai_server.redis()
    tensorset(r, "t", "INT32", [2], [7, 8])
    assert error_of(r, "AI.TENSORSET", "t", *args) == error
    assert error_of(r, "AI.TENSORSET", "new", *args) == error
    assert ai(r, "AI.TENSORGET", "t", "META", "VALUES") == [
        *[b"dtype", b"INT32", b"shape", [2]],
        *[b"values", [7, 8]],
    ]
    assert ai(r, "EXISTS", "new") == 0


def test_bad_model_blob_changes_nothing(ai_server: AIServer) -> None:
    r = ai_server.redis()
    good = onnx_add_model()
    assert ai(r, "AI.MODELSTORE", "m", "ONNX", "CPU", "TAG", "good", "BLOB", good) == OK
    for blob in (b"this is not a model", torch_model_bytes(), good[: len(good) // 2]):
        for key in ("m", "new"):
            message = error_of(r, "AI.MODELSTORE", key, "ONNX", "CPU", "TAG", "bad", "BLOB", blob)
            assert message.startswith("model blob is not a valid ONNX model: "), message
            assert "\n" not in message
    assert ai(r, "AI.MODELGET", "m", "BLOB") == good
    assert ai(r, "AI.MODELGET", "m", "META")[5] == b"good"
    assert ai(r, "EXISTS", "new") == 0
    assert error_of(r, "AI.MODELSTORE", "new", "ONNX", "GPU", "BLOB", good) == (
        "device GPU is not available on this hub (CPU only)"
    )
    assert "backend TF is not available" in error_of(r, "AI.MODELSTORE", "new", "TF", "CPU",
                                                    "INPUTS", 1, "a", "OUTPUTS", 1, "b",
                                                    "BLOB", good)  # fmt: skip
    assert ai(r, "EXISTS", "new") == 0


def test_dag_with_10000_ops_is_refused(ai_server: AIServer) -> None:
    r = ai_server.redis()
    ops = [("AI.TENSORSET", "t", "FLOAT", 1, "VALUES", i) for i in range(10_000)]
    argv = dag(*ops, header=("PERSIST", 1, "t"))
    assert (
        error_of(r, "AI.DAGEXECUTE", *argv) == "DAG has too many operations (10000; at most 1000)"
    )
    assert ai(r, "EXISTS", "t") == 0
    assert r.ping() is True


def test_persist_of_a_loaded_key_that_no_op_writes(ai_server: AIServer) -> None:
    """PERSIST may name a LOADed key no op writes: it is written back unchanged."""
    r = ai_server.redis()
    tensorset(r, "a", "FLOAT", [1], [1])
    tensorset(r, "b", "FLOAT", [1], [2])
    argv = dag(
        ("AI.TENSORSET", "a", "FLOAT", 1, "VALUES", 5),
        header=("LOAD", 2, "a", "b", "PERSIST", 2, "a", "b"),
    )
    assert ai(r, "AI.DAGEXECUTE", *argv) == [OK]
    assert (values_of(r, "a"), values_of(r, "b")) == ([b"5"], [b"2"])


@pytest.mark.parametrize(
    "argv",
    [
        [b"AI.TENSORSET", b"\x80", b"INT8", b"1"],
        [b"AI.TENSORGET", b"\xff\xfe", b"VALUES"],
        [b"AI.MODELGET", b"\x80"],
        [b"AI.MODELEXECUTE", b"add", b"INPUTS", b"1", b"\x80", b"OUTPUTS", b"1", b"o"],
        [b"AI.DAGSTATUS", b"\x80"],
        [b"AI.DAGRESULT", b"\x80"],
        [b"AI.DAGCANCEL", b"\x80"],
    ],
)
def test_names_that_are_not_utf8_get_an_error_reply(
    prepared_connection: redis.Connection, argv: list[bytes]
) -> None:
    """Keys are UTF-8 text in a hub: other bytes get an error, not a crash or a hang-up."""
    assert isinstance(check_reply(prepared_connection, argv), redis.ResponseError)


# --- 9. property tests --------------------------------------------------------------------

AI_COMMANDS = [
    "TENSORSET", "TENSORGET", "MODELSTORE", "MODELSET", "MODELGET", "MODELDEL", "_MODELSCAN",
    "MODELEXECUTE", "MODELRUN", "SCRIPTSTORE", "SCRIPTSET", "SCRIPTGET", "SCRIPTDEL",
    "_SCRIPTSCAN", "SCRIPTEXECUTE", "SCRIPTRUN", "DAGEXECUTE", "DAGEXECUTE_RO", "DAGRUN",
    "DAGRUN_RO", "DAGEXECUTEASYNC", "DAGRUNASYNC", "DAGSTATUS", "DAGRESULT", "DAGCANCEL", "INFO",
    "CONFIG",
]  # fmt: skip
WORDS = [
    "|>", "=>", "LOAD", "PERSIST", "ROUTING", "TIMEOUT", "KEYS", "INPUTS", "OUTPUTS", "ARGS",
    "META", "BLOB", "VALUES", "SOURCE", "ENTRY_POINTS", "TAG", "BATCHSIZE", "MINBATCHSIZE",
    "MINBATCHTIMEOUT", "BLOCK", "RESETSTAT", "GET", "MODEL_CHUNK_SIZE", "FLOAT", "DOUBLE",
    "INT8", "UINT16", "BOOL", "STRING", "ONNX", "TORCH", "TF", "CPU", "GPU", "a", "b", "c",
    "~a~", "~b~", "add", "s", "bar", "bar_entry", "TENSORSET", "AI.TENSORSET", "TENSORGET",
    "AI.TENSORGET", "MODELEXECUTE", "AI.MODELEXECUTE", "MODELRUN", "SCRIPTEXECUTE",
    "AI.SCRIPTEXECUTE", "SCRIPTRUN", "AI.MODELSTORE", "",
]  # fmt: skip
token = st.one_of(
    st.sampled_from(WORDS).map(str.encode),
    st.integers(-3, 40).map(lambda n: str(n).encode()),  # small: BLOCK ms, dims, counts
    st.binary(max_size=12),
)


def check_reply(conn: redis.Connection, argv: list[bytes]) -> Any:
    """Send one command on ``conn``: a reply or an error reply, never a dropped connection or
    an internal error; the connection answers PING afterwards."""
    conn.send_command(*argv)
    try:
        reply = conn.read_response()
    except redis.ResponseError as exc:
        assert "internal error" not in str(exc), (argv, exc)
        reply = exc
    conn.send_command("PING")
    assert conn.read_response() in (b"PONG", "PONG"), argv
    return reply


@pytest.fixture
def prepared_connection(sqlite_server: AIServer) -> Iterator[redis.Connection]:
    """One raw connection (no pool, no retries) to a hub holding models add, mulK, script s
    and tensors a, b."""
    r = sqlite_server.redis()
    store_models(r)
    assert ai(r, "AI.SCRIPTSTORE", "s", "CPU", "ENTRY_POINTS", 2, "bar_entry", "split", "SOURCE",
              TORCH_SCRIPT) == OK  # fmt: skip
    tensorset(r, "a", "FLOAT", [1, 2], [1, 2])
    tensorset(r, "b", "FLOAT", [1, 2], [3, 4])
    conn = redis.UnixDomainSocketConnection(
        path=str(sqlite_server.socket_path), socket_timeout=TIMEOUT
    )
    conn.connect()
    yield conn
    conn.disconnect()


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    name=st.sampled_from(AI_COMMANDS).map(lambda n: f"AI.{n}".encode()),
    args=st.lists(token, max_size=25),
)
def test_random_ai_argv_gets_a_reply_or_an_error(
    prepared_connection: redis.Connection, name: bytes, args: list[bytes]
) -> None:
    check_reply(prepared_connection, [name, *args])


NAMES = ["a", "b", "c", "~x~", "~y~"]
name_st = st.sampled_from(NAMES)


@st.composite
def random_dag(draw: st.DrawFn) -> tuple[list[bytes], int]:
    """A DAG in either dialect, of random ops over a few names: (argv, number of ops)."""
    seed = draw(st.booleans())
    ops = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["set", "get", "model", "script"]))
        n1, n2, n3 = draw(name_st), draw(name_st), draw(name_st)
        if kind == "set":
            ops.append(["AI.TENSORSET", n1, "FLOAT", "1", "2", "VALUES", "1", "2"])
        elif kind == "get":
            ops.append(["AI.TENSORGET", n1, draw(st.sampled_from(["META", "VALUES", "BLOB"]))])
        elif seed:
            ops.append(
                ["MODELRUN", "add", "INPUTS", n1, n2, "OUTPUTS", n3]
                if kind == "model"
                else ["SCRIPTRUN", "s", "bar", "INPUTS", n1, n2, "OUTPUTS", n3]
            )
        else:
            ops.append(
                ["AI.MODELEXECUTE", "add", "INPUTS", "2", n1, n2, "OUTPUTS", "1", n3]
                if kind == "model"
                else ["AI.SCRIPTEXECUTE", "s", "bar_entry", "INPUTS", "2", n1, n2, "OUTPUTS",
                      "1", n3]
            )  # fmt: skip
    if seed:
        argv = ["AI.DAGRUN"]
        for i, op in enumerate(ops):
            argv += (["=>"] if i else []) + op
    else:
        load = draw(st.lists(st.sampled_from(["a", "b"]), unique=True))
        persist = draw(st.lists(name_st, unique=True, max_size=2))
        argv = ["AI.DAGEXECUTE", "ROUTING", "a"]
        if load:
            argv += ["LOAD", str(len(load)), *load]
        if persist:
            argv += ["PERSIST", str(len(persist)), *persist]
        for op in ops:
            argv += ["|>", *op]
    return [a.encode() for a in argv], len(ops)


def snapshot(conn: redis.Connection) -> list[Any]:
    """What the keyspace holds under the plain names (an error text for a missing key)."""
    replies = [check_reply(conn, [b"AI.TENSORGET", k.encode(), b"BLOB"]) for k in ("a", "b", "c")]
    return [str(r) if isinstance(r, redis.ResponseError) else r for r in replies]


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(spec=random_dag())
def test_random_dags_reply_per_op_and_persist_only_on_success(
    prepared_connection: redis.Connection, spec: tuple[list[bytes], int]
) -> None:
    argv, n_ops = spec
    before = snapshot(prepared_connection)
    reply = check_reply(prepared_connection, argv)
    if isinstance(reply, redis.ResponseError):
        assert snapshot(prepared_connection) == before  # refused: nothing ran
        return
    assert isinstance(reply, list) and len(reply) == n_ops, reply
    failed = [i for i, r in enumerate(reply) if isinstance(r, redis.ResponseError)]
    if failed:
        assert reply[failed[0] + 1 :] == [NA] * (n_ops - failed[0] - 1)
        assert snapshot(prepared_connection) == before
