"""Tensors as RedisAI 1.2.7 clients see them: dtypes, TENSORSET data, TENSORGET replies.

Tensors are numpy arrays; STRING tensors are object arrays of ``bytes``. Sans-IO: nothing
here touches the store or the network. Error texts are RedisAI's (without the leading
"ERR ") so that clients written against RedisAI see what they saw there.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from learnhub.errors import AIError

DTYPES: dict[str, np.dtype] = {
    "FLOAT": np.dtype(np.float32),
    "DOUBLE": np.dtype(np.float64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "BOOL": np.dtype(np.bool_),
    "STRING": np.dtype(object),
}

# Redis's proto-max-bulk-len: no client could send a larger blob, so no larger tensor is made.
MAX_TENSOR_BYTES = 512 * 1024**2
# numpy (and torch) have a fixed maximum rank; refuse more before they do.
MAX_DIMS = 32
# A STRING tensor costs at least one pointer per element in memory.
_STRING_ITEM_BYTES = 8

# Numbers as Redis's own parsers accept them: string2ll for integers (no sign, no leading
# zeros, no spaces) and strtod for doubles (decimal, hex, inf; Redis refuses nan).
_INT = re.compile(rb"0|-?[1-9][0-9]{0,18}")
_DEC = re.compile(rb"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_HEX = re.compile(rb"[+-]?0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)(?:[pP][+-]?[0-9]+)?")
_INF = re.compile(rb"[+-]?(?:inf|infinity)", re.IGNORECASE)


def _lookup(name: object) -> tuple[str, np.dtype]:
    key = name.upper() if isinstance(name, str) else ""
    if key not in DTYPES:
        raise AIError("invalid data type")
    return key, DTYPES[key]


def dtype_name(array: np.ndarray) -> str:
    """The RedisAI type name of an array, e.g. "FLOAT"; AIError for types RedisAI lacks."""
    dt = array.dtype
    if dt.kind == "O":
        return "STRING"
    for name, known in DTYPES.items():
        # kind + size, not equality, so that big-endian arrays are recognized too
        if known.kind == dt.kind and known.itemsize == dt.itemsize:
            return name
    raise AIError(
        f"unsupported dtype {dt.name}: tensors are FLOAT, DOUBLE, INT8, INT16, INT32, INT64, "
        "UINT8, UINT16, BOOL or STRING"
    )


def _dims(shape: object, allow_zero: bool = False) -> tuple[int, ...]:
    if not isinstance(shape, (list, tuple)):
        raise AIError("invalid or negative value found in tensor shape")
    if len(shape) > MAX_DIMS:
        raise AIError(f"too many dimensions in tensor shape ({len(shape)}; at most {MAX_DIMS})")
    lowest = 0 if allow_zero else 1  # RedisAI refuses 0 in TENSORSET; models may output it
    for d in shape:
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < lowest:
            raise AIError("invalid or negative value found in tensor shape")
    return tuple(int(d) for d in shape)


def _length(dims: tuple[int, ...], dt: np.dtype) -> int:
    """Element count, refusing (before anything is allocated) tensors over the size limit."""
    n = math.prod(dims)
    size = n * (_STRING_ITEM_BYTES if dt.kind == "O" else dt.itemsize)
    if size > MAX_TENSOR_BYTES:
        raise AIError(f"tensor too large: {size} bytes (at most {MAX_TENSOR_BYTES})")
    return n


def make_tensor(
    dtype: str,
    shape: Sequence[int],
    blob: bytes | None = None,
    values: Sequence[Any] | None = None,
) -> np.ndarray:
    """A tensor from AI.TENSORSET's parts; no data gives zeros (empty strings for STRING)."""
    name, dt = _lookup(dtype)
    dims = _dims(shape)
    n = _length(dims, dt)
    if blob is not None and values is not None:
        raise AIError("both BLOB and VALUES specified")
    if blob is not None:
        return _from_blob(dt, dims, n, blob)
    if values is not None:
        return _from_values(dt, dims, n, values)
    if dt.kind == "O":
        return np.full(dims, b"", dtype=object)
    return np.zeros(dims, dtype=dt)


def _from_blob(dt: np.dtype, dims: tuple[int, ...], n: int, blob: object) -> np.ndarray:
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        raise AIError("data length does not match tensor shape and type")
    data = bytes(blob)
    if dt.kind == "O":
        # RedisAI's STRING blob: every element followed by a NUL byte.
        parts = data.split(b"\0")
        if parts[-1] != b"" or len(parts) - 1 != n:
            raise AIError("Number of string elements in data blob does not match tensor length")
        out = np.empty(n, dtype=object)
        out[:] = parts[:-1]
        return out.reshape(dims)
    if len(data) != n * dt.itemsize:
        raise AIError("data length does not match tensor shape and type")
    if dt.kind == "b" and (np.frombuffer(data, dtype=np.uint8) > 1).any():
        raise AIError("BOOL tensor elements must be 0 or 1")
    # Blobs are little-endian (what RedisAI on x86 and ARM sends); astype copies to native.
    return np.frombuffer(data, dtype=dt.newbyteorder("<")).astype(dt).reshape(dims)


