"""gateway/types.py: clip ids parse to exactly the times strptime would give, or to nothing."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from gateway.types import RECORDED_AT_FORMAT, clip_recorded_at


def by_strptime(stamp: str) -> datetime | None:
    try:
        return datetime.strptime(stamp, RECORDED_AT_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


digits = st.text("0123456789", min_size=1, max_size=1)


@given(
    st.lists(digits, min_size=8, max_size=8).map("".join),
    st.lists(digits, min_size=6, max_size=6).map("".join),
    st.sampled_from(["", ".mp4", "-front.mp4", "-a"]),
)
def test_clip_times_match_strptime_for_every_digit_pattern(day: str, time: str, tail: str) -> None:
    stamp = f"{day}T{time}Z"
    assert clip_recorded_at(stamp + tail) == by_strptime(stamp)


def test_shapes_that_are_not_clip_ids() -> None:
    for bad in ["", "2026112T120000Z", "20261128T120000", "20261128T120000Z..mp4", "x" * 65]:
        assert clip_recorded_at(bad) is None
    assert clip_recorded_at("20240229T235959Z-a.mp4") == datetime(
        2024, 2, 29, 23, 59, 59, tzinfo=UTC
    )
