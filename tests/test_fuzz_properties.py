"""Property and fuzz tests over the pure pieces an attacker feeds directly.

- Range parsing: an independent regex oracle agrees with gateway.ranges on near-valid headers,
  and any text at all (full Unicode, any clip size) yields a range in bounds, None, or
  RangeNotSatisfiable (tests/test_ranges.py holds the conformance table and bounds).
- Id validation and storage keys: any text is valid or not without raising; what is valid can
  only ever name one object inside the storage root, and the flow's resolvers raise only
  BadRequest.
- Grants: any JSON body parses into a Grant or a BadRequest; the covering check, alone and over
  the candidates production reads (gateway/facts.py), never raises on hostile strings, and
  allows only an exact match.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from gateway import migrations
from gateway.calls import FootageCall, resolve_camera, resolve_clip, staff_headers
from gateway.cameras import CameraStore
from gateway.db import create_db_engine
from gateway.errors import BadRequest, RangeNotSatisfiable
from gateway.facts import FactsReader
from gateway.grants import (
    ROLE_PREFIX,
    Grant,
    GrantStore,
    covering_grant,
    grantee_names,
    match_grant,
    parse_new_grant,
)
from gateway.principals import PrincipalStore
from gateway.ranges import MAX_HEADER_LENGTH, MAX_RANGES, ByteRange, parse_range
from gateway.storage.fs import FileStorage
from gateway.storage.s3 import S3Storage
from gateway.types import (
    AccessRequest,
    Action,
    CameraRef,
    ClipRef,
    Principal,
    Purpose,
    Role,
    Zone,
    clip_recorded_at,
    is_valid_id,
)

# --- Range: an independent oracle ----------------------------------------------------------------

_UNIT = re.compile(r"[ \t]*[bB][yY][tT][eE][sS][ \t]*=(?P<set>.*)", re.DOTALL)
_SPEC = re.compile(r"(?P<first>[0-9]*)-(?P<last>[0-9]*)")
NOT_SATISFIABLE = "416"


def oracle(header: str | None, size: int) -> ByteRange | str | None:
    """RFC 9110 §14.2 as the contract reads it, written with regexes instead of partition()."""
    if header is None or len(header) > MAX_HEADER_LENGTH:
        return None
    unit = _UNIT.fullmatch(header)
    if unit is None or unit["set"].count(",") >= MAX_RANGES:
        return None
    ranges: list[ByteRange | None] = []
    for element in unit["set"].split(","):
        element = element.strip(" \t")
        if not element:
            continue
        spec = _SPEC.fullmatch(element)
        if spec is None or not (spec["first"] or spec["last"]):
            return None
        if not spec["first"]:
            n = int(spec["last"])
            ranges.append(ByteRange(max(0, size - n), size - 1) if n and size else None)
            continue
        first = int(spec["first"])
        last = int(spec["last"]) if spec["last"] else None
        if last is not None and last < first:
            return None
        ranges.append(
            ByteRange(first, min(size - 1, last if last is not None else size))
            if first < size
            else None
        )
    if not ranges:
        return None
    satisfiable = [r for r in ranges if r is not None]
    if not satisfiable:
        return NOT_SATISFIABLE
    return satisfiable[0] if len(ranges) == 1 else None


def actual(header: str | None, size: int) -> ByteRange | str | None:
    try:
        return parse_range(header, size)
    except RangeNotSatisfiable as exc:
        assert exc.size == size and exc.status == 416
        return NOT_SATISFIABLE


number = st.one_of(st.integers(0, 3000), st.integers(0, 10**30)).map(str)
element = st.one_of(
    st.builds(lambda a, b: f"{a}-{b}", number, number),
    st.builds(lambda a: f"{a}-", number),
    st.builds(lambda b: f"-{b}", number),
    st.sampled_from(["", "-", "--1", "1-2-3", "a-b", "0x1-2", "\u00b2-3", "+1-2", " ", "1 -2"]),
)
ows = st.sampled_from(["", " ", "\t", " \t "])
near_valid = st.builds(
    lambda unit, pad1, pad2, elements, sep: f"{pad1}{unit}{pad2}=" + sep.join(elements),
    st.sampled_from(["bytes", "BYTES", "Bytes", "byteſ", "bytes;", "items", "by tes", ""]),
    ows,
    ows,
    st.lists(st.builds(lambda p, e, q: f"{p}{e}{q}", ows, element, ows), max_size=6),
    st.sampled_from([",", ", ", ",,", " ,"]),
)
sizes = st.one_of(st.integers(0, 4000), st.integers(0, 2**63))


@settings(max_examples=300, deadline=None)
@given(header=near_valid, size=sizes)
def test_range_parser_agrees_with_an_independent_oracle(header: str, size: int) -> None:
    assert actual(header, size) == oracle(header, size)


@settings(max_examples=200, deadline=None)
@given(
    header=st.one_of(
        st.none(),
        st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=200),
        st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
    ),
    size=sizes,
)
def test_any_range_text_at_all_is_a_range_in_bounds_none_or_416(
    header: str | None, size: int
) -> None:
    result = actual(header, size)
    if isinstance(result, ByteRange):
        assert 0 <= result.start <= result.end < size


@given(start=st.integers(0, 2**40), length=st.integers(1, 2**20), extra=st.integers(0, 2**20))
def test_a_served_range_round_trips_through_its_own_header(
    start: int, length: int, extra: int
) -> None:
    size = start + length + extra
    served = ByteRange(start, start + length - 1)
    assert parse_range(f"bytes={served.start}-{served.end}", size) == served
    assert served.content_range(size) == f"bytes {start}-{start + length - 1}/{size}"


# --- ids and storage keys ------------------------------------------------------------------------

any_text = st.one_of(
    st.text(max_size=80),
    st.text(alphabet="abc019_-./\\%:;T Z\x00\u2215\uff0e\u0441", max_size=80),
    st.from_regex(r"\d{8}T\d{6}Z(-[A-Za-z0-9_-]{0,8})?(\.[A-Za-z0-9]{1,4})?", fullmatch=True),
)


@settings(max_examples=200, deadline=None)
@given(value=any_text)
def test_id_validation_never_raises_and_valid_ids_are_plain(value: str) -> None:
    if is_valid_id(value):
        assert value.isascii() and 1 <= len(value) <= 64
        assert not set(value) & set("./\\%:;\x00 ")
    recorded_at = clip_recorded_at(value)
    if recorded_at is not None:
        assert recorded_at.tzinfo is UTC or recorded_at.utcoffset() == timedelta(0)
        assert value.isascii() and len(value) <= 64 and value.count(".") <= 1
        assert not set(value) & set("/\\%:;\x00 ") and value[:16] == recorded_at.strftime(
            "%Y%m%dT%H%M%SZ"
        )


def _call(
    customer: str, camera: str, clip: str | None, purpose: str | None, why: str | None
) -> FootageCall:
    return FootageCall(
        method="GET",
        action=Action.VIEW,
        customer_id=customer,
        camera_id=camera,
        clip_id=clip,
        authorization=None,
        purpose=purpose,
        justification=why,
        range_header=None,
        request_id="fuzz-request",
        client_ip=None,
        user_agent=None,
    )


@settings(max_examples=150, deadline=None)
@given(customer=any_text, camera=any_text, clip=any_text)
def test_the_flow_resolves_ids_or_raises_bad_request_only(
    customer: str, camera: str, clip: str
) -> None:
    try:
        resolved = resolve_clip(_call(customer, camera, clip, None, None))
    except BadRequest:
        return
    assert (resolved.customer_id, resolved.camera_id, resolved.clip_id) == (customer, camera, clip)
    assert is_valid_id(customer) and is_valid_id(camera) and clip_recorded_at(clip)
    resolve_camera(_call(customer, camera, None, None, None))


@settings(max_examples=300)
@given(
    purpose=st.one_of(st.none(), st.sampled_from(list(Purpose)), st.text(max_size=30)),
    why=st.one_of(st.none(), st.text(max_size=600)),
)
def test_staff_headers_parse_or_raise_bad_request_only(
    purpose: str | None, why: str | None
) -> None:
    try:
        parsed_purpose, justification = staff_headers(_call("c1", "cam", None, purpose, why))
    except BadRequest:
        return
    assert parsed_purpose is None or parsed_purpose in Purpose
    assert justification is None or 3 <= len(justification) <= 500


valid_id = st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)
valid_clip = st.from_regex(
    r"20\d\d(0[1-9]|1[0-2])(0[1-9]|1\d|2[0-8])T([01]\d|2[0-3])[0-5]\d[0-5]\dZ(-[A-Za-z0-9_-]{0,20})?(\.[A-Za-z0-9]{1,8})?",
    fullmatch=True,
)


@pytest.fixture(scope="module")
def file_root(tmp_path_factory: pytest.TempPathFactory) -> FileStorage:
    return FileStorage(tmp_path_factory.mktemp("root"))


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(customer=valid_id, camera=valid_id, clip=valid_clip)
def test_a_valid_clip_names_one_object_under_the_root(
    file_root: FileStorage, customer: str, camera: str, clip: str
) -> None:
    recorded_at = clip_recorded_at(clip)
    assume(recorded_at is not None)
    ref = ClipRef(customer, camera, clip, recorded_at)
    parts = file_root._parts(ref)  # what open_beneath walks from the root, one name a level
    assert parts == (customer, camera, clip)
    assert not {".", "..", ""} & set(parts) and not any("/" in part for part in parts)
    key = S3Storage._key(_S3, ref)
    assert key.split("/") == ["prefix", customer, camera, clip]
    assert not {".", "..", ""} & set(key.split("/"))


class _PrefixOnly:
    prefix = "prefix"


_S3: Any = _PrefixOnly()


# --- grants --------------------------------------------------------------------------------------

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
OWNER = Principal("alice", frozenset({"customer"}), customer_id="c1")
json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3)
    ),
    max_leaves=8,
)
GOOD_BODY = {
    "grantee": "sam",
    "purpose": "customer_support",
    "cameras": ["front"],
    "footage_from": "2026-11-27T00:00:00Z",
    "footage_until": "2026-11-27T23:59:59Z",
    "expires_at": "2026-11-28T16:00:00Z",
    "ticket": "T-100",
    "include_private": False,
}
field_value = st.one_of(
    json_value,
    st.sampled_from(
        [
            "role:admin",
            "role:customer",
            "role:",
            ["*"],
            ["*", "front"],
            ["../x"],
            "2026-11-27T00:00:00",
            "2026-11-27T00:00:00+99:00",
            "9999-12-31T23:59:59Z",
            "T-1\nT-2",
            "x" * 300,
        ]
    ),
)


@settings(max_examples=300, deadline=None)
@given(
    body=st.one_of(
        json_value,
        st.dictionaries(st.sampled_from([*GOOD_BODY, "superuser"]), field_value, max_size=9).map(
            lambda changes: {**GOOD_BODY, **changes}
        ),
    )
)
def test_any_grant_body_is_a_grant_or_a_bad_request(body: Any) -> None:
    try:
        grant = parse_new_grant(body, OWNER, NOW, 7 * 86400)
    except BadRequest:
        return
    assert grant.customer_id == "c1" and grant.created_by == "alice"
    assert grant.footage_from < grant.footage_until and grant.expires_at > NOW
    assert grant.expires_at <= NOW + timedelta(days=7)
    assert 1 <= len(grant.grantee) <= 256 and grant.grantee.isprintable()
    if grant.grantee.startswith(ROLE_PREFIX):
        assert grant.grantee.removeprefix(ROLE_PREFIX) in set(Role) - {Role.CUSTOMER}
    assert all(c == "*" or is_valid_id(c) for c in grant.cameras)


hostile = st.one_of(
    st.text(max_size=20),
    st.sampled_from(
        ["sam", "role:support_agent", "c1", "c1' OR '1'='1", "%", "_", "*", "role:*", ""]
    ),
)


def _grant(grantee: str, customer: str, camera: str, grant_id: str = "gr_fuzz") -> Grant:
    return Grant(
        grant_id=grant_id,
        customer_id=customer,
        grantee=grantee,
        purpose="customer_support",
        cameras=(camera,),
        footage_from=NOW - timedelta(days=2),
        footage_until=NOW,
        expires_at=NOW + timedelta(hours=1),
        ticket="T-100",
        include_private=False,
        created_at=NOW,
        created_by="owner",
    )


def _request(
    sub: str, customer: str, camera: str, why: str | None, role: str = "support_agent"
) -> AccessRequest:
    return AccessRequest(
        principal=Principal(sub, frozenset({role}), expires_at=NOW.timestamp() + 600),
        action=Action.VIEW,
        camera=CameraRef(customer, camera),
        zone=Zone.OUTDOOR,
        purpose=Purpose.CUSTOMER_SUPPORT,
        justification=why,
        recorded_at=NOW - timedelta(days=1),
        now=NOW,
    )


@settings(max_examples=400)
@given(
    grant_customer=hostile,
    grant_camera=hostile,
    customer=hostile,
    camera=hostile,
    why=st.one_of(st.none(), st.text(max_size=40), st.just("T-100 please")),
)
def test_the_covering_check_allows_exact_matches_only(
    grant_customer: str, grant_camera: str, customer: str, camera: str, why: str | None
) -> None:
    decision = match_grant(
        [_grant("sam", grant_customer, grant_camera)], _request("sam", customer, camera, why)
    )
    if decision:
        assert customer == grant_customer
        assert grant_camera == "*" or camera == grant_camera
        assert why is not None and "T-100" in why


@pytest.fixture(scope="module")
def grant_store(tmp_path_factory: pytest.TempPathFactory) -> GrantStore:
    engine = create_db_engine(f"sqlite:///{tmp_path_factory.mktemp('grants') / 'g.db'}")
    migrations.migrate(engine)
    store = GrantStore(engine)
    store.create(_grant("sam", "c1", "front", "gr_sam"))
    store.create(_grant("role:support_lead", "c1", "*", "gr_leads"))
    return store


@pytest.fixture(scope="module")
def grant_facts(grant_store: GrantStore) -> Iterator[FactsReader]:
    """The reader production uses: its candidates are what covering_grant decides over."""
    engine = grant_store.engine
    reader = FactsReader.for_engine(
        engine, PrincipalStore(engine), CameraStore(engine), grant_store
    )
    yield reader
    reader.close()


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sub=hostile, customer=hostile, role=st.sampled_from(list(Role)))
def test_the_grant_check_never_raises_and_never_crosses_namespaces(
    grant_facts: FactsReader, sub: str, customer: str, role: Role
) -> None:
    request = _request(sub, customer, "front", "T-100 please", role)
    facts = asyncio.run(grant_facts.read(request.principal, request.camera, NOW))
    decision = covering_grant(facts.grants, request, role)
    if decision:
        assert customer == "c1"
        assert (sub == "sam") or role == Role.SUPPORT_LEAD
    names = grantee_names(sub, [role])
    assert f"{ROLE_PREFIX}{role}" in names
    assert all(not n.startswith(ROLE_PREFIX) or n == f"{ROLE_PREFIX}{role}" for n in names)


def test_the_fixtures_store_is_real(grant_store: GrantStore) -> None:
    assert {g.grantee for g in grant_store.for_customer("c1")} == {"sam", "role:support_lead"}
