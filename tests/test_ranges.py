"""Range header parsing (RFC 9110 §14.2, contract §5): a conformance table and properties."""

from __future__ import annotations

import contextlib
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import RangeNotSatisfiable
from gateway.ranges import MAX_HEADER_LENGTH, MAX_RANGES, ByteRange, parse_range

SIZE = 1000

UNSATISFIABLE = object()

CASES = [
    # header, size, expected (ByteRange, None for "200 whole", or UNSATISFIABLE)
    ("bytes=0-499", SIZE, ByteRange(0, 499)),
    ("bytes=500-999", SIZE, ByteRange(500, 999)),
    ("bytes=0-0", SIZE, ByteRange(0, 0)),
    ("bytes=999-999", SIZE, ByteRange(999, 999)),
    # open-ended
    ("bytes=500-", SIZE, ByteRange(500, 999)),
    ("bytes=0-", SIZE, ByteRange(0, 999)),
    # suffix
    ("bytes=-1", SIZE, ByteRange(999, 999)),
    ("bytes=-500", SIZE, ByteRange(500, 999)),
    ("bytes=-1000", SIZE, ByteRange(0, 999)),
    ("bytes=-5000", SIZE, ByteRange(0, 999)),
    ("bytes=-0", SIZE, UNSATISFIABLE),
    # end clamped to size - 1
    ("bytes=900-5000", SIZE, ByteRange(900, 999)),
    ("bytes=0-99999999999999999999999", SIZE, ByteRange(0, 999)),
    # unsatisfiable: starts at or past the end
    ("bytes=1000-1000", SIZE, UNSATISFIABLE),
    ("bytes=1000-", SIZE, UNSATISFIABLE),
    ("bytes=5000-6000", SIZE, UNSATISFIABLE),
    # case-insensitive unit, optional whitespace around list elements, empty list elements
    ("Bytes=0-1", SIZE, ByteRange(0, 1)),
    ("BYTES=0-1", SIZE, ByteRange(0, 1)),
    ("bytes= 0-1 ", SIZE, ByteRange(0, 1)),
    ("bytes=0-1,", SIZE, ByteRange(0, 1)),
    ("bytes=,0-1", SIZE, ByteRange(0, 1)),
    # malformed: ignored, so the whole clip is served with 200
    (None, SIZE, None),
    ("", SIZE, None),
    ("bytes", SIZE, None),
    ("bytes=", SIZE, None),
    ("bytes=,", SIZE, None),
    ("bytes=-", SIZE, None),
    ("bytes=abc", SIZE, None),
    ("bytes=1-a", SIZE, None),
    ("bytes=a-1", SIZE, None),
    ("bytes=5-1", SIZE, None),
    ("bytes=1--2", SIZE, None),
    ("bytes=--1", SIZE, None),
    ("bytes=+1-2", SIZE, None),
    ("bytes=1-+2", SIZE, None),
    ("bytes=0x10-0x20", SIZE, None),
    ("bytes=1 - 2", SIZE, None),
    ("bytes=\u00b2-3", SIZE, None),  # a Unicode digit is not a DIGIT
    ("bytes=0-1;q=1", SIZE, None),
    ("bytes 0-1", SIZE, None),
    ("=0-1", SIZE, None),
    # a malformed spec poisons the header even beside valid ones
    ("bytes=0-1,x", SIZE, None),
    # another unit
    ("items=0-1", SIZE, None),
    ("none", SIZE, None),
    ("bytesx=0-1", SIZE, None),
    # several ranges: 200 whole if any is satisfiable, 416 if none is
    ("bytes=0-1,5-6", SIZE, None),
    ("bytes=0-1, 2000-3000", SIZE, None),
    ("bytes=2000-3000, -0", SIZE, UNSATISFIABLE),
    ("bytes=0-1,0-1", SIZE, None),
    # zero-size clip: every range is unsatisfiable
    ("bytes=0-0", 0, UNSATISFIABLE),
    ("bytes=0-", 0, UNSATISFIABLE),
    ("bytes=-1", 0, UNSATISFIABLE),
    ("bytes=-0", 0, UNSATISFIABLE),
    ("bytes=abc", 0, None),
    # one-byte clip
    ("bytes=0-", 1, ByteRange(0, 0)),
    ("bytes=-5", 1, ByteRange(0, 0)),
    ("bytes=1-", 1, UNSATISFIABLE),
]


@pytest.mark.parametrize(("header", "size", "expected"), CASES)
def test_conformance(header: str | None, size: int, expected: object) -> None:
    if expected is UNSATISFIABLE:
        with pytest.raises(RangeNotSatisfiable) as caught:
            parse_range(header, size)
        assert caught.value.size == size
        assert caught.value.status == 416
    else:
        assert parse_range(header, size) == expected


