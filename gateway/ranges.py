"""Pure parsing of the HTTP `Range` request header (RFC 9110 §14.2), as the contract §5 reads it.

One satisfiable range -> a ByteRange (206). Anything the server may ignore -> None (200, the whole
clip): no header, another unit, a malformed header, or several ranges of which one is satisfiable
(we never build multipart/byteranges responses). A range that lies wholly outside the clip ->
RangeNotSatisfiable (416). https://www.rfc-editor.org/rfc/rfc9110#section-14.2

Hostile input is bounded: the header is length-checked before any other work, then scanned with
str.split/str.partition only (no regex, so no backtracking), which is linear in its length.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.errors import RangeNotSatisfiable

# Also keeps every digit run below Python's int-from-str limit (4300 digits), so int() never raises.
MAX_HEADER_LENGTH = 4096
MAX_RANGES = 100
_DIGITS = frozenset("0123456789")
# RFC 9110 §5.6.3: optional whitespace is spaces and horizontal tabs only.
_OWS = " \t"


@dataclass(frozen=True, slots=True)
class ByteRange:
    """One satisfiable byte range, both ends inclusive and inside the clip."""

    start: int
    end: int

    @property
    def length(self) -> int:
        """How many bytes the range covers (the 206 Content-Length)."""
        return self.end - self.start + 1

    def content_range(self, size: int) -> str:
        """The 206 `Content-Range` value for a clip of `size` bytes."""
        return f"bytes {self.start}-{self.end}/{size}"


@dataclass(frozen=True, slots=True)
class _Spec:
    """One syntactically valid range-spec, before it meets the clip's size."""

    first: int | None  # None: a suffix range "-n"
    last: int | None  # None: open-ended "a-", or the suffix length is in `suffix`
    suffix: int = 0


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The one range to serve, or None to serve the whole clip; RangeNotSatisfiable for 416."""
    specs = _parse_specs(header)
    if not specs:
        return None
    resolved = [_resolve(spec, size) for spec in specs]
    satisfiable = [r for r in resolved if r is not None]
    if not satisfiable:
        # §14.2: "If all of the ranges are unsatisfiable, the server SHOULD send a 416".
        raise RangeNotSatisfiable("The requested range lies outside the clip.", size=size)
    if len(specs) > 1:
        # Several ranges with at least one satisfiable: the contract answers 200 with the whole
        # clip rather than multipart/byteranges (which players do not need and caches misuse).
        return None
    return satisfiable[0]


def _parse_specs(header: str | None) -> list[_Spec]:
    """The header's range-specs, or [] when it must be ignored (absent, other unit, malformed)."""
    if header is None or len(header) > MAX_HEADER_LENGTH:
        return []
    unit, equals, range_set = header.partition("=")
    # Range units are case-insensitive tokens (RFC 9110 §14.1); other units are ignored.
    if not equals or unit.strip(_OWS).lower() != "bytes":
        return []
    if range_set.count(",") >= MAX_RANGES:
        return []
    specs: list[_Spec] = []
    for element in range_set.split(","):
        element = element.strip(_OWS)
        if not element:
            continue  # §5.6.1.2: recipients accept empty list elements
        spec = _parse_spec(element)
        if spec is None:
            return []  # one bad range-spec makes the whole header invalid: ignore it
        specs.append(spec)
    return specs


def _parse_spec(text: str) -> _Spec | None:
    """One `first-last`, `first-` or `-suffix` range-spec, or None if malformed."""
    first_text, dash, last_text = text.partition("-")
    if not dash:
        return None
    if not first_text:
        return _Spec(None, None, int(last_text)) if _is_digits(last_text) else None
    if not _is_digits(first_text):
        return None
    first = int(first_text)
    if not last_text:
        return _Spec(first, None)
    if not _is_digits(last_text):
        return None
    last = int(last_text)
    # §14.1.1: a range whose last-pos is below its first-pos is invalid (not merely unsatisfiable).
    return _Spec(first, last) if last >= first else None


def _is_digits(text: str) -> bool:
    # Only ASCII digits: str.isdigit() would also accept "²" and other Unicode digits.
    return bool(text) and all(ch in _DIGITS for ch in text)


def _resolve(spec: _Spec, size: int) -> ByteRange | None:
    """The spec's bytes within a clip of `size` bytes, or None if it is unsatisfiable."""
    if spec.first is None:
        # A suffix of zero bytes, or any suffix of an empty clip, selects nothing (§14.1.3).
        if spec.suffix == 0 or size == 0:
            return None
        return ByteRange(max(0, size - spec.suffix), size - 1)
    if spec.first >= size:
        return None
    last = size - 1 if spec.last is None else min(spec.last, size - 1)
    return ByteRange(spec.first, last)
