"""Sans-IO parsers for the AI.* commands: argv -> request dataclasses, DAGs included.

Syntax and error texts follow RedisAI 1.2.7 (texts without the leading "ERR "). Names
(keys, tensor names, tags, sources) are ``str`` decoded from the argv bytes as UTF-8 with
``surrogateescape``, so any key round-trips: ``name.encode("utf-8", "surrogateescape")``.

DAGs come in two dialects that compile to the same ``Dag``:

* RedisAI's: ``AI.DAGEXECUTE [LOAD n k..] [PERSIST n k..] [ROUTING tag] [TIMEOUT ms] |> op |> ..``
  (and ``AI.DAGRUN`` with the deprecated MODELRUN/SCRIPTRUN ops); names are local to the DAG
  unless LOADed or PERSISTed.
* the seed's: ``AI.DAGRUN op => op => ..`` with no header; ``~x~`` names are volatile, plain
  names are keyspace keys (read before written: loaded; written: persisted).

Every failure is an AIError, whatever the input.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from learnhub.ai.tensor import DTYPES, MAX_DIMS, make_tensor
from learnhub.errors import AIError

MAX_DAG_OPS = 1000

# ----------------------------------------------------------------------------- requests


@dataclass(frozen=True, eq=False)
class TensorSet:
    key: str
    tensor: np.ndarray

    @property
    def reads(self) -> tuple[str, ...]:
        return ()

    @property
    def writes(self) -> tuple[str, ...]:
        return (self.key,)

    def __eq__(self, other: object) -> bool:
        # dataclass equality would compare arrays element-wise and fail on truthiness
        if not isinstance(other, TensorSet):
            return NotImplemented
        a, b = self.tensor, other.tensor
        return (
            self.key == other.key
            and a.dtype == b.dtype
            and a.shape == b.shape
            and bool(np.array_equal(a, b, equal_nan=a.dtype.kind == "f"))
        )


@dataclass(frozen=True)
class TensorGet:
    key: str
    meta: bool
    fmt: str | None  # "BLOB", "VALUES" or None (META alone)

    @property
    def reads(self) -> tuple[str, ...]:
        return (self.key,)

    @property
    def writes(self) -> tuple[str, ...]:
        return ()


@dataclass(frozen=True)
class ModelStore:
    key: str
    backend: str
    device: str
    tag: str
    batchsize: int
    minbatchsize: int
    minbatchtimeout: int
    inputs: list[str]
    outputs: list[str]
    blob: bytes


@dataclass(frozen=True)
class ModelGet:
    key: str
    meta: bool
    blob: bool


@dataclass(frozen=True)
class ModelDel:
    key: str


@dataclass(frozen=True)
class ModelScan:
    pass


@dataclass(frozen=True)
class ModelExecute:
    key: str
    inputs: list[str]
    outputs: list[str]
    timeout_ms: int | None

    @property
    def reads(self) -> tuple[str, ...]:
        return tuple(self.inputs)

    @property
    def writes(self) -> tuple[str, ...]:
        return tuple(self.outputs)


@dataclass(frozen=True)
class ScriptStore:
    key: str
    device: str
    tag: str
    entry_points: list[str] | None  # None: AI.SCRIPTSET (no ENTRY_POINTS)
    source: str


@dataclass(frozen=True)
class ScriptGet:
    key: str
    meta: bool
    source: bool


@dataclass(frozen=True)
class ScriptDel:
    key: str


@dataclass(frozen=True)
class ScriptScan:
    pass


@dataclass(frozen=True)
class ScriptExecute:
    key: str
    fn: str
    keys: list[str]
    inputs: list[str]
    args: list[str]
    outputs: list[str]
    timeout_ms: int | None
    legacy: bool  # AI.SCRIPTRUN: tensors are passed positionally

    @property
    def reads(self) -> tuple[str, ...]:
        return tuple(self.inputs)

    @property
    def writes(self) -> tuple[str, ...]:
        return tuple(self.outputs)


@dataclass(frozen=True)
class Info:
    key: str
    resetstat: bool


@dataclass(frozen=True)
class Config:
    name: str  # upper case: MODEL_CHUNK_SIZE, BACKENDSPATH, LOADBACKEND, ...
    value: str | None  # None: AI.CONFIG GET name; for LOADBACKEND, the backend


Op = TensorSet | TensorGet | ModelExecute | ScriptExecute


@dataclass(frozen=True)
class Dag:
    readonly: bool
    load: list[str]
    persist: list[str]
    routing: str | None
    timeout_ms: int | None
    ops: list[Op]
    asynchronous: bool


@dataclass(frozen=True)
class DagStatus:
    run_id: str


@dataclass(frozen=True)
class DagResult:
    run_id: str
    block_ms: int | None


@dataclass(frozen=True)
class DagCancel:
    run_id: str


Request = (
    TensorSet
    | TensorGet
    | ModelStore
    | ModelGet
    | ModelDel
    | ModelScan
    | ModelExecute
    | ScriptStore
    | ScriptGet
    | ScriptDel
    | ScriptScan
    | ScriptExecute
    | Info
    | Config
    | Dag
    | DagStatus
    | DagResult
    | DagCancel
)

# ----------------------------------------------------------------------------- helpers

_INT = re.compile(rb"0|-?[1-9][0-9]{0,18}")  # Redis's string2ll: strict, int64
_INT64_MAX = 2**63 - 1


def _arg(value: object) -> bytes:
    """One argv element as the bytes a RESP client sends."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(int(value)).encode()
    if isinstance(value, float):
        return repr(value).encode()
    raise AIError(f"invalid argument type {type(value).__name__}: send strings or numbers")


