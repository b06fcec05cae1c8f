"""ai.parse: AI.* command syntax (RedisAI 1.2.7), both DAG dialects, and plan().

Error texts are RedisAI's (tests/flow/tests_dag_errors.py, tests_common.py there)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from learnhub.ai.parse import (
    MAX_DAG_OPS,
    Config,
    Dag,
    DagCancel,
    DagResult,
    DagStatus,
    Info,
    ModelDel,
    ModelExecute,
    ModelGet,
    ModelScan,
    ModelStore,
    ScriptDel,
    ScriptExecute,
    ScriptGet,
    ScriptScan,
    ScriptStore,
    TensorGet,
    TensorSet,
    parse,
    plan,
)
from learnhub.errors import AIError


def cmd(line: str, *extra: bytes) -> list[bytes]:
    """A command line split on spaces, plus binary arguments appended as they are."""
    return [w.encode() for w in line.split()] + list(extra)


def fails(line: str | list[bytes], text: str) -> None:
    argv = cmd(line) if isinstance(line, str) else line
    with pytest.raises(AIError) as info:
        parse(argv)
    assert str(info.value) == text


# ----------------------------------------------------------------------------- tensors


def test_tensorset_values() -> None:
    req = parse(cmd("ai.tensorset foo FLOAT 2 2 VALUES 1 2 3 4"))
    assert isinstance(req, TensorSet) and req.key == "foo"
    assert req.tensor.dtype == np.float32 and req.tensor.tolist() == [[1, 2], [3, 4]]
    assert req.reads == () and req.writes == ("foo",)


def test_tensorset_blob_and_no_data_and_scalar() -> None:
    blob = np.array([1, -2], dtype="<i2").tobytes()
    req = parse(cmd("AI.TENSORSET t INT16 2 BLOB", blob))
    assert isinstance(req, TensorSet) and req.tensor.tolist() == [1, -2]
    zeros = parse(cmd("AI.TENSORSET t uint8 1 3"))
    assert isinstance(zeros, TensorSet) and zeros.tensor.tolist() == [[0, 0, 0]]
    scalar = parse(cmd("AI.TENSORSET t DOUBLE VALUES 2.5"))
    assert isinstance(scalar, TensorSet) and scalar.tensor.shape == () and scalar.tensor == 2.5


@pytest.mark.parametrize(
    ("line", "text"),
    [
        ("AI.TENSORSET", "wrong number of arguments for 'AI.TENSORSET' command"),
        ("AI.TENSORSET z FLOAT", "wrong number of arguments for 'AI.TENSORSET' command"),
        ("AI.TENSORSET z INT128 2 VALUES 2 3", "invalid data type"),
        ("AI.TENSORSET z INT32 -1 VALUES 2 3", "invalid or negative value found in tensor shape"),
        ("AI.TENSORSET z INT32 2 x VALUES 2 3", "invalid or negative value found in tensor shape"),
        ("AI.TENSORSET z INT32 0", "invalid or negative value found in tensor shape"),
        (
            "AI.TENSORSET z FLOAT 2 VALUES 1",
            "wrong number of values was given in 'AI.TENSORSET' command",
        ),
        (
            "AI.TENSORSET z FLOAT 2 VALUES 1 2 3",
            "wrong number of values was given in 'AI.TENSORSET' command",
        ),
        ("AI.TENSORSET z FLOAT 2 VALUES 2 A", "invalid value"),
        ("AI.TENSORSET z INT8 2 VALUES 1 300", "invalid value"),
        (
            "AI.TENSORSET z FLOAT 2 BLOB",
            "a single binary string should come after the BLOB argument in 'AI.TENSORSET' command",
        ),
        (
            "AI.TENSORSET z FLOAT 2 BLOB x extra",
            "a single binary string should come after the BLOB argument in 'AI.TENSORSET' command",
        ),
        ("AI.TENSORSET z FLOAT 2 BLOB xyz", "data length does not match tensor shape and type"),
        (
            "AI.TENSORSET z FLOAT 65536 65536 4",
            "tensor too large: 68719476736 bytes (at most 536870912)",
        ),
        ("AI.TENSORSET z FLOAT " + "1 " * 40, "too many dimensions in tensor shape (at most 32)"),
    ],
)
def test_tensorset_errors(line: str, text: str) -> None:
    fails(line, text)


@pytest.mark.parametrize(
    ("line", "meta", "fmt"),
    [
        ("AI.TENSORGET t", True, "BLOB"),  # no argument: META + BLOB
        ("AI.TENSORGET t META", True, None),
        ("AI.TENSORGET t BLOB", False, "BLOB"),
        ("AI.TENSORGET t values", False, "VALUES"),
        ("AI.TENSORGET t META VALUES", True, "VALUES"),
        ("AI.TENSORGET t BLOB META", True, "BLOB"),
    ],
)
def test_tensorget(line: str, meta: bool, fmt: str | None) -> None:
    req = parse(cmd(line))
    assert req == TensorGet("t", meta, fmt)
    assert isinstance(req, TensorGet) and req.reads == ("t",) and req.writes == ()


@pytest.mark.parametrize(
    ("line", "text"),
    [
        ("AI.TENSORGET", "wrong number of arguments for 'AI.TENSORGET' command"),
        (
            "AI.TENSORGET t META VALUES extra",
            "wrong number of arguments for 'AI.TENSORGET' command",
        ),
        ("AI.TENSORGET t unsupported_format", "unsupported data format"),
        ("AI.TENSORGET t BLOB VALUES", "both BLOB and VALUES specified"),
    ],
)
def test_tensorget_errors(line: str, text: str) -> None:
    fails(line, text)


# ----------------------------------------------------------------------------- models


def test_modelstore_full_syntax_with_blob_chunks() -> None:
    req = parse(
        cmd(
            "AI.MODELSTORE m TF CPU:0 TAG v1.2 BATCHSIZE 8 MINBATCHSIZE 2 MINBATCHTIMEOUT 50 "
            "INPUTS 2 a b OUTPUTS 1 c BLOB",
            b"\x00chunk1|>",
            b"chunk2",
            b"BLOB",
        )
    )
    assert req == ModelStore(
        "m", "TF", "CPU:0", "v1.2", 8, 2, 50, ["a", "b"], ["c"], b"\x00chunk1|>chunk2BLOB"
    )


def test_modelstore_defaults() -> None:
    req = parse(cmd("AI.MODELSTORE m onnx cpu BLOB", b"\x01\x02"))
    assert req == ModelStore("m", "ONNX", "cpu", "", 0, 0, 0, [], [], b"\x01\x02")


@pytest.mark.parametrize(
    ("line", "text"),
    [
        ("AI.MODELSTORE m ONNX CPU BLOB", "wrong number of arguments for 'AI.MODELSTORE' command"),
        ("AI.MODELSTORE m CAFFE CPU BLOB x", "unsupported backend"),
        ("AI.MODELSTORE m ONNX TPU BLOB x", "Invalid DEVICE"),
        ("AI.MODELSTORE m ONNX CPU:abc BLOB x", "Invalid DEVICE"),
        ("AI.MODELSTORE m ONNX GPU:12345678 BLOB x", "Invalid DEVICE"),
        ("AI.MODELSTORE m ONNX CPU BATCHSIZE -1 BLOB x", "Invalid argument for BATCHSIZE"),
        (
            "AI.MODELSTORE m ONNX CPU MINBATCHSIZE 2 BLOB x",
            "MINBATCHSIZE specified without BATCHSIZE",
        ),
        (
            "AI.MODELSTORE m ONNX CPU BATCHSIZE 2 MINBATCHTIMEOUT 9 BLOB x",
            "MINBATCHTIMEOUT specified without MINBATCHSIZE",
        ),
        (
            "AI.MODELSTORE m TFLITE CPU BATCHSIZE 2 BLOB x",
            "Auto-batching not supported by the TFLITE backend",
        ),
        ("AI.MODELSTORE m ONNX CPU TAG t x y", "Invalid argument, expected BLOB"),
        ("AI.MODELSTORE m ONNX CPU BATCHSIZE 2 TAG t BLOB x", "Invalid argument, expected BLOB"),
        ("AI.MODELSTORE m ONNX CPU TAG t BLOB", "Insufficient arguments, missing model BLOB"),
        ("AI.MODELSTORE m TF CPU BLOB x y", "INPUTS not specified for TF"),
        ("AI.MODELSTORE m TF CPU INPUTS 0 BLOB x", "Invalid argument for input_count"),
        (
            "AI.MODELSTORE m TF CPU INPUTS 5 a b",
            "number of model inputs does not match the number of given arguments",
        ),
        ("AI.MODELSTORE m TF CPU INPUTS 1 a BLOB x", "OUTPUTS not specified for TF"),
        (
            "AI.MODELSTORE m ONNX CPU INPUTS 1 a OUTPUTS x BLOB y",
            "Invalid argument for output_count",
        ),
    ],
)
def test_modelstore_errors(line: str, text: str) -> None:
    fails(line, text)


def test_modelset_old_syntax() -> None:
    req = parse(
        cmd("AI.MODELSET m TORCH GPU TAG t BATCHSIZE 4 MINBATCHSIZE 2 INPUTS a b OUTPUTS c BLOB")
        + [b"part1", b"part2"]
    )
    assert req == ModelStore("m", "TORCH", "GPU", "t", 4, 2, 0, ["a", "b"], ["c"], b"part1part2")
    plain = parse(cmd("AI.MODELSET m ONNX CPU BLOB", b"onnx"))
    assert plain == ModelStore("m", "ONNX", "CPU", "", 0, 0, 0, [], [], b"onnx")


@pytest.mark.parametrize(
    ("line", "text"),
    [
        ("AI.MODELSET m ONNX", "wrong number of arguments for 'AI.MODELSET' command"),
        ("AI.MODELSET m ONNX CPU", "Insufficient arguments, missing model BLOB"),
        ("AI.MODELSET m ONNX CPU BLOB", "Insufficient arguments, missing model BLOB"),
        ("AI.MODELSET m TF CPU BLOB x", "Insufficient arguments, INPUTS and OUTPUTS not specified"),
        ("AI.MODELSET m TF CPU a OUTPUTS b BLOB x", "INPUTS not specified"),
        ("AI.MODELSET m TF CPU INPUTS a b BLOB x", "OUTPUTS not specified"),
    ],
)
def test_modelset_errors(line: str, text: str) -> None:
    fails(line, text)


@pytest.mark.parametrize(
    ("line", "meta", "blob"),
    [
        ("AI.MODELGET m", True, True),  # no argument: both
        ("AI.MODELGET m META", True, False),
        ("AI.MODELGET m BLOB", False, True),
        ("AI.MODELGET m META BLOB", True, True),
        ("AI.MODELGET m bogus", True, True),  # RedisAI ignores unknown words
    ],
)
def test_modelget(line: str, meta: bool, blob: bool) -> None:
    assert parse(cmd(line)) == ModelGet("m", meta, blob)


def test_model_admin_commands() -> None:
    assert parse(cmd("AI.MODELDEL m")) == ModelDel("m")
    assert parse(cmd("AI._MODELSCAN")) == ModelScan()
    assert parse(cmd("ai._scriptscan")) == ScriptScan()
    fails("AI.MODELDEL", "wrong number of arguments for 'AI.MODELDEL' command")
    fails("AI.MODELDEL a b", "wrong number of arguments for 'AI.MODELDEL' command")
    fails("AI._MODELSCAN x", "wrong number of arguments for 'AI._MODELSCAN' command")
    fails("AI.MODELGET m META BLOB x", "wrong number of arguments for 'AI.MODELGET' command")


def test_modelexecute() -> None:
    req = parse(cmd("AI.MODELEXECUTE m INPUTS 2 a b OUTPUTS 1 c"))
    assert req == ModelExecute("m", ["a", "b"], ["c"], None)
    assert isinstance(req, ModelExecute) and req.reads == ("a", "b") and req.writes == ("c",)
    timed = parse(cmd("AI.MODELEXECUTE m INPUTS 1 a OUTPUTS 2 c d TIMEOUT 1000"))
    assert timed == ModelExecute("m", ["a"], ["c", "d"], 1000)


@pytest.mark.parametrize(
    ("line", "text"),
    [
        (
            "AI.MODELEXECUTE m INPUTS 1 a OUTPUTS 1",
            "wrong number of arguments for 'AI.MODELEXECUTE' command",
        ),
        ("AI.MODELEXECUTE m INPUT 1 a OUTPUTS 1 b", "INPUTS not specified"),
        ("AI.MODELEXECUTE m INPUTS x a OUTPUTS 1 b", "Invalid argument for input_count"),
        ("AI.MODELEXECUTE m INPUTS 0 OUTPUTS 1 b c", "Input count must be a positive integer"),
        (
            "AI.MODELEXECUTE m INPUTS 9 a OUTPUTS 1 b",
            "number of input keys to AI.MODELEXECUTE command"
            " does not match the number of given arguments",
        ),
        ("AI.MODELEXECUTE m INPUTS 2 a OUTPUTS 1 b", "OUTPUTS not specified"),
        ("AI.MODELEXECUTE m INPUTS 1 a OUTPUTS -1 b", "Output count must be a positive integer"),
        (
            "AI.MODELEXECUTE m INPUTS 1 a OUTPUTS 3 b c",
            "number of output keys to AI.MODELEXECUTE command"
            " does not match the number of given arguments",
        ),
        ("AI.MODELEXECUTE m INPUTS 1 a OUTPUTS 1 b TIMEOUT", "No value provided for TIMEOUT"),
        ("AI.MODELEXECUTE m INPUTS 1 a OUTPUTS 1 b TIMEOUT 0", "Invalid value for TIMEOUT"),
        ("AI.MODELEXECUTE m INPUTS 1 a OUTPUTS 1 b TIMEOUT 1.5", "Invalid value for TIMEOUT"),
        ("AI.MODELEXECUTE m INPUTS 1 a OUTPUTS 1 b BOGUS 3", "Invalid argument: BOGUS"),
        ("AI.MODELEXECUTE m INPUTS 1 a OUTPUTS 1 b TIMEOUT 3 x", "Invalid argument: x"),
    ],
)
def test_modelexecute_errors(line: str, text: str) -> None:
    fails(line, text)


def test_modelrun_old_syntax() -> None:
    assert parse(cmd("AI.MODELRUN m INPUTS a b OUTPUTS c")) == ModelExecute(
        "m", ["a", "b"], ["c"], None
    )
    assert parse(cmd("AI.MODELRUN m TIMEOUT 50 INPUTS a OUTPUTS c d")) == ModelExecute(
        "m", ["a"], ["c", "d"], 50
    )
    fails("AI.MODELRUN m INPUTS a OUTPUTS", "wrong number of arguments for 'AI.MODELRUN' command")
    fails("AI.MODELRUN m TIMEOUT 5 a OUTPUTS b", "INPUTS not specified")
    fails("AI.MODELRUN m TIMEOUT -5 INPUTS a OUTPUTS b", "Invalid value for TIMEOUT")


# ----------------------------------------------------------------------------- scripts


def test_scriptstore_and_scriptset() -> None:
    src = "def bar(tensors: List[Tensor], keys: List[str], args: List[str]):\n    return tensors[0]"
    req = parse(cmd("AI.SCRIPTSTORE s CPU TAG v ENTRY_POINTS 2 bar baz SOURCE") + [src.encode()])
    assert req == ScriptStore("s", "CPU", "v", ["bar", "baz"], src)
    assert parse(cmd("AI.SCRIPTSET s GPU:1 SOURCE", b"def f(a): return a")) == ScriptStore(
        "s", "GPU:1", "", None, "def f(a): return a"
    )
    assert parse(cmd("AI.SCRIPTSET s CPU TAG t SOURCE", b"x")) == ScriptStore(
        "s", "CPU", "t", None, "x"
    )


@pytest.mark.parametrize(
    ("line", "text"),
    [
        (
            "AI.SCRIPTSTORE s CPU ENTRY_POINTS 1 f",
            "wrong number of arguments for 'AI.SCRIPTSTORE' command",
        ),
        (
            "AI.SCRIPTSTORE s CPU TAG t SOURCE x y z",
            "Insufficient arguments, missing script entry points",
        ),
        (
            "AI.SCRIPTSTORE s CPU ENTRY_POINTS x f SOURCE y",
            "Non numeric entry points number provided to AI.SCRIPTSTORE command",
        ),
        (
            "AI.SCRIPTSTORE s CPU ENTRY_POINTS 5 f SOURCE y",
            "Insufficient arguments, missing script entry points",
        ),
        (
            "AI.SCRIPTSTORE s CPU ENTRY_POINTS 2 f g h SOURCE y",
            "Insufficient arguments, missing script SOURCE",
        ),
        ("AI.SCRIPTSTORE s CPU ENTRY_POINTS 1 f SOURCE y extra", "Invalid argument: extra"),
        ("AI.SCRIPTSTORE s TPU ENTRY_POINTS 1 f SOURCE y", "Invalid DEVICE"),
        ("AI.SCRIPTSET s CPU SOURCE", "wrong number of arguments for 'AI.SCRIPTSET' command"),
        ("AI.SCRIPTSET s CPU x y", "Insufficient arguments, missing script SOURCE"),
    ],
)
def test_script_store_errors(line: str, text: str) -> None:
    fails(line, text)


def test_script_get_del() -> None:
    assert parse(cmd("AI.SCRIPTGET s")) == ScriptGet("s", True, True)
    assert parse(cmd("AI.SCRIPTGET s META")) == ScriptGet("s", True, False)
    assert parse(cmd("AI.SCRIPTGET s SOURCE")) == ScriptGet("s", False, True)
    assert parse(cmd("AI.SCRIPTDEL s")) == ScriptDel("s")


def test_scriptexecute_all_sections() -> None:
    req = parse(
        cmd("AI.SCRIPTEXECUTE s bar KEYS 1 k INPUTS 2 a b ARGS 3 x y z OUTPUTS 1 c TIMEOUT 9")
    )
    assert req == ScriptExecute("s", "bar", ["k"], ["a", "b"], ["x", "y", "z"], ["c"], 9, False)
    assert isinstance(req, ScriptExecute) and req.reads == ("a", "b") and req.writes == ("c",)
    # sections in any order after the first; empty sections are allowed
    req = parse(cmd("AI.SCRIPTEXECUTE s bar INPUTS 1 a OUTPUTS 1 c ARGS 0 KEYS 0"))
    assert req == ScriptExecute("s", "bar", [], ["a"], [], ["c"], None, False)


@pytest.mark.parametrize(
    ("line", "text"),
    [
        ("AI.SCRIPTEXECUTE s", "wrong number of arguments for 'AI.SCRIPTEXECUTE' command"),
        (
            "AI.SCRIPTEXECUTE s bar",
            "KEYS or INPUTS scope must be provided first for AI.SCRIPTEXECUTE command",
        ),
        (
            "AI.SCRIPTEXECUTE s bar OUTPUTS 1 c",
            "KEYS or INPUTS scope must be provided first for AI.SCRIPTEXECUTE command",
        ),
        (
            "AI.SCRIPTEXECUTE s bar INPUTS 1 a INPUTS 1 b",
            "Already Encountered INPUTS scope in AI.SCRIPTEXECUTE command",
        ),
        (
            "AI.SCRIPTEXECUTE s bar KEYS 1 k KEYS 1 k",
            "Already Encountered KEYS scope in AI.SCRIPTEXECUTE command",
        ),
        ("AI.SCRIPTEXECUTE s bar INPUTS", "Invalid arguments provided to AI.SCRIPTEXECUTE"),
        (
            "AI.SCRIPTEXECUTE s bar INPUTS x a",
            "Invalid argument for inputs count in AI.SCRIPTEXECUTE",
        ),
        (
            "AI.SCRIPTEXECUTE s bar INPUTS 3 a b",
            "number of inputs to AI.SCRIPTEXECUTE command"
            " does not match the number of given arguments",
        ),
        (
            "AI.SCRIPTEXECUTE s bar KEYS 1 k ARGS 2 x",
            "number of args to AI.SCRIPTEXECUTE command"
            " does not match the number of given arguments",
        ),
        (
            "AI.SCRIPTEXECUTE s bar INPUTS 1 a 1",
            "Invalid AI.SCRIPTEXECUTE command. Unexpected argument: 1",
        ),
        (
            "AI.SCRIPTEXECUTE s bar INPUTS 1 a TIMEOUT",
            "No value provided for TIMEOUT in AI.SCRIPTEXECUTE",
        ),
        (
            "AI.SCRIPTEXECUTE s bar INPUTS 1 a TIMEOUT 5 OUTPUTS 1 c",
            "Encountered problem parsing AI.SCRIPTEXECUTE",
        ),
    ],
)
def test_scriptexecute_errors(line: str, text: str) -> None:
    fails(line, text)


def test_scriptrun_legacy() -> None:
    req = parse(cmd("AI.SCRIPTRUN s addtwo INPUTS a b OUTPUTS c"))
    assert req == ScriptExecute("s", "addtwo", [], ["a", "b"], [], ["c"], None, True)
    timed = parse(cmd("AI.SCRIPTRUN s f TIMEOUT 7 INPUTS a OUTPUTS c"))
    assert isinstance(timed, ScriptExecute) and timed.timeout_ms == 7 and timed.legacy
    fails("AI.SCRIPTRUN s f a INPUTS b", "Unrecongnized parameter to SCRIPTRUN")
    fails(
        "AI.SCRIPTRUN s f INPUTS a INPUTS b", "Already encountered an INPUTS keyword in SCRIPTRUN"
    )
    fails(
        "AI.SCRIPTRUN s f INPUTS a OUTPUTS b INPUTS c",
        "Already encountered an INPUTS section in SCRIPTRUN",
    )
    fails(
        "AI.SCRIPTRUN s f INPUTS a OUTPUTS b OUTPUTS c",
        "Already encountered an OUTPUTS keyword in SCRIPTRUN",
    )
    fails(
        "AI.SCRIPTRUN s f INPUTS a TIMEOUT 1 TIMEOUT 2",
        "Already encountered an TIMEOUT section in SCRIPTRUN",
    )
    with pytest.raises(AIError, match="use AI.SCRIPTEXECUTE"):
        parse(cmd("AI.SCRIPTRUN s f INPUTS $ a b OUTPUTS c"))


# ----------------------------------------------------------------------------- admin


def test_info_config_and_async_commands() -> None:
    assert parse(cmd("AI.INFO m")) == Info("m", False)
    assert parse(cmd("AI.INFO m resetstat")) == Info("m", True)
    assert parse(cmd("AI.INFO m whatever")) == Info("m", False)
    fails("AI.INFO", "wrong number of arguments for 'AI.INFO' command")
    assert parse(cmd("AI.CONFIG GET model_chunk_size")) == Config("MODEL_CHUNK_SIZE", None)
    assert parse(cmd("AI.CONFIG MODEL_CHUNK_SIZE 1024")) == Config("MODEL_CHUNK_SIZE", "1024")
    assert parse(cmd("AI.CONFIG LOADBACKEND TORCH x.so")) == Config("LOADBACKEND", "TORCH")
    assert parse(cmd("AI.CONFIG BACKENDSPATH /x")) == Config("BACKENDSPATH", "/x")
    fails("AI.CONFIG MODEL_CHUNK_SIZE", "MODEL_CHUNK_SIZE: missing chunk size")
    fails("AI.CONFIG MODEL_CHUNK_SIZE -4", "MODEL_CHUNK_SIZE: invalid chunk size")
    fails("AI.CONFIG NOPE 1", "unsupported subcommand")
    assert parse(cmd("AI.DAGSTATUS r1")) == DagStatus("r1")
    assert parse(cmd("AI.DAGCANCEL r1")) == DagCancel("r1")
    assert parse(cmd("AI.DAGRESULT r1")) == DagResult("r1", None)
    assert parse(cmd("AI.DAGRESULT r1 BLOCK 0")) == DagResult("r1", 0)
    fails("AI.DAGRESULT r1 BLOCK -1", "Invalid value for BLOCK")
    fails("AI.DAGRESULT r1 WAIT 5", "Invalid argument: WAIT")


def test_unknown_and_empty_commands() -> None:
    fails("AI.NOPE x", "unknown command 'AI.NOPE'")
    fails([b"AI.\x80"], "unknown command 'AI.\ufffd'")  # messages stay valid UTF-8
    with pytest.raises(AIError):
        parse([])


def test_names_round_trip_any_bytes() -> None:
    key = b"\xff\xfe-\xc3\xa9"  # not valid UTF-8, then a valid "é"
    req = parse([b"AI.TENSORGET", key, b"META"])
    assert isinstance(req, TensorGet) and req.key.encode("utf-8", "surrogateescape") == key
    assert req.key.endswith("é")


# ----------------------------------------------------------------------------- DAGs


def test_dagexecute_header_and_ops() -> None:
    req = parse(
        cmd(
            "AI.DAGEXECUTE LOAD 2 a b PERSIST 1 out ROUTING {tag} TIMEOUT 500 "
            "|> AI.TENSORSET c FLOAT 1 VALUES 3 "
            "|> AI.MODELEXECUTE m INPUTS 3 a b c OUTPUTS 1 tmp "
            "|> AI.SCRIPTEXECUTE s post INPUTS 1 tmp OUTPUTS 1 out "
            "|> AI.TENSORGET out VALUES"
        )
    )
    assert isinstance(req, Dag)
    assert (req.readonly, req.load, req.persist, req.routing, req.timeout_ms) == (
        False,
        ["a", "b"],
        ["out"],
        "{tag}",
        500,
    )
    assert not req.asynchronous
    assert [type(op) for op in req.ops] == [TensorSet, ModelExecute, ScriptExecute, TensorGet]
    assert req.ops[3] == TensorGet("out", False, "VALUES")
    assert plan(req) == [(), (0,), (1,), (2,)]


def test_dag_ops_without_ai_prefix_and_async_and_keys() -> None:
    req = parse(cmd("ai.dagexecuteasync KEYS 1 a LOAD 1 a |> tensorget a META"))
    assert isinstance(req, Dag) and req.asynchronous and req.routing is None
    assert req.ops == [TensorGet("a", True, None)]
    legacy = parse(cmd("AI.DAGRUNASYNC LOAD 1 a |> MODELRUN m INPUTS a OUTPUTS b"))
    assert isinstance(legacy, Dag) and legacy.asynchronous
    assert legacy.ops == [ModelExecute("m", ["a"], ["b"], None)]


def test_dagrun_header_is_optional() -> None:
    req = parse(cmd("AI.DAGRUN |> AI.TENSORSET a INT8 1 VALUES 1 |> AI.TENSORGET a"))
    assert isinstance(req, Dag) and req.load == [] and req.persist == [] and len(req.ops) == 2


def test_dagexecute_ro_refuses_persist_and_scripts() -> None:
    fails(
        "AI.DAGEXECUTE_RO PERSIST 1 t |> AI.TENSORSET t FLOAT 1 2 VALUES 5 10",
        "PERSIST cannot be specified in a read-only DAG",
    )
    fails(
        "AI.DAGEXECUTE_RO LOAD 1 v |> AI.SCRIPTEXECUTE s bar INPUTS 2 v v",
        "AI.SCRIPTEXECUTE command cannot be specified in a read-only DAG",
    )
    fails(
        "AI.DAGRUN_RO PERSIST 1 t |> AI.TENSORSET t FLOAT 1",
        "PERSIST cannot be specified in a read-only DAG",
    )
    ok = parse(cmd("AI.DAGEXECUTE_RO LOAD 1 v |> AI.MODELEXECUTE m INPUTS 1 v OUTPUTS 1 o"))
    assert isinstance(ok, Dag) and ok.readonly


def test_input_not_found_in_dag() -> None:
    fails(
        "AI.DAGEXECUTE ROUTING img |> AI.MODELEXECUTE m INPUTS 1 img OUTPUTS 1 t",
        "INPUT key cannot be found in DAG",
    )
    # an op may not read what a later op writes
    fails(
        "AI.DAGRUN |> AI.TENSORGET b |> AI.TENSORSET b FLOAT 1",
        "INPUT key cannot be found in DAG",
    )


def test_persist_key_not_found_in_dag() -> None:
    fails(
        "AI.DAGEXECUTE PERSIST 2 c0 c1 |> AI.TENSORSET x FLOAT 1 |> "
        "AI.MODELEXECUTE m INPUTS 1 x OUTPUTS 1 c0",
        "PERSIST key cannot be found in DAG",
    )
    # a LOADed key may be persisted (RedisAI maps it like any DAG tensor)
    req = parse(cmd("AI.DAGEXECUTE LOAD 1 a PERSIST 1 a |> AI.TENSORGET a"))
    assert isinstance(req, Dag) and req.persist == ["a"]


@pytest.mark.parametrize(
    ("line", "text"),
    [
        ("AI.DAGEXECUTE", "missing arguments for 'AI.DAGEXECUTE' command"),
        ("AI.DAGEXECUTE_RO LOAD 1 a", "missing arguments for 'AI.DAGEXECUTE_RO' command"),
        ("AI.DAGRUN", "wrong number of arguments for 'AI.DAGRUN' command"),
        (
            "AI.DAGEXECUTE PERSIST 2 a b LOAD 1",
            "missing arguments after LOAD keyword in DAG command",
        ),
        (
            "AI.DAGEXECUTE LOAD notnumber |> AI.TENSORGET a VALUES",
            "invalid or negative value found in number of keys to LOAD",
        ),
        (
            "AI.DAGEXECUTE ROUTING a LOAD 2 a |> AI.TENSORGET a",
            "number of keys to LOAD into DAG does not match the number of given arguments",
        ),
        (
            "AI.DAGEXECUTE ROUTING a LOAD 1 a PERSIST 1",
            "missing arguments after PERSIST keyword in DAG command",
        ),
        (
            "AI.DAGEXECUTE ROUTING a PERSIST x a |> AI.TENSORGET a",
            "invalid or negative value found in number of keys to PERSIST",
        ),
        (
            "AI.DAGEXECUTE ROUTING a PERSIST 2 a |> AI.TENSORSET a INT8 1",
            "number of keys to PERSIST after DAG execution"
            " does not match the number of given arguments",
        ),
        ("AI.DAGEXECUTE PERSIST 2 a a |> AI.TENSORSET a INT8 1", "PERSIST keys must be unique"),
        ("AI.DAGEXECUTE PERSIST 3 a b c ROUTING", "Missing ROUTING value"),
        ("AI.DAGEXECUTE ROUTING a PERSIST 1 a TIMEOUT", "No value provided for TIMEOUT"),
        ("AI.DAGEXECUTE ROUTING a PERSIST 1 a TIMEOUT not_number", "Invalid value for TIMEOUT"),
        (
            "AI.DAGEXECUTE ROUTING a PERSIST 1 a BAD_ARG",
            "Invalid DAG command. Unexpected argument:  BAD_ARG",
        ),
        (
            "AI.DAGEXECUTE LOAD 1 a LOAD 1 b |> AI.TENSORGET a",
            "Invalid DAG command. Unexpected argument:  LOAD",
        ),
        (
            "AI.DAGEXECUTE |> AI.TENSORSET a FLOAT 1 2 VALUES 5 10",
            "AI.DAGEXECUTE and AI.DAGEXECUTE_RO commands must contain"
            " at least one out of ROUTING, LOAD, PERSIST keywords",
        ),
        ("AI.DAGEXECUTE ROUTING v LOAD 1 v", "DAG is empty"),
        (
            "AI.DAGEXECUTE ROUTING a |> AI.NOCOMMAND a FLOAT 1 2",
            "Unsupported command within DAG: AI.NOCOMMAND",
        ),
        (
            "AI.DAGEXECUTE ROUTING a |> AI.MODELSTORE m ONNX CPU BLOB x",
            "Unsupported command within DAG: AI.MODELSTORE",
        ),
        (
            "AI.DAGEXECUTE LOAD 1 v |> AI.MODELRUN m INPUTS v OUTPUTS o",
            "Deprecated AI.MODELRUN cannot be used in AI.DAGEXECUTE command",
        ),
        (
            "AI.DAGEXECUTE LOAD 1 v |> AI.SCRIPTRUN s f INPUTS v OUTPUTS o",
            "Deprecated AI.SCRIPTRUN cannot be used in AI.DAGEXECUTE command",
        ),
        (
            "AI.DAGRUN LOAD 1 v |> AI.MODELEXECUTE m INPUTS 1 v OUTPUTS 1 o",
            "AI.MODELEXECUTE cannot be used in a deprecated AI.DAGRUN command",
        ),
        (
            "AI.DAGRUN LOAD 1 v |> AI.SCRIPTEXECUTE s f INPUTS 1 v",
            "AI.SCRIPTEXECUTE cannot be used in a deprecated AI.DAGRUN command",
        ),
        (
            "AI.DAGEXECUTE LOAD 1 v |> AI.MODELEXECUTE m INPUTS 1 v OUTPUTS 1 o TIMEOUT 5",
            "TIMEOUT not allowed within a DAG command",
        ),
        (
            "AI.DAGRUN LOAD 1 v |> AI.SCRIPTRUN s f TIMEOUT 5 INPUTS v OUTPUTS o",
            "TIMEOUT not allowed within a DAG command",
        ),
        (
            "AI.DAGEXECUTE ROUTING a |> AI.TENSORSET a FLOAT 1 |> AI.TENSORGET",
            "wrong number of arguments for 'AI.TENSORGET' command",
        ),
        (
            "AI.DAGEXECUTE ROUTING a |> AI.TENSORSET a FLOAT 1 |> |> AI.TENSORGET a",
            "empty operation in DAG: every separator must be followed by a command",
        ),
        (
            "AI.DAGEXECUTE ROUTING a |> AI.TENSORSET a FLOAT 1 |>",
            "empty operation in DAG: every separator must be followed by a command",
        ),
        (
            "AI.DAGRUN TENSORSET a FLOAT 1 => TENSORGET a |> TENSORGET a",
            "a DAG may not mix the '|>' and '=>' separators",
        ),
        (
            "AI.DAGRUN TENSORSET ~a~ FLOAT 1 => => TENSORGET ~a~",
            "empty operation in DAG: every separator must be followed by a command",
        ),
    ],
)
def test_dag_errors(line: str, text: str) -> None:
    fails(line, text)


@pytest.mark.parametrize("separator", ["|>", "=>"])
def test_dag_with_10000_ops_is_refused(separator: str) -> None:
    argv = cmd("AI.DAGRUN LOAD 1 a" if separator == "|>" else "AI.DAGRUN TENSORGET a")
    argv += cmd(f" {separator} AI.TENSORGET a" * 9_999 + (f" {separator} AI.TENSORGET a"))
    n = 10_000 if separator == "|>" else 10_001
    fails(argv, f"DAG has too many operations ({n}; at most {MAX_DAG_OPS})")


def test_dag_at_the_op_limit_is_accepted() -> None:
    argv = cmd("AI.DAGEXECUTE LOAD 1 a" + " |> AI.TENSORGET a" * MAX_DAG_OPS)
    req = parse(argv)
    assert isinstance(req, Dag) and len(req.ops) == MAX_DAG_OPS


def test_re_set_names_follow_program_order() -> None:
    # a is set twice and b is overwritten by a model reading it: no cycle, just versions
    req = parse(
        cmd(
            "AI.DAGEXECUTE PERSIST 1 b "
            "|> AI.TENSORSET a FLOAT 1 VALUES 1 "  # 0
            "|> AI.MODELEXECUTE m INPUTS 1 a OUTPUTS 1 b "  # 1 reads a@0
            "|> AI.TENSORSET a FLOAT 1 VALUES 2 "  # 2
            "|> AI.MODELEXECUTE m INPUTS 2 a b OUTPUTS 1 b "  # 3 reads a@2, b@1
            "|> AI.MODELEXECUTE m INPUTS 1 b OUTPUTS 1 b "  # 4 reads b@3
            "|> AI.TENSORGET a VALUES"  # 5 reads a@2
        )
    )
    assert isinstance(req, Dag)
    assert plan(req) == [(), (0,), (), (1, 2), (3,), (2,)]
    for i, deps in enumerate(plan(req)):
        assert all(d < i for d in deps)  # only earlier ops: the graph is acyclic


def test_ensemble_plan_has_independent_branches() -> None:
    req = parse(
        cmd(
            "AI.DAGEXECUTE LOAD 1 img PERSIST 1 label "
            "|> AI.MODELEXECUTE m1 INPUTS 1 img OUTPUTS 1 o1 "
            "|> AI.MODELEXECUTE m2 INPUTS 1 img OUTPUTS 1 o2 "
            "|> AI.MODELEXECUTE m3 INPUTS 1 img OUTPUTS 1 o3 "
            "|> AI.SCRIPTEXECUTE s ensemble INPUTS 3 o1 o2 o3 OUTPUTS 1 label"
        )
    )
    assert isinstance(req, Dag)
    assert plan(req) == [(), (), (), (0, 1, 2)]


SEED = (
    "AI.DAGRUN TENSORSET ~a~ FLOAT 2 VALUES 2 3 => TENSORSET ~b~ FLOAT 2 VALUES 2 3 "
    "=> MODELRUN foo INPUTS ~a~ ~b~ OUTPUTS ~c~ => SCRIPTRUN bar baz INPUTS ~c~ OUTPUTS d"
)


def test_seed_dialect_from_the_issue() -> None:
    req = parse(cmd(SEED))
    assert isinstance(req, Dag)
    assert req.load == [] and req.persist == ["d"] and not req.readonly
    assert [op.writes for op in req.ops] == [("~a~",), ("~b~",), ("~c~",), ("d",)]
    assert plan(req) == [(), (), (0, 1), (2,)]


def test_seed_dialect_compiles_to_the_same_dag_as_pipes() -> None:
    seed = parse(
        cmd(
            "AI.DAGRUN TENSORSET ~a~ FLOAT 2 VALUES 2 3 => MODELRUN foo INPUTS ~a~ x OUTPUTS ~c~ "
            "=> SCRIPTRUN bar baz INPUTS ~c~ x OUTPUTS d => TENSORGET d VALUES => TENSORGET y"
        )
    )
    pipes = parse(
        cmd(
            "AI.DAGRUN LOAD 2 x y PERSIST 1 d |> AI.TENSORSET ~a~ FLOAT 2 VALUES 2 3 "
            "|> AI.MODELRUN foo INPUTS ~a~ x OUTPUTS ~c~ "
            "|> AI.SCRIPTRUN bar baz INPUTS ~c~ x OUTPUTS d |> AI.TENSORGET d VALUES "
            "|> AI.TENSORGET y"
        )
    )
    assert seed == pipes
    assert plan(seed) == plan(pipes) == [(), (0,), (1,), (2,), ()]
    other = parse(cmd(SEED.replace("VALUES 2 3 =>", "VALUES 2 4 =>", 1)))
    assert other != parse(cmd(SEED))  # equality looks at tensor contents


def test_seed_dialect_single_op_and_execute_ops() -> None:
    req = parse(cmd("AI.DAGRUN TENSORGET k META"))
    assert isinstance(req, Dag) and req.load == ["k"] and req.ops == [TensorGet("k", True, None)]
    ex = parse(cmd("AI.DAGEXECUTE MODELEXECUTE m INPUTS 1 k OUTPUTS 1 ~o~ => TENSORGET ~o~"))
    assert isinstance(ex, Dag) and ex.load == ["k"] and ex.persist == []


def test_seed_dialect_volatile_input_must_be_produced() -> None:
    fails(
        "AI.DAGRUN MODELRUN foo INPUTS ~a~ OUTPUTS ~c~ => TENSORGET ~c~",
        "INPUT key cannot be found in DAG",
    )


def test_seed_dialect_ro_refuses_keyspace_writes() -> None:
    with pytest.raises(AIError, match="^PERSIST cannot be specified in a read-only DAG"):
        parse(cmd("AI.DAGRUN_RO TENSORSET ~a~ FLOAT 1 => SCRIPTRUN s f INPUTS ~a~ OUTPUTS d"))
    ok = parse(cmd("AI.DAGRUN_RO TENSORGET d => MODELRUN m INPUTS d OUTPUTS ~e~"))
    assert isinstance(ok, Dag) and ok.readonly and ok.load == ["d"] and ok.persist == []


# ----------------------------------------------------------------------------- properties

# fmt: off
VOCAB = [  # command words, keywords, names and numbers for random commands
    "", "AI.TENSORSET", "AI.TENSORGET", "AI.MODELSTORE", "AI.MODELSET", "AI.MODELGET",
    "AI.MODELDEL", "AI._MODELSCAN", "AI.MODELEXECUTE", "AI.MODELRUN", "AI.SCRIPTSTORE",
    "AI.SCRIPTSET", "AI.SCRIPTGET", "AI.SCRIPTDEL", "AI.SCRIPTEXECUTE", "AI.SCRIPTRUN",
    "AI.INFO", "AI.CONFIG", "AI.DAGEXECUTE", "AI.DAGEXECUTE_RO", "AI.DAGRUN", "AI.DAGRUN_RO",
    "AI.DAGRUNASYNC", "AI.DAGSTATUS", "AI.DAGRESULT", "AI.DAGCANCEL", "TENSORSET", "TENSORGET",
    "MODELRUN", "SCRIPTRUN", "MODELEXECUTE", "SCRIPTEXECUTE", "|>", "=>", "LOAD", "PERSIST",
    "ROUTING", "TIMEOUT", "KEYS", "INPUTS", "OUTPUTS", "ARGS", "BLOB", "VALUES", "META",
    "SOURCE", "TAG", "ENTRY_POINTS", "BATCHSIZE", "MINBATCHSIZE", "MINBATCHTIMEOUT",
    "RESETSTAT", "GET", "BLOCK", "FLOAT", "DOUBLE", "INT8", "UINT16", "BOOL", "STRING", "ONNX",
    "TORCH", "TF", "CPU", "GPU:0", "$", "~a~", "~b~", "a", "b", "c", "nan", "inf", "-1", "0",
    "1", "2", "3", "2.5"
]
# fmt: on
COMMANDS = [w for w in VOCAB if w.startswith("AI.")]
token = st.one_of(
    st.sampled_from(VOCAB),
    st.binary(max_size=6),
    st.integers(min_value=-3, max_value=40),
    st.integers(),
)


def check(argv: list) -> None:
    """parse() either succeeds with a request whose DAG is consistent, or raises AIError."""
    try:
        req = parse(argv)
    except AIError as exc:
        str(exc).encode("utf-8")  # the server sends it as is: no lone surrogates
        return
    if isinstance(req, Dag):
        known = set(req.load)
        for i, (op, deps) in enumerate(zip(req.ops, plan(req), strict=True)):
            assert all(name in known for name in op.reads)
            assert all(0 <= d < i for d in deps)
            known.update(op.writes)
        assert set(req.persist) <= known
        assert not (req.readonly and req.persist)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(COMMANDS), st.lists(token, max_size=14))
def test_random_argv_raises_only_aierror(command: str, rest: list) -> None:
    check([command, *rest])


@settings(max_examples=300, deadline=None)
@given(st.lists(token, max_size=10))
def test_random_argv_with_random_command_name(argv: list) -> None:
    check(argv)


OPS = st.sampled_from(
    [
        "AI.TENSORSET {x} FLOAT 2 VALUES 1 2",
        "TENSORSET {x} INT8 1",
        "AI.TENSORSET {x} STRING 1 BLOB",
        "AI.TENSORGET {x} VALUES",
        "TENSORGET {x}",
        "AI.MODELEXECUTE m INPUTS 1 {x} OUTPUTS 1 {y}",
        "AI.MODELEXECUTE m INPUTS 2 {x} {y} OUTPUTS 1 {y}",
        "MODELRUN m INPUTS {x} OUTPUTS {y}",
        "AI.SCRIPTEXECUTE s f INPUTS 1 {x} OUTPUTS 1 {y}",
        "SCRIPTRUN s f INPUTS {x} {y} OUTPUTS {x}",
        "AI.MODELSTORE m ONNX CPU BLOB x",
        "AI.TENSORGET",
        "",
    ]
)
NAMES = st.sampled_from(["a", "b", "~a~", "~b~", "|>"])
HEADERS = st.sampled_from(
    ["", "LOAD 1 a", "PERSIST 1 b", "LOAD 2 a b PERSIST 1 a", "ROUTING a", "TIMEOUT 10", "LOAD x"]
)


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(["AI.DAGEXECUTE", "AI.DAGEXECUTE_RO", "AI.DAGRUN", "AI.DAGRUN_RO"]),
    HEADERS,
    st.sampled_from([" |> ", " => "]),
    st.lists(st.tuples(OPS, NAMES, NAMES), max_size=8),
)
def test_random_op_sequences_raise_only_aierror(
    command: str, header: str, sep: str, ops: list[tuple[str, str, str]]
) -> None:
    body = [op.format(x=x, y=y) for op, x, y in ops]
    line = f"{command} {header}" + ("" if sep == " => " else sep) + sep.join(body)
    check(cmd(line))