def test_byte_range_helpers() -> None:
    byte_range = ByteRange(10, 19)
    assert byte_range.length == 10
    assert byte_range.content_range(100) == "bytes 10-19/100"


def test_too_many_ranges_are_ignored() -> None:
    at_limit = "bytes=" + ",".join(f"{i}-{i}" for i in range(MAX_RANGES))
    over_limit = "bytes=" + ",".join(f"{i}-{i}" for i in range(MAX_RANGES + 1))
    assert parse_range(at_limit, SIZE) is None  # several, some satisfiable: whole clip
    assert parse_range(over_limit, SIZE) is None
    # Over the limit even an all-unsatisfiable set is ignored rather than examined.
    hostile = "bytes=" + ",".join(["5000-5000"] * (MAX_RANGES + 1))
    assert parse_range(hostile, SIZE) is None


def test_too_long_header_is_ignored() -> None:
    header = "bytes=0-" + "0" * MAX_HEADER_LENGTH
    assert parse_range(header, SIZE) is None
    assert parse_range(header[:MAX_HEADER_LENGTH], SIZE) == ByteRange(0, 0)


HOSTILE = [
    "bytes=" + "0" * 10_000_000,
    "bytes=" + "-" * 10_000_000,
    "bytes=" + "," * 10_000_000,
    "bytes=" + "1-" * (MAX_HEADER_LENGTH // 2 - 3),
    "bytes=" + "9" * (MAX_HEADER_LENGTH - 8) + "-",
    "bytes=" + ",".join(["-9"] * 99),
    "bytes=" + " " * (MAX_HEADER_LENGTH - 10) + "0-1",
]


@pytest.mark.parametrize("header", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_headers_take_bounded_time(header: str) -> None:
    # CPU time, not wall-clock: other processes on a loaded machine do not count against it.
    started = time.process_time()
    for _ in range(100):
        with contextlib.suppress(RangeNotSatisfiable):
            parse_range(header, SIZE)
    # Generous: a linear parse stays far below it; a quadratic scan of 10 MB would take minutes.
    assert time.process_time() - started < 1.0


range_text = st.text(alphabet="bytes=0123456789-, \t;xX\u00b2", max_size=60)
spec = st.one_of(
    st.builds(lambda a, b: f"{a}-{b}", st.integers(0, 3000), st.integers(0, 3000)),
    st.builds(lambda a: f"{a}-", st.integers(0, 3000)),
    st.builds(lambda n: f"-{n}", st.integers(0, 3000)),
)
well_formed = st.lists(spec, min_size=1, max_size=4).map(lambda specs: "bytes=" + ",".join(specs))
headers = st.one_of(st.none(), st.text(max_size=80), range_text, well_formed)


@given(header=headers, size=st.integers(0, 2000))
def test_only_range_not_satisfiable_escapes_and_results_stay_in_bounds(
    header: str | None, size: int
) -> None:
    try:
        result = parse_range(header, size)
    except RangeNotSatisfiable as exc:
        assert exc.size == size
        return
    if result is not None:
        assert 0 <= result.start <= result.end < size
        assert result.length == result.end - result.start + 1


@given(first=st.integers(0, 3000), last=st.integers(0, 3000), size=st.integers(1, 2000))
def test_single_int_range_matches_its_definition(first: int, last: int, size: int) -> None:
    header = f"bytes={first}-{last}"
    if last < first:
        assert parse_range(header, size) is None
    elif first >= size:
        with pytest.raises(RangeNotSatisfiable):
            parse_range(header, size)
    else:
        assert parse_range(header, size) == ByteRange(first, min(last, size - 1))


@given(suffix=st.integers(1, 3000), size=st.integers(1, 2000))
def test_suffix_range_is_the_last_bytes(suffix: int, size: int) -> None:
    result = parse_range(f"bytes=-{suffix}", size)
    assert result is not None
    assert result.end == size - 1
    assert result.length == min(suffix, size)


# Long headers built by repeating a random pattern: cheap to generate, right up to the limit.
long_headers = st.text(alphabet="0123456789-, ", min_size=1, max_size=40).map(
    lambda pattern: ("bytes=" + pattern * MAX_HEADER_LENGTH)[:MAX_HEADER_LENGTH]
)


@settings(max_examples=50)
@given(header=long_headers, size=st.integers(0, 2**63))
def test_long_random_headers_never_raise_anything_else(header: str, size: int) -> None:
    try:
        result = parse_range(header, size)
    except RangeNotSatisfiable:
        return
    if result is not None:
        assert 0 <= result.start <= result.end < size