def _text(tok: bytes) -> str:
    return tok.decode("utf-8", "surrogateescape")


def _shown(tok: bytes) -> str:
    """An argument quoted in an error message: always valid UTF-8 (bad bytes replaced)."""
    return tok.decode("utf-8", "replace")


def _int(tok: bytes) -> int | None:
    if not _INT.fullmatch(tok):
        return None
    v = int(tok)
    return v if -_INT64_MAX - 1 <= v <= _INT64_MAX else None


def _is(a: Sequence[bytes], i: int, word: bytes) -> bool:
    return i < len(a) and a[i].upper() == word


def _arity(cmd: str) -> AIError:
    return AIError(f"wrong number of arguments for '{cmd}' command")


def _timeout(a: Sequence[bytes], i: int) -> int:
    """The TIMEOUT value at a[i]: a positive integer (milliseconds)."""
    if i >= len(a):
        raise AIError("No value provided for TIMEOUT")
    v = _int(a[i])
    if v is None or v <= 0:
        raise AIError("Invalid value for TIMEOUT")
    return v


def _op_name(tok: bytes) -> bytes:
    name = tok.upper()
    return name[3:] if name.startswith(b"AI.") else name


def _no_timeout_in_dag(timeout: int | None, in_dag: bool) -> None:
    if timeout is not None and in_dag:
        raise AIError("TIMEOUT not allowed within a DAG command")


# ----------------------------------------------------------------------------- tensors


def _tensorset(a: Sequence[bytes], in_dag: bool = False) -> TensorSet:
    if len(a) < 4:
        raise _arity("AI.TENSORSET")
    key, dtype = _text(a[1]), a[2].decode("latin-1").upper()
    if dtype not in DTYPES:
        raise AIError("invalid data type")
    dims: list[int] = []
    length = 1
    for i in range(3, len(a)):
        word = a[i].upper()
        if word == b"BLOB":
            if len(a) - 1 - i != 1:
                raise AIError(
                    "a single binary string should come after the BLOB argument in "
                    "'AI.TENSORSET' command"
                )
            return TensorSet(key, make_tensor(dtype, dims, blob=a[i + 1]))
        if word == b"VALUES":
            if len(a) - 1 - i != length:
                raise AIError("wrong number of values was given in 'AI.TENSORSET' command")
            return TensorSet(key, make_tensor(dtype, dims, values=a[i + 1 :]))
        d = _int(a[i])
        if d is None or d <= 0:
            raise AIError("invalid or negative value found in tensor shape")
        if len(dims) == MAX_DIMS:  # stop before the product grows without bound
            raise AIError(f"too many dimensions in tensor shape (at most {MAX_DIMS})")
        dims.append(d)
        length *= d
    return TensorSet(key, make_tensor(dtype, dims))


def _tensorget(a: Sequence[bytes], in_dag: bool = False) -> TensorGet:
    if not 2 <= len(a) <= 4:
        raise _arity("AI.TENSORGET")
    key = _text(a[1])
    if len(a) == 2:
        return TensorGet(key, True, "BLOB")
    meta, formats = False, set()
    for tok in a[2:]:
        word = tok.upper()
        if word == b"META":
            meta = True
        elif word in (b"BLOB", b"VALUES"):
            formats.add(word.decode())
        else:
            raise AIError("unsupported data format")
    if len(formats) > 1:
        raise AIError("both BLOB and VALUES specified")
    return TensorGet(key, meta, formats.pop() if formats else None)


# ----------------------------------------------------------------------------- models

_BACKENDS = ("TF", "TFLITE", "TORCH", "ONNX")
_DEVICE = re.compile(r"(?:CPU|GPU)(?::[0-9]*)?", re.IGNORECASE)


def _backend(tok: bytes) -> str:
    name = tok.decode("latin-1").upper()
    if name not in _BACKENDS:
        raise AIError("unsupported backend")
    return name


