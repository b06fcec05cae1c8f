"""hub.ai from Python: the keyspace in the store, models, DAGs, asynchronous runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from tests.ai_models import onnx_add_model, onnx_heavy_model, onnx_mul_model

import learnhub
from learnhub.ai.engine import NA, OK, TIMEDOUT
from learnhub.errors import AIError, WrongType


def a(*values: float) -> np.ndarray:
    return np.array([values], dtype=np.float32)


def test_tensors_persist_across_reopen(store_url: str) -> None:
    with learnhub.open(store_url) as hub:
        hub.ai.tensorset("x", np.arange(6, dtype=np.int16).reshape(2, 3))
        hub.ai.tensorset("s", [b"hello", b"world"], dtype="STRING")
    with learnhub.open(store_url) as hub:
        x = hub.ai.tensorget("x")
        assert x.dtype == np.int16 and x.shape == (2, 3) and x.tolist() == [[0, 1, 2], [3, 4, 5]]
        assert hub.ai.tensorget("s").tolist() == [b"hello", b"world"]


def test_model_execute_reads_and_writes_the_keyspace(hub: learnhub.Hub) -> None:
    hub.ai.modelstore("add", "ONNX", "CPU", onnx_add_model())
    hub.ai.tensorset("a", a(1, 2))
    hub.ai.tensorset("b", a(10, 20))
    hub.ai.modelexecute("add", ["a", "b"], ["c"])
    assert hub.ai.tensorget("c").tolist() == [[11, 22]]


def test_model_replaced_under_the_same_key_is_reloaded(hub: learnhub.Hub) -> None:
    hub.ai.tensorset("x", a(1, 2))
    hub.ai.modelstore("m", "ONNX", "CPU", onnx_mul_model(2))
    hub.ai.modelexecute("m", ["x"], ["y"])
    assert hub.ai.tensorget("y").tolist() == [[2, 4]]
    hub.ai.modelstore("m", "ONNX", "CPU", onnx_mul_model(3))
    hub.ai.modelexecute("m", ["x"], ["y"])
    assert hub.ai.tensorget("y").tolist() == [[3, 6]]


def test_wrong_kind_of_key(hub: learnhub.Hub) -> None:
    hub.ai.modelstore("m", "ONNX", "CPU", onnx_mul_model(2))
    with pytest.raises(WrongType):
        hub.ai.tensorget("m")
    with pytest.raises(AIError, match="tensor key is empty"):
        hub.ai.tensorget("nothing")


def test_dag_persists_only_what_it_is_told_to(hub: learnhub.Hub) -> None:
    hub.ai.modelstore("add", "ONNX", "CPU", onnx_add_model())
    hub.ai.tensorset("a", a(1, 2))
    out = (
        hub.ai.dag(load=["a"], persist=["c"])
        .tensorset("b", a(5, 5))
        .modelexecute("add", ["a", "b"], ["c"])
        .tensorget("c")
        .run()
    )
    assert out[0] == "OK" and out[1] == "OK"
    assert out[2].tolist() == [[6, 7]]
    assert hub.ai.tensorget("c").tolist() == [[6, 7]]
    with pytest.raises(AIError):
        hub.ai.tensorget("b")  # local to the DAG


def test_failing_op_replies_error_then_na_and_persists_nothing(hub: learnhub.Hub) -> None:
    hub.ai.modelstore("add", "ONNX", "CPU", onnx_add_model())
    reply = hub.ai.command(
        [
            b"AI.DAGEXECUTE", b"PERSIST", b"2", b"ok", b"c",
            b"|>", b"AI.TENSORSET", b"ok", b"FLOAT", b"1", b"VALUES", b"1",
            b"|>", b"AI.TENSORSET", b"x", b"FLOAT", b"1", b"2", b"VALUES", b"1", b"2",
            b"|>", b"AI.MODELEXECUTE", b"add", b"INPUTS", b"1", b"x", b"OUTPUTS", b"1", b"c",
            b"|>", b"AI.TENSORGET", b"c", b"VALUES",
        ]
    )  # fmt: skip
    assert reply[0] == OK and reply[1] == OK
    assert isinstance(reply[2], AIError)
    assert reply[3] == NA
    for key in ("ok", "c"):
        with pytest.raises(AIError):
            hub.ai.tensorget(key)


def test_timeout_gives_timedout_and_persists_nothing(hub: learnhub.Hub) -> None:
    hub.ai.modelstore("heavy", "ONNX", "CPU", onnx_heavy_model())
    x = np.ones((64, 256), dtype=np.float32)
    hub.ai.tensorset("x", x)
    reply = hub.ai.command(
        [b"AI.MODELEXECUTE", b"heavy", b"INPUTS", b"1", b"x", b"OUTPUTS", b"1", b"y"]
        + [b"TIMEOUT", b"1"]
    )
    assert reply == TIMEDOUT
    with pytest.raises(AIError):
        hub.ai.tensorget("y")


def test_async_dag_runs_as_a_job(hub: learnhub.Hub) -> None:
    hub.ai.modelstore("add", "ONNX", "CPU", onnx_add_model())
    run_id = hub.ai.command(
        [
            b"AI.DAGEXECUTEASYNC", b"PERSIST", b"1", b"c",
            b"|>", b"AI.TENSORSET", b"a", b"FLOAT", b"1", b"2", b"VALUES", b"1", b"2",
            b"|>", b"AI.MODELEXECUTE", b"add", b"INPUTS", b"2", b"a", b"a", b"OUTPUTS", b"1", b"c",
            b"|>", b"AI.TENSORGET", b"c", b"VALUES",
        ]
    )  # fmt: skip
    assert hub.ai.command([b"AI.DAGSTATUS", run_id.encode()]) == "queued"
    hub.run_worker(burst=True, concurrency=1)
    assert hub.ai.command([b"AI.DAGSTATUS", run_id.encode()]) == "done"
    reply = hub.ai.command([b"AI.DAGRESULT", run_id.encode()])
    assert reply[:2] == [OK, OK]
    assert reply[2] == [b"2", b"4"]
    assert hub.ai.tensorget("c").tolist() == [[2, 4]]


def test_cancelled_async_dag_never_runs(hub: learnhub.Hub) -> None:
    run_id = hub.ai.command(
        [b"AI.DAGRUNASYNC", b"PERSIST", b"1", b"t", b"|>"]
        + [b"AI.TENSORSET", b"t", b"INT8", b"1", b"VALUES", b"7"]
    )
    assert hub.ai.command([b"AI.DAGCANCEL", run_id.encode()]) == OK
    hub.run_worker(burst=True, concurrency=1)
    assert hub.ai.command([b"AI.DAGSTATUS", run_id.encode()]) == "cancelled"
    with pytest.raises(AIError):
        hub.ai.tensorget("t")
    with pytest.raises(AIError, match="no DAG run"):
        hub.ai.command([b"AI.DAGSTATUS", b"999999"])


def test_writes_are_announced_after_they_commit(hub: learnhub.Hub) -> None:
    events: list[tuple[str, str]] = []
    hub.ai.keyspace.subscribe(lambda key, event: events.append((key, event)))
    hub.ai.tensorset("t", a(1))
    hub.ai.dag(persist=["p"]).tensorset("p", a(2)).tensorset("local", a(3)).run()
    hub.ai.keyspace.delete(["t"])
    assert events == [("t", "tensorset"), ("p", "dagexecute"), ("t", "del")]


def test_an_acknowledged_tensor_survives_kill_9(tmp_path: Path) -> None:
    """Tensors are committed without waiting for the disk (like Redis's keyspace): a crash
    of the hub's process must still keep every write it acknowledged."""
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, numpy as np, learnhub
                hub = learnhub.open({url!r})
                for i in range(200):
                    hub.ai.tensorset(f"t{{i}}", np.full((4,), i, dtype=np.int32))
                print("acknowledged", flush=True)
                sys.stdin.read()  # hold the hub open until killed
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "acknowledged"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    with learnhub.open(url) as hub:
        assert [int(hub.ai.tensorget(f"t{i}")[0]) for i in range(200)] == list(range(200))


def test_a_repeated_command_reads_the_keyspace_afresh(hub: learnhub.Hub) -> None:
    """Commands are prepared once and kept by their arguments; each run still reads the
    keyspace and the model as they are, and fails when they are missing."""
    run = [b"AI.MODELEXECUTE", b"m", b"INPUTS", b"1", b"x", b"OUTPUTS", b"1", b"y"]
    dag = [b"AI.DAGEXECUTE", b"LOAD", b"1", b"x"]
    dag += [b"|>", b"AI.MODELEXECUTE", b"m", b"INPUTS", b"1", b"x", b"OUTPUTS", b"1", b"t"]
    dag += [b"|>", b"AI.TENSORGET", b"t", b"VALUES"]
    for argv in (run, dag):
        with pytest.raises(AIError, match="tensor key is empty"):
            hub.ai.command(argv)
    hub.ai.tensorset("x", a(1, 2))
    with pytest.raises(AIError, match="model key is empty"):
        hub.ai.command(run)
    assert isinstance(hub.ai.command(dag)[0], AIError)
    hub.ai.modelstore("m", "ONNX", "CPU", onnx_mul_model(2))
    assert hub.ai.command(run) == OK
    assert hub.ai.tensorget("y").tolist() == [[2, 4]]
    assert hub.ai.command(dag)[1] == [b"2", b"4"]
    hub.ai.modelstore("m", "ONNX", "CPU", onnx_mul_model(3))
    hub.ai.tensorset("x", a(2, 2))
    assert hub.ai.command(run) == OK
    assert hub.ai.tensorget("y").tolist() == [[6, 6]]
    assert hub.ai.command(dag)[1] == [b"6", b"6"]
    with pytest.raises(AIError, match="tensor key is empty"):
        hub.ai.command([b"AI.TENSORGET", b"t"])  # the DAG's output stayed local


def test_invalid_commands_fail_every_time(hub: learnhub.Hub) -> None:
    for _ in range(2):
        with pytest.raises(AIError):
            hub.ai.command([b"AI.MODELEXECUTE", b"m", b"INPUTS"])
        with pytest.raises(AIError, match="UTF-8"):
            hub.ai.command([b"AI.TENSORGET", b"\xff"])


def test_commands_that_carry_tensors_are_never_kept(hub: learnhub.Hub) -> None:
    from learnhub.ai.engine import PREPARED_MAX

    tensorset = [b"AI.TENSORSET", b"x", b"FLOAT", b"2", b"VALUES", b"1", b"2"]
    dag = [b"AI.DAGEXECUTE", b"PERSIST", b"1", b"y"]
    dag += [b"|>", b"AI.TENSORSET", b"y", b"FLOAT", b"1", b"VALUES", b"5"]
    assert hub.ai.command(tensorset) == OK
    assert hub.ai.command(dag) == [OK]
    assert hub.ai.tensorget("y").tolist() == [5]
    kept = hub.ai._prepared
    assert tuple(tensorset) not in kept and tuple(dag) not in kept
    for i in range(PREPARED_MAX + 5):  # distinct commands: the oldest make way
        with pytest.raises(AIError):
            hub.ai.command([b"AI.TENSORGET", f"k{i}".encode()])
    assert len(kept) == PREPARED_MAX
    assert (b"AI.TENSORGET", f"k{PREPARED_MAX + 4}".encode()) in kept