def _token(value: object) -> bytes:
    """One VALUES argument as the bytes a client would have sent."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if isinstance(value, bool):
        return b"1" if value else b"0"
    if isinstance(value, int):
        return str(value).encode()
    if isinstance(value, float):
        return repr(value).encode()
    raise AIError("invalid value")


def _parse_int(tok: bytes, low: int, high: int) -> int:
    if not _INT.fullmatch(tok):
        raise AIError("invalid value")
    v = int(tok)
    if not low <= v <= high:
        raise AIError("invalid value")
    return v


def _parse_double(tok: bytes) -> float:
    if _INF.fullmatch(tok):
        return -math.inf if tok.startswith(b"-") else math.inf
    if _DEC.fullmatch(tok):
        v, mantissa = float(tok), re.split(rb"[eE]", tok)[0]
        nonzero = rb"[1-9]"
    elif _HEX.fullmatch(tok):
        v, mantissa = float.fromhex(tok.decode()), re.split(rb"[pP]", tok[2:])[0]
        nonzero = rb"[1-9a-fA-F]"
    else:
        raise AIError("invalid value")
    # strtod's ERANGE cases, which Redis refuses: overflow to inf and underflow to zero.
    if math.isinf(v) or (v == 0.0 and re.search(nonzero, mantissa)):
        raise AIError("invalid value")
    return v


def _c_string(tok: bytes) -> bytes:
    # A trailing NUL is allowed (it is the C terminator); one inside is not.
    body = tok[:-1] if tok.endswith(b"\0") else tok
    if b"\0" in body:
        raise AIError("C-string value contains null character")
    return body


def _from_values(dt: np.dtype, dims: tuple[int, ...], n: int, values: Sequence[Any]) -> np.ndarray:
    if len(values) != n:
        raise AIError("wrong number of values was given in 'AI.TENSORSET' command")
    toks = [_token(v) for v in values]
    if dt.kind == "O":
        out = np.empty(n, dtype=object)
        out[:] = [_c_string(t) for t in toks]
        return out.reshape(dims)
    if dt.kind == "f":
        doubles = np.array([_parse_double(t) for t in toks], dtype=np.float64)
        with np.errstate(over="ignore"):  # like C's double->float cast: too large -> inf
            return doubles.astype(dt).reshape(dims)
    low, high = (0, 1) if dt.kind == "b" else (int(np.iinfo(dt).min), int(np.iinfo(dt).max))
    return np.array([_parse_int(t, low, high) for t in toks], dtype=dt).reshape(dims)


def _element(e: object) -> bytes:
    if isinstance(e, bytes):
        data = e
    elif isinstance(e, str):
        data = e.encode("utf-8", "surrogateescape")
    else:
        raise AIError(f"STRING tensor elements must be bytes, not {type(e).__name__}")
    if b"\0" in data:
        raise AIError("C-string value contains null character")
    return data


def to_blob(array: np.ndarray) -> bytes:
    """The tensor's BLOB: little-endian data, or for STRING each element followed by NUL."""
    name = dtype_name(array)
    if name == "STRING":
        return b"".join(_element(e) + b"\0" for e in array.ravel())
    little = DTYPES[name].newbyteorder("<")
    return np.ascontiguousarray(array).astype(little, copy=False).tobytes()


def _format_double(x: float) -> bytes:
    # Redis (6.x/7.0, the versions RedisAI 1.2.7 runs on) replies doubles as "%.17g" in
    # RESP2, inf as "inf"/"-inf"; glibc prints NaN as "nan" or "-nan".
    if math.isinf(x):
        return b"inf" if x > 0 else b"-inf"
    if math.isnan(x):
        return b"-nan" if math.copysign(1.0, x) < 0 else b"nan"
    return b"%.17g" % x


def to_values(array: np.ndarray) -> list[Any]:
    """The tensor's VALUES, ready for RESP: FLOAT/DOUBLE as bulk strings, ints and BOOL as
    integers, STRING elements as bytes."""
    name = dtype_name(array)
    flat = array.ravel()
    if name == "STRING":
        return [_element(e) for e in flat]
    if name in ("FLOAT", "DOUBLE"):
        return [_format_double(x) for x in flat.astype(np.float64).tolist()]
    return [int(x) for x in flat.tolist()]


def tensorget_reply(array: np.ndarray, meta: bool, fmt: str | None) -> Any:
    """AI.TENSORGET's reply. fmt is "BLOB", "VALUES" or None; no META and no format means
    META + BLOB, as when TENSORGET has no argument."""
    if not meta and fmt is None:
        meta, fmt = True, "BLOB"
    if fmt is not None and fmt not in ("BLOB", "VALUES"):
        raise AIError("unsupported data format")
    data = to_blob(array) if fmt == "BLOB" else to_values(array) if fmt == "VALUES" else None
    if not meta:
        return data
    reply: list[Any] = ["dtype", dtype_name(array), "shape", [int(d) for d in array.shape]]
    if fmt is not None:
        reply += [fmt.lower(), data]
    return reply


def encode(array: np.ndarray) -> tuple[dict[str, Any], bytes]:
    """(JSON-able meta, blob) for persisting a tensor; decode() is the inverse."""
    return {"dtype": dtype_name(array), "shape": [int(d) for d in array.shape]}, to_blob(array)


def decode(meta: Mapping[str, Any], blob: bytes) -> np.ndarray:
    """The tensor encode() gave (meta, blob) for. Zero dims are allowed here (model outputs
    may have them) and there is no size limit: whatever was stored must load."""
    try:
        name, shape = meta["dtype"], meta["shape"]
    except (KeyError, TypeError) as exc:
        raise AIError(f"stored tensor meta is not valid: {meta!r}") from exc
    _, dt = _lookup(name)
    dims = _dims(shape, allow_zero=True)
    return _from_blob(dt, dims, math.prod(dims), blob)