def _device(tok: bytes) -> str:
    device = _text(tok)
    # CPU, GPU, or CPU:<n> / GPU:<n> of at most 10 characters; kept as given
    if not _DEVICE.fullmatch(device) or len(device) > 10:
        raise AIError("Invalid DEVICE")
    return device


def _uint(a: Sequence[bytes], i: int, what: str) -> int:
    v = _int(a[i]) if i < len(a) else None
    if v is None or v < 0:
        raise AIError(f"Invalid argument for {what}")
    return v


def _model_head(a: Sequence[bytes]) -> tuple[str, str, str, str, int, int, int, int]:
    """key backend device [TAG t] [BATCHSIZE n] [MINBATCHSIZE m] [MINBATCHTIMEOUT ms], in
    that order (as RedisAI matches them); returns the values and the next position."""
    key, backend, device = _text(a[1]), _backend(a[2]), _device(a[3])
    i, tag = 4, ""
    if _is(a, i, b"TAG"):
        if i + 1 >= len(a):
            raise AIError("Insufficient arguments, missing model BLOB")
        tag, i = _text(a[i + 1]), i + 2
    batch = minbatch = mintimeout = 0
    if _is(a, i, b"BATCHSIZE"):
        if backend == "TFLITE":
            raise AIError("Auto-batching not supported by the TFLITE backend")
        batch, i = _uint(a, i + 1, "BATCHSIZE"), i + 2
    if _is(a, i, b"MINBATCHSIZE"):
        minbatch, i = _uint(a, i + 1, "MINBATCHSIZE"), i + 2
        if batch == 0 and minbatch > 0:
            raise AIError("MINBATCHSIZE specified without BATCHSIZE")
    if _is(a, i, b"MINBATCHTIMEOUT"):
        mintimeout, i = _uint(a, i + 1, "MINBATCHTIMEOUT"), i + 2
        if minbatch == 0 and mintimeout > 0:
            raise AIError("MINBATCHTIMEOUT specified without MINBATCHSIZE")
    if i >= len(a):
        raise AIError("Insufficient arguments, missing model BLOB")
    return key, backend, device, tag, batch, minbatch, mintimeout, i


def _counted(a: Sequence[bytes], i: int, what: str) -> tuple[list[str], int]:
    """<count> name... at a[i] (MODELSTORE's INPUTS/OUTPUTS); the names and next position."""
    n = _int(a[i]) if i < len(a) else None
    if n is None or n <= 0:
        raise AIError(f"Invalid argument for {what}_count")
    if i + 1 + n > len(a):
        raise AIError(f"number of model {what}s does not match the number of given arguments")
    return [_text(t) for t in a[i + 1 : i + 1 + n]], i + 1 + n


def _modelstore(a: Sequence[bytes], in_dag: bool = False) -> ModelStore:
    if len(a) < 6:
        raise _arity("AI.MODELSTORE")
    key, backend, device, tag, batch, minbatch, mintimeout, i = _model_head(a)
    inputs: list[str] = []
    outputs: list[str] = []
    # RedisAI takes INPUTS/OUTPUTS for TF only; they are accepted (as names) for any backend.
    if _is(a, i, b"INPUTS"):
        inputs, i = _counted(a, i + 1, "input")
        if not _is(a, i, b"OUTPUTS"):
            raise AIError("OUTPUTS not specified" + (" for TF" if backend == "TF" else ""))
        outputs, i = _counted(a, i + 1, "output")
    elif backend == "TF":
        raise AIError("INPUTS not specified for TF")
    if not _is(a, i, b"BLOB"):
        raise AIError("Invalid argument, expected BLOB")
    if i + 1 >= len(a):
        raise AIError("Insufficient arguments, missing model BLOB")
    blob = b"".join(a[i + 1 :])  # large models come in several chunks
    return ModelStore(key, backend, device, tag, batch, minbatch, mintimeout, inputs, outputs, blob)


def _modelset(a: Sequence[bytes], in_dag: bool = False) -> ModelStore:
    """Deprecated AI.MODELSET: INPUTS/OUTPUTS take names without counts."""
    if len(a) < 4:
        raise _arity("AI.MODELSET")
    key, backend, device, tag, batch, minbatch, mintimeout, i = _model_head(a)
    at = next((j for j in range(i, len(a)) if a[j].upper() == b"BLOB"), None)
    if at is None or at + 1 >= len(a):
        raise AIError("Insufficient arguments, missing model BLOB")
    options = a[i:at]
    inputs: list[str] = []
    outputs: list[str] = []
    if options:
        if options[0].upper() != b"INPUTS":
            raise AIError("INPUTS not specified")
        split = next((j for j in range(1, len(options)) if options[j].upper() == b"OUTPUTS"), None)
        if split is None:
            raise AIError("OUTPUTS not specified")
        inputs = [_text(t) for t in options[1:split]]
        outputs = [_text(t) for t in options[split + 1 :]]
    elif backend == "TF":
        raise AIError("Insufficient arguments, INPUTS and OUTPUTS not specified")
    blob = b"".join(a[at + 1 :])
    return ModelStore(key, backend, device, tag, batch, minbatch, mintimeout, inputs, outputs, blob)


