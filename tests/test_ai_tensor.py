"""ai.tensor: dtypes, TENSORSET data (BLOB / VALUES), TENSORGET replies, persistence codec.

Expected texts and formats are RedisAI 1.2.7's (tests/flow/tests_common.py there)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from learnhub.ai.tensor import (
    DTYPES,
    MAX_TENSOR_BYTES,
    decode,
    dtype_name,
    encode,
    make_tensor,
    tensorget_reply,
    to_blob,
    to_values,
)
from learnhub.errors import AIError

# One sample per dtype, with the awkward values: negatives, extremes, non-ASCII strings.
SAMPLES: dict[str, np.ndarray] = {
    "FLOAT": np.array([[2.5, -0.1], [3.4e38, 0.0]], dtype=np.float32),
    "DOUBLE": np.array([[2.5, -0.1], [1e300, 5e-324]], dtype=np.float64),
    "INT8": np.array([[-128, 127], [0, -1]], dtype=np.int8),
    "INT16": np.array([[-32768, 32767], [0, -1]], dtype=np.int16),
    "INT32": np.array([[-(2**31), 2**31 - 1], [0, -1]], dtype=np.int32),
    "INT64": np.array([[-(2**63), 2**63 - 1], [0, -1]], dtype=np.int64),
    "UINT8": np.array([[0, 255], [1, 2]], dtype=np.uint8),
    "UINT16": np.array([[0, 65535], [1, 2]], dtype=np.uint16),
    "BOOL": np.array([[True, False], [False, True]]),
    "STRING": np.array([[b"str11", b""], ["עברית".encode(), b"x y"]], dtype=object),
}


def resp_tokens(values: list) -> list[bytes]:
    """VALUES as a RESP client would send them back: every argument is a bulk string."""
    return [v if isinstance(v, bytes) else str(v).encode() for v in values]


def same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and bool(np.array_equal(a, b))


def test_dtype_table_covers_redisai_types() -> None:
    assert list(DTYPES) == list(SAMPLES)
    for name, arr in SAMPLES.items():
        assert dtype_name(arr) == name


@pytest.mark.parametrize("name", list(SAMPLES))
def test_blob_round_trip(name: str) -> None:
    arr = SAMPLES[name]
    blob = to_blob(arr)
    assert same(make_tensor(name, [2, 2], blob=blob), arr)
    assert same(make_tensor(name.lower(), [4], blob=blob), arr.reshape(4))  # case-insensitive


@pytest.mark.parametrize("name", list(SAMPLES))
def test_values_round_trip(name: str) -> None:
    arr = SAMPLES[name]
    assert same(make_tensor(name, [2, 2], values=resp_tokens(to_values(arr))), arr)


def test_blob_layout_is_redisais() -> None:
    # little-endian data; STRING elements each followed by NUL
    assert to_blob(np.array([1.0, 2.0], dtype=np.float32)) == b"\x00\x00\x80?\x00\x00\x00@"
    assert to_blob(np.array([1, 2], dtype=">i2")) == b"\x01\x00\x02\x00"
    assert to_blob(SAMPLES["STRING"]) == b"str11\0\0" + "עברית".encode() + b"\0x y\0"
    assert to_blob(np.array([True, False])) == b"\x01\x00"


@pytest.mark.parametrize("name", list(SAMPLES))
def test_no_data_gives_zeros(name: str) -> None:
    t = make_tensor(name, [2, 3])
    assert t.shape == (2, 3) and t.dtype == DTYPES[name]
    expected = b"" if name == "STRING" else 0
    assert all(x == expected for x in t.ravel())


def test_empty_string_tensor_blob_is_nuls() -> None:
    assert to_blob(make_tensor("STRING", [2])) == b"\0\0"


def test_scalar_tensor_has_no_dims() -> None:
    t = make_tensor("INT32", [], values=[b"7"])
    assert t.shape == () and tensorget_reply(t, True, "VALUES") == [
        "dtype",
        "INT32",
        "shape",
        [],
        "values",
        [7],
    ]


@pytest.mark.parametrize("dtype", ["INT128", "float16", "", "FLOAT ", 5, None])
def test_wrong_dtype(dtype: object) -> None:
    with pytest.raises(AIError, match="^invalid data type$"):
        make_tensor(dtype, [2])  # type: ignore[arg-type]


@pytest.mark.parametrize("shape", [[-1], [0], [2, 0], [2.5], ["2"], [True], "22", None])
def test_bad_dims(shape: object) -> None:
    with pytest.raises(AIError, match="^invalid or negative value found in tensor shape$"):
        make_tensor("FLOAT", shape)  # type: ignore[arg-type]


def test_too_many_dims() -> None:
    with pytest.raises(AIError, match="too many dimensions"):
        make_tensor("INT8", [1] * 33)


@pytest.mark.parametrize(
    ("dtype", "shape"),
    [("FLOAT", [2**29]), ("INT8", [MAX_TENSOR_BYTES + 1]), ("DOUBLE", [2**40, 2**40])],
)
def test_huge_shape_is_refused_before_allocating(dtype: str, shape: list[int]) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(AIError, match=r"tensor too large: \d+ bytes \(at most 536870912\)"):
            make_tensor(dtype, shape)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024  # nothing near the tensor's size was allocated


def test_huge_string_tensor_counts_a_pointer_per_element() -> None:
    with pytest.raises(AIError, match="tensor too large"):
        make_tensor("STRING", [MAX_TENSOR_BYTES // 8 + 1])


@pytest.mark.parametrize(
    ("dtype", "shape", "blob"),
    [
        ("FLOAT", [2], b"\x00" * 7),
        ("FLOAT", [1, 1, 28, 280], b"\x00" * 4 * 28 * 28),
        ("INT16", [3], b"\x00" * 8),
        ("BOOL", [2], b"\x00"),
        ("FLOAT", [1], "abcd"),
    ],
)
def test_blob_size_mismatch(dtype: str, shape: list[int], blob: object) -> None:
    with pytest.raises(AIError, match="^data length does not match tensor shape and type$"):
        make_tensor(dtype, shape, blob=blob)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "blob",
    [b"single c-string\0", b"one\0two\0three\0", b"C-string\0followed by a non C-string", b""],
)
def test_string_blob_element_count_mismatch(blob: bytes) -> None:
    with pytest.raises(AIError, match="^Number of string elements in data blob does not match"):
        make_tensor("STRING", [2], blob=blob)


def test_bool_blob_must_be_zero_or_one() -> None:
    with pytest.raises(AIError, match="^BOOL tensor elements must be 0 or 1$"):
        make_tensor("BOOL", [2], blob=b"\x01\x02")


def test_blob_and_values_together() -> None:
    with pytest.raises(AIError, match="both BLOB and VALUES"):
        make_tensor("FLOAT", [1], blob=b"\0\0\0\0", values=[b"1"])


@pytest.mark.parametrize(
    ("dtype", "value"),
    [
        ("FLOAT", b"abc"),
        ("FLOAT", b"A"),
        ("FLOAT", b"nan"),  # Redis's string-to-double refuses NaN
        ("FLOAT", b" 1"),  # and leading spaces
        ("FLOAT", b"1_000"),  # Python accepts this, C does not
        ("FLOAT", b""),
        ("DOUBLE", b"1e400"),  # overflow (ERANGE)
        ("DOUBLE", b"1e-400"),  # underflow to zero (ERANGE)
        ("INT8", b"300"),
        ("INT8", b"128"),
        ("INT8", b"-129"),
        ("UINT8", b"-1"),
        ("UINT8", b"256"),
        ("UINT16", b"65536"),
        ("INT32", b"1.87"),
        ("INT32", b"A"),
        ("INT32", b"007"),  # string2ll: no leading zeros
        ("INT32", b"+5"),  # nor a plus sign
        ("INT32", b"-0"),
        ("INT64", b"9223372036854775808"),
        ("INT64", b"99999999999999999999999"),
        ("BOOL", b"2"),
        ("BOOL", b"-1"),
        ("BOOL", b"true"),
    ],
)
def test_bad_values(dtype: str, value: bytes) -> None:
    with pytest.raises(AIError, match="^invalid value$"):
        make_tensor(dtype, [2], values=[b"1", value])


@pytest.mark.parametrize(
    ("dtype", "value", "expected"),
    [
        ("INT8", b"-128", -128),  # RedisAI 1.2.7 refuses every negative (a bug); we do not
        ("INT64", b"-9223372036854775808", -(2**63)),
        ("DOUBLE", b"0x1p3", 8.0),  # strtod's hex floats
        ("DOUBLE", b"5e-324", 5e-324),  # denormals are not ERANGE to Redis
        ("DOUBLE", b"-inf", -np.inf),
        ("FLOAT", b"Infinity", np.inf),
        ("FLOAT", b"1e39", np.inf),  # a double too large for float32 becomes inf, as in C
        ("FLOAT", b".5", 0.5),
        ("BOOL", b"1", True),
    ],
)
def test_values_accepted(dtype: str, value: bytes, expected: object) -> None:
    assert make_tensor(dtype, [1], values=[value])[0] == expected


def test_values_may_be_python_numbers() -> None:
    assert same(make_tensor("INT16", [3], values=[1, -2, np.int64(3)]), np.array([1, -2, 3], "i2"))
    assert same(make_tensor("BOOL", [2], values=[True, 0]), np.array([True, False]))
    assert make_tensor("DOUBLE", [1], values=[0.1])[0] == 0.1


@pytest.mark.parametrize("count", [1, 3, 0])
def test_wrong_number_of_values(count: int) -> None:
    with pytest.raises(AIError, match="^wrong number of values was given in 'AI.TENSORSET'"):
        make_tensor("FLOAT", [2], values=[b"1"] * count)


def test_string_values() -> None:
    t = make_tensor("STRING", [2], values=[b"str_val1", b"str_val2\0"])  # trailing NUL allowed
    assert to_values(t) == [b"str_val1", b"str_val2"]
    assert to_blob(t) == b"str_val1\0str_val2\0"
    with pytest.raises(AIError, match="^C-string value contains null character$"):
        make_tensor("STRING", [2], values=[b"valid C-string", b"invalid\0C-string"])


def test_string_output_with_nul_cannot_be_sent() -> None:
    with pytest.raises(AIError, match="null character"):
        to_blob(np.array([b"a\0b"], dtype=object))
    with pytest.raises(AIError, match="must be bytes"):
        to_values(np.array([3], dtype=object))


@pytest.mark.parametrize(
    ("dtype", "value", "reply"),
    [
        ("FLOAT", 5.0, b"5"),
        ("FLOAT", 2.5, b"2.5"),
        ("FLOAT", 0.1, b"0.10000000149011612"),  # the float32 seen as a double, %.17g
        ("DOUBLE", 0.1, b"0.10000000000000001"),
        ("DOUBLE", 1e20, b"1e+20"),
        ("DOUBLE", -0.0, b"-0"),
        ("DOUBLE", np.inf, b"inf"),
        ("DOUBLE", -np.inf, b"-inf"),
        ("DOUBLE", np.nan, b"nan"),
        ("INT64", -(2**63), -(2**63)),
        ("UINT16", 65535, 65535),
        ("BOOL", True, 1),
    ],
)
def test_values_reply_format(dtype: str, value: object, reply: object) -> None:
    out = to_values(np.array([value], dtype=DTYPES[dtype]))
    assert out == [reply] and type(out[0]) is type(reply)


FOO = np.array([[1, 2], [3, 4]], dtype=np.float32)
META = ["dtype", "FLOAT", "shape", [2, 2]]


@pytest.mark.parametrize(
    ("meta", "fmt", "expected"),
    [
        (True, None, META),
        (True, "BLOB", [*META, "blob", FOO.tobytes()]),
        (True, "VALUES", [*META, "values", [b"1", b"2", b"3", b"4"]]),
        (False, "BLOB", FOO.tobytes()),
        (False, "VALUES", [b"1", b"2", b"3", b"4"]),
        (False, None, [*META, "blob", FOO.tobytes()]),  # no argument: META + BLOB
    ],
)
def test_tensorget_reply_shapes(meta: bool, fmt: str | None, expected: object) -> None:
    assert tensorget_reply(FOO, meta, fmt) == expected


def test_tensorget_reply_rejects_unknown_format() -> None:
    with pytest.raises(AIError, match="unsupported data format"):
        tensorget_reply(FOO, True, "JSON")


@pytest.mark.parametrize("dtype", ["uint32", "uint64", "float16", "complex64", "U3", "S3"])
def test_dtype_name_rejects_types_redisai_lacks(dtype: str) -> None:
    with pytest.raises(AIError, match="unsupported dtype"):
        dtype_name(np.zeros(2, dtype=dtype))


def test_dtype_name_accepts_big_endian() -> None:
    assert dtype_name(np.zeros(2, dtype=">f8")) == "DOUBLE"


@pytest.mark.parametrize(
    "arr",
    [*SAMPLES.values(), np.zeros((0, 3), np.float32), np.array(7, np.int64), np.array([], object)],
)
def test_encode_decode_round_trip(arr: np.ndarray) -> None:
    meta, blob = encode(arr)
    assert meta == {"dtype": dtype_name(arr), "shape": list(arr.shape)}
    assert same(decode(meta, blob), arr)


@pytest.mark.parametrize("meta", [{}, {"dtype": "FLOAT"}, {"dtype": "X", "shape": [1]}, None])
def test_decode_bad_meta(meta: object) -> None:
    with pytest.raises(AIError):
        decode(meta, b"\0\0\0\0")  # type: ignore[arg-type]


NUMERIC = [d for name, d in DTYPES.items() if name != "STRING"]


@settings(max_examples=150, deadline=None)
@given(
    hnp.arrays(
        dtype=st.sampled_from(NUMERIC),
        shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=5),
    )
)
def test_random_numeric_tensors_round_trip(arr: np.ndarray) -> None:
    name, shape = dtype_name(arr), list(arr.shape)
    assert np.array_equal(make_tensor(name, shape, blob=to_blob(arr)), arr, equal_nan=True)
    if arr.dtype.kind == "f":
        arr = np.where(np.isnan(arr), 0, arr).astype(arr.dtype)  # Redis refuses "nan" as input
    assert same(make_tensor(name, shape, values=resp_tokens(to_values(arr))), arr)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary().filter(lambda b: b"\0" not in b), min_size=1, max_size=6))
def test_random_string_tensors_round_trip(elements: list[bytes]) -> None:
    arr = np.empty(len(elements), dtype=object)
    arr[:] = elements
    assert same(make_tensor("STRING", [len(elements)], blob=to_blob(arr)), arr)
    assert same(make_tensor("STRING", [len(elements)], values=to_values(arr)), arr)