def _get_flags(a: Sequence[bytes], cmd: str, second: bytes) -> tuple[str, bool, bool]:
    """key [META] [BLOB|SOURCE]: unknown words are ignored (as RedisAI does); neither flag
    means both."""
    if not 2 <= len(a) <= 4:
        raise _arity(cmd)
    words = {t.upper() for t in a[2:]}
    meta, other = b"META" in words, second in words
    if not meta and not other:
        meta = other = True
    return _text(a[1]), meta, other


def _modelget(a: Sequence[bytes], in_dag: bool = False) -> ModelGet:
    return ModelGet(*_get_flags(a, "AI.MODELGET", b"BLOB"))


def _one_key(cmd: str) -> Callable[[Sequence[bytes], bool], Any]:
    classes = {"AI.MODELDEL": ModelDel, "AI.SCRIPTDEL": ScriptDel}

    def parse_it(a: Sequence[bytes], in_dag: bool = False) -> Any:
        if len(a) != 2:
            raise _arity(cmd)
        return classes[cmd](_text(a[1]))

    return parse_it


def _no_args(cmd: str, cls: type) -> Callable[[Sequence[bytes], bool], Any]:
    def parse_it(a: Sequence[bytes], in_dag: bool = False) -> Any:
        if len(a) != 1:
            raise _arity(cmd)
        return cls()

    return parse_it


def _modelexecute(a: Sequence[bytes], in_dag: bool = False) -> ModelExecute:
    """key INPUTS n i.. OUTPUTS m o.. [TIMEOUT ms]"""
    if len(a) < 8:
        raise _arity("AI.MODELEXECUTE")
    key = _text(a[1])
    names = {}
    i = 2
    for section in ("INPUTS", "OUTPUTS"):
        what = section[:-1].lower()  # input / output
        if not _is(a, i, section.encode()):
            raise AIError(f"{section} not specified")
        n = _int(a[i + 1]) if i + 1 < len(a) else None
        if n is None:
            raise AIError(f"Invalid argument for {what}_count")
        if n <= 0:
            raise AIError(f"{what.capitalize()} count must be a positive integer")
        if i + 2 + n > len(a):
            raise AIError(
                f"number of {what} keys to AI.MODELEXECUTE command does not match the number "
                "of given arguments"
            )
        names[section] = [_text(t) for t in a[i + 2 : i + 2 + n]]
        i += 2 + n
    timeout = None
    if i < len(a):
        if a[i].upper() != b"TIMEOUT":
            raise AIError(f"Invalid argument: {_shown(a[i])}")
        timeout = _timeout(a, i + 1)
        if i + 2 < len(a):
            raise AIError(f"Invalid argument: {_shown(a[i + 2])}")
    _no_timeout_in_dag(timeout, in_dag)
    return ModelExecute(key, names["INPUTS"], names["OUTPUTS"], timeout)


def _modelrun(a: Sequence[bytes], in_dag: bool = False) -> ModelExecute:
    """Deprecated: key [TIMEOUT ms] INPUTS i.. OUTPUTS o.. (no counts). The number of names
    is checked against the model by whoever runs it, as RedisAI does."""
    if len(a) < 6:
        raise _arity("AI.MODELRUN")
    key, i, timeout = _text(a[1]), 2, None
    if _is(a, i, b"TIMEOUT"):
        timeout, i = _timeout(a, i + 1), i + 2
    if not _is(a, i, b"INPUTS"):
        raise AIError("INPUTS not specified")
    inputs: list[str] = []
    outputs: list[str] = []
    target = inputs
    for tok in a[i + 1 :]:
        if target is inputs and tok.upper() == b"OUTPUTS":
            target = outputs
        else:
            target.append(_text(tok))
    _no_timeout_in_dag(timeout, in_dag)
    return ModelExecute(key, inputs, outputs, timeout)


# ----------------------------------------------------------------------------- scripts


def _scriptset(a: Sequence[bytes], in_dag: bool = False) -> ScriptStore:
    """Deprecated: key device [TAG t] SOURCE src"""
    if len(a) not in (5, 7):
        raise _arity("AI.SCRIPTSET")
    key, device, i, tag = _text(a[1]), _device(a[2]), 3, ""
    if _is(a, i, b"TAG"):
        tag, i = _text(a[i + 1]), i + 2
    if not _is(a, i, b"SOURCE") or i + 2 != len(a):
        raise AIError("Insufficient arguments, missing script SOURCE")
    return ScriptStore(key, device, tag, None, _text(a[i + 1]))


def _scriptstore(a: Sequence[bytes], in_dag: bool = False) -> ScriptStore:
    """key device [TAG t] ENTRY_POINTS n fn.. SOURCE src"""
    if len(a) < 8:
        raise _arity("AI.SCRIPTSTORE")
    key, device, i, tag = _text(a[1]), _device(a[2]), 3, ""
    if _is(a, i, b"TAG"):
        tag, i = _text(a[i + 1]), i + 2
    if not _is(a, i, b"ENTRY_POINTS"):
        raise AIError("Insufficient arguments, missing script entry points")
    n = _int(a[i + 1]) if i + 1 < len(a) else None
    if n is None:
        raise AIError("Non numeric entry points number provided to AI.SCRIPTSTORE command")
    if n <= 0 or i + 2 + n > len(a):
        raise AIError("Insufficient arguments, missing script entry points")
    entry_points = [_text(t) for t in a[i + 2 : i + 2 + n]]
    i += 2 + n
    if not _is(a, i, b"SOURCE") or i + 1 >= len(a):
        raise AIError("Insufficient arguments, missing script SOURCE")
    if i + 2 != len(a):
        raise AIError(f"Invalid argument: {_shown(a[i + 2])}")
    return ScriptStore(key, device, tag, entry_points, _text(a[i + 1]))


def _scriptget(a: Sequence[bytes], in_dag: bool = False) -> ScriptGet:
    return ScriptGet(*_get_flags(a, "AI.SCRIPTGET", b"SOURCE"))


def _fn(tok: bytes) -> str:
    fn = _text(tok)
    if not fn:
        raise AIError("function name not specified")
    return fn


_SCRIPT_SECTIONS = (b"KEYS", b"INPUTS", b"ARGS", b"OUTPUTS")


def _scriptexecute(a: Sequence[bytes], in_dag: bool = False) -> ScriptExecute:
    """key fn [KEYS n k..] [INPUTS n i..] [ARGS n a..] [OUTPUTS n o..] [TIMEOUT ms]"""
    if len(a) < 3:
        raise _arity("AI.SCRIPTEXECUTE")
    key, fn = _text(a[1]), _fn(a[2])
    if not in_dag and not (_is(a, 3, b"KEYS") or _is(a, 3, b"INPUTS")):
        raise AIError("KEYS or INPUTS scope must be provided first for AI.SCRIPTEXECUTE command")
    sections: dict[bytes, list[str]] = {}
    timeout, i = None, 3
    while i < len(a):
        word = a[i].upper()
        i += 1
        if word == b"TIMEOUT":
            if i >= len(a):
                raise AIError("No value provided for TIMEOUT in AI.SCRIPTEXECUTE")
            timeout, i = _timeout(a, i), i + 1
            if i != len(a):  # nothing may follow TIMEOUT
                raise AIError("Encountered problem parsing AI.SCRIPTEXECUTE")
            break
        if word not in _SCRIPT_SECTIONS:
            raise AIError(
                f"Invalid AI.SCRIPTEXECUTE command. Unexpected argument: {_shown(a[i - 1])}"
            )
        label = word.decode().lower()
        if word in sections:
            raise AIError(f"Already Encountered {word.decode()} scope in AI.SCRIPTEXECUTE command")
        if i >= len(a):
            raise AIError("Invalid arguments provided to AI.SCRIPTEXECUTE")
        n = _int(a[i])
        if n is None or n < 0:
            raise AIError(f"Invalid argument for {label} count in AI.SCRIPTEXECUTE")
        if i + 1 + n > len(a):
            raise AIError(
                f"number of {label} to AI.SCRIPTEXECUTE command does not match the number of "
                "given arguments"
            )
        sections[word] = [_text(t) for t in a[i + 1 : i + 1 + n]]
        i += 1 + n
    _no_timeout_in_dag(timeout, in_dag)
    got = [sections.get(w, []) for w in _SCRIPT_SECTIONS]
    return ScriptExecute(key, fn, got[0], got[1], got[2], got[3], timeout, legacy=False)


def _scriptrun(a: Sequence[bytes], in_dag: bool = False) -> ScriptExecute:
    """Deprecated: key fn [TIMEOUT ms] INPUTS i.. OUTPUTS o.. (no counts)."""
    if len(a) < 3:
        raise _arity("AI.SCRIPTRUN")
    key, fn = _text(a[1]), _fn(a[2])
    inputs: list[str] = []
    outputs: list[str] = []
    target: list[str] | None = None
    timeout, inputs_done, i = None, False, 3
    while i < len(a):
        tok, word = a[i], a[i].upper()
        i += 1
        if word == b"TIMEOUT":
            if timeout is not None:
                raise AIError("Already encountered an TIMEOUT section in SCRIPTRUN")
            timeout, i = _timeout(a, i), i + 1
        elif word == b"INPUTS":
            if inputs_done:
                raise AIError("Already encountered an INPUTS section in SCRIPTRUN")
            if target is inputs:
                raise AIError("Already encountered an INPUTS keyword in SCRIPTRUN")
            target = inputs
        elif word == b"OUTPUTS":
            if target is outputs:
                raise AIError("Already encountered an OUTPUTS keyword in SCRIPTRUN")
            target, inputs_done = outputs, True
        elif tok == b"$":
            # RedisAI's variadic marker needs List[Tensor] parameters; SCRIPTEXECUTE covers it
            raise AIError(
                "variable size lists of tensors ($) are not supported in AI.SCRIPTRUN; "
                "use AI.SCRIPTEXECUTE"
            )
        elif target is None:
            raise AIError("Unrecongnized parameter to SCRIPTRUN")  # sic, RedisAI's text
        else:
            target.append(_text(tok))
    _no_timeout_in_dag(timeout, in_dag)
    return ScriptExecute(key, fn, [], inputs, [], outputs, timeout, legacy=True)


# ----------------------------------------------------------------------------- admin


def _info(a: Sequence[bytes], in_dag: bool = False) -> Info:
    if not 2 <= len(a) <= 3:
        raise _arity("AI.INFO")
    # RedisAI ignores a third word other than RESETSTAT (and replies the statistics)
    return Info(_text(a[1]), len(a) == 3 and a[2].upper() == b"RESETSTAT")


def _config(a: Sequence[bytes], in_dag: bool = False) -> Config:
    if len(a) < 2:
        raise _arity("AI.CONFIG")
    sub = a[1].decode("latin-1").upper()
    if sub == "GET":
        if len(a) != 3:
            raise _arity("AI.CONFIG")
        return Config(a[2].decode("latin-1").upper(), None)
    if sub == "LOADBACKEND":
        if len(a) < 4:
            raise _arity("AI.CONFIG")
        return Config(sub, _text(a[2]))
    if sub == "BACKENDSPATH":
        if len(a) < 3:
            raise AIError("BACKENDSPATH: missing path argument")
        return Config(sub, _text(a[2]))
    if sub == "MODEL_CHUNK_SIZE":
        if len(a) < 3:
            raise AIError("MODEL_CHUNK_SIZE: missing chunk size")
        size = _int(a[2])
        if size is None or size <= 0:
            raise AIError("MODEL_CHUNK_SIZE: invalid chunk size")
        return Config(sub, str(size))
    raise AIError("unsupported subcommand")


def _run_id(cmd: str) -> Callable[[Sequence[bytes], bool], Any]:
    classes = {"AI.DAGSTATUS": DagStatus, "AI.DAGCANCEL": DagCancel}

    def parse_it(a: Sequence[bytes], in_dag: bool = False) -> Any:
        if len(a) != 2:
            raise _arity(cmd)
        return classes[cmd](_text(a[1]))

    return parse_it


def _dagresult(a: Sequence[bytes], in_dag: bool = False) -> DagResult:
    """run_id [BLOCK ms]: without BLOCK, reply at once; BLOCK 0 waits without limit."""
    if len(a) not in (2, 4):
        raise _arity("AI.DAGRESULT")
    block = None
    if len(a) == 4:
        if a[2].upper() != b"BLOCK":
            raise AIError(f"Invalid argument: {_shown(a[2])}")
        block = _int(a[3])
        if block is None or block < 0:
            raise AIError("Invalid value for BLOCK")
    return DagResult(_text(a[1]), block)


# ----------------------------------------------------------------------------- DAGs

_HEADER = (b"LOAD", b"PERSIST", b"ROUTING", b"TIMEOUT", b"KEYS")
# ops that may start a seed-dialect DAG (which has no header)
_SEED_OPS = (
    b"TENSORSET",
    b"TENSORGET",
    b"MODELRUN",
    b"SCRIPTRUN",
    b"MODELEXECUTE",
    b"SCRIPTEXECUTE",
)


def _dag_op(seg: Sequence[bytes], legacy: bool, readonly: bool) -> Op:
    """One op of a DAG, parsed by the same function as the standalone command."""
    if not seg:
        raise AIError("empty operation in DAG: every separator must be followed by a command")
    name = _op_name(seg[0])
    if name == b"TENSORSET":
        return _tensorset(seg, True)
    if name == b"TENSORGET":
        return _tensorget(seg, True)
    if legacy:
        if name == b"MODELRUN":
            return _modelrun(seg, True)
        if name == b"SCRIPTRUN":
            return _scriptrun(seg, True)
        if name in (b"MODELEXECUTE", b"SCRIPTEXECUTE"):
            raise AIError(f"AI.{name.decode()} cannot be used in a deprecated AI.DAGRUN command")
    else:
        if name == b"MODELEXECUTE":
            return _modelexecute(seg, True)
        if name == b"SCRIPTEXECUTE":
            if readonly:  # a script may call Redis commands that write
                raise AIError("AI.SCRIPTEXECUTE command cannot be specified in a read-only DAG")
            return _scriptexecute(seg, True)
        if name in (b"MODELRUN", b"SCRIPTRUN"):
            raise AIError(f"Deprecated AI.{name.decode()} cannot be used in AI.DAGEXECUTE command")
    raise AIError(f"Unsupported command within DAG: {_shown(seg[0])}")


def _split(body: Sequence[bytes], sep: bytes) -> list[list[bytes]]:
    segments: list[list[bytes]] = [[]]
    for tok in body:
        if tok == sep:
            segments.append([])
        else:
            segments[-1].append(tok)
    return segments


def _header_keys(body: Sequence[bytes], i: int, word: str) -> tuple[list[str], int]:
    """<word> n key.. at body[i]; stops at "|>" so that a short count is reported."""
    if len(body) - i < 3:
        raise AIError(f"missing arguments after {word} keyword in DAG command")
    n = _int(body[i + 1])
    if n is None or n <= 0:
        raise AIError(f"invalid or negative value found in number of keys to {word}")
    keys = []
    for tok in body[i + 2 : i + 2 + n]:
        if tok == b"|>":
            break
        keys.append(_text(tok))
    if len(keys) != n:
        where = {"LOAD": "into DAG", "PERSIST": "after DAG execution"}.get(word, "in DAG command")
        raise AIError(
            f"number of keys to {word} {where} does not match the number of given arguments"
        )
    return keys, i + 2 + n


def _validate(load: Sequence[str], persist: Sequence[str], ops: Sequence[Op]) -> None:
    """Program order: an op may read what LOAD brought in or an earlier op wrote."""
    known = set(load)
    for op in ops:
        if any(name not in known for name in op.reads):
            raise AIError("INPUT key cannot be found in DAG")
        known.update(op.writes)
    if any(name not in known for name in persist):
        raise AIError("PERSIST key cannot be found in DAG")


def _pipe_dag(body: Sequence[bytes], cmd: str, legacy: bool, readonly: bool, asyn: bool) -> Dag:
    execute = cmd.startswith("AI.DAGEXECUTE")
    if len(body) + 1 < (4 if legacy else 6):
        if legacy:
            raise _arity(cmd)
        raise AIError(f"missing arguments for '{cmd}' command")
    load: list[str] = []
    persist: list[str] = []
    routing: str | None = None
    timeout: int | None = None
    seen: set[bytes] = set()
    i = 0
    while i < len(body) and body[i] != b"|>":
        word = body[i].upper()
        if word not in _HEADER or word in seen:
            raise AIError(f"Invalid DAG command. Unexpected argument:  {_shown(body[i])}")
        seen.add(word)
        if word == b"LOAD":
            load, i = _header_keys(body, i, "LOAD")
        elif word == b"PERSIST":
            if readonly:
                raise AIError("PERSIST cannot be specified in a read-only DAG")
            persist, i = _header_keys(body, i, "PERSIST")
            if len(set(persist)) != len(persist):
                raise AIError("PERSIST keys must be unique")
        elif word == b"KEYS":  # earlier RedisAI 1.2 releases' ROUTING; routes nothing here
            _, i = _header_keys(body, i, "KEYS")
        elif word == b"ROUTING":
            if i + 1 >= len(body) or body[i + 1] == b"|>":
                raise AIError("Missing ROUTING value")
            routing, i = _text(body[i + 1]), i + 2
        else:
            timeout, i = _timeout(body, i + 1), i + 2
    if execute and not seen & {b"LOAD", b"PERSIST", b"ROUTING", b"KEYS"}:
        raise AIError(
            "AI.DAGEXECUTE and AI.DAGEXECUTE_RO commands must contain at least one out of "
            "ROUTING, LOAD, PERSIST keywords"
        )
    if i >= len(body):
        raise AIError("DAG is empty")
    ops = [_dag_op(seg, legacy, readonly) for seg in _split(body[i + 1 :], b"|>")]
    _validate(load, persist, ops)
    return Dag(readonly, load, persist, routing, timeout, ops, asyn)


def _key_bytes(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")


def _volatile(name: str) -> bool:
    return len(name) >= 2 and name.startswith("~") and name.endswith("~")


def _seed_dag(body: Sequence[bytes], legacy: bool, readonly: bool, asyn: bool) -> Dag:
    """The seed's dialect: ops joined by "=>"; plain names are keyspace keys."""
    ops = [_dag_op(seg, legacy, readonly) for seg in _split(body, b"=>")]
    load: list[str] = []
    persist: list[str] = []
    written: set[str] = set()
    for op in ops:
        for name in op.reads:
            if _volatile(name) and name not in written:
                raise AIError("INPUT key cannot be found in DAG")
            if name not in written and name not in load:
                load.append(name)
        for name in op.writes:
            written.add(name)
            if not _volatile(name) and name not in persist:
                persist.append(name)
    if readonly and persist:
        raise AIError(
            "PERSIST cannot be specified in a read-only DAG (it writes the key "
            f"{_shown(_key_bytes(persist[0]))!r}; "
            "name it ~x~ to keep it volatile)"
        )
    _validate(load, persist, ops)
    return Dag(readonly, load, persist, None, None, ops, asyn)


def _dag(cmd: str, legacy: bool, readonly: bool, asyn: bool) -> Callable[..., Dag]:
    def parse_it(a: Sequence[bytes], in_dag: bool = False) -> Dag:
        body = a[1:]
        pipes, arrows = body.count(b"|>"), body.count(b"=>")
        if pipes and arrows:
            raise AIError("a DAG may not mix the '|>' and '=>' separators")
        # Refuse huge DAGs before parsing (and allocating) any of their ops.
        n = max(pipes, arrows + 1)
        if n > MAX_DAG_OPS:
            raise AIError(f"DAG has too many operations ({n}; at most {MAX_DAG_OPS})")
        seed = arrows > 0 or (not pipes and bool(body) and _op_name(body[0]) in _SEED_OPS)
        if seed:
            return _seed_dag(body, legacy, readonly, asyn)
        return _pipe_dag(body, cmd, legacy, readonly, asyn)

    return parse_it


def plan(dag: Dag) -> list[tuple[int, ...]]:
    """For each op, the indexes of the earlier ops it waits for: the last earlier writer of
    each name it reads. Names re-set later do not add edges (the executor keeps versions),
    so the graph has no cycle and independent ops can run in parallel."""
    last_writer: dict[str, int] = {}
    deps: list[tuple[int, ...]] = []
    for index, op in enumerate(dag.ops):
        deps.append(tuple(sorted({last_writer[n] for n in op.reads if n in last_writer})))
        for name in op.writes:
            last_writer[name] = index
    return deps


# ----------------------------------------------------------------------------- entry point

_COMMANDS: dict[bytes, Callable[..., Any]] = {
    b"TENSORSET": _tensorset,
    b"TENSORGET": _tensorget,
    b"MODELSTORE": _modelstore,
    b"MODELSET": _modelset,
    b"MODELGET": _modelget,
    b"MODELDEL": _one_key("AI.MODELDEL"),
    b"_MODELSCAN": _no_args("AI._MODELSCAN", ModelScan),
    b"MODELEXECUTE": _modelexecute,
    b"MODELRUN": _modelrun,
    b"SCRIPTSTORE": _scriptstore,
    b"SCRIPTSET": _scriptset,
    b"SCRIPTGET": _scriptget,
    b"SCRIPTDEL": _one_key("AI.SCRIPTDEL"),
    b"_SCRIPTSCAN": _no_args("AI._SCRIPTSCAN", ScriptScan),
    b"SCRIPTEXECUTE": _scriptexecute,
    b"SCRIPTRUN": _scriptrun,
    b"INFO": _info,
    b"CONFIG": _config,
    b"DAGEXECUTE": _dag("AI.DAGEXECUTE", legacy=False, readonly=False, asyn=False),
    b"DAGEXECUTE_RO": _dag("AI.DAGEXECUTE_RO", legacy=False, readonly=True, asyn=False),
    b"DAGEXECUTEASYNC": _dag("AI.DAGEXECUTEASYNC", legacy=False, readonly=False, asyn=True),
    b"DAGRUN": _dag("AI.DAGRUN", legacy=True, readonly=False, asyn=False),
    b"DAGRUN_RO": _dag("AI.DAGRUN_RO", legacy=True, readonly=True, asyn=False),
    b"DAGRUNASYNC": _dag("AI.DAGRUNASYNC", legacy=True, readonly=False, asyn=True),
    b"DAGSTATUS": _run_id("AI.DAGSTATUS"),
    b"DAGRESULT": _dagresult,
    b"DAGCANCEL": _run_id("AI.DAGCANCEL"),
}


def parse(argv: Sequence[Any]) -> Request:
    """One AI.* command (argv[0] its name, case-insensitive, "AI." prefix optional) as a
    request; AIError with RedisAI's text when it is not valid."""
    if not isinstance(argv, (list, tuple)) or not argv:
        raise AIError("empty command")
    a = [_arg(x) for x in argv]
    handler = _COMMANDS.get(_op_name(a[0]))
    if handler is None:
        raise AIError(f"unknown command '{_shown(a[0])}'")
    return handler(a)
