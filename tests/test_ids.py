"""gateway/ids.py: pooled ids are real version 4 UUIDs, unique, and never shared by a fork."""

from __future__ import annotations

import os
import uuid

from gateway.ids import _dashed, _v4_hex, random_hex, random_uuid, random_uuid_text


def test_ids_are_rfc_version_4_uuids() -> None:
    for _ in range(600):  # more than two pools' worth
        made = random_uuid()
        assert made.version == 4
        assert made.variant == uuid.RFC_4122


def test_ids_never_repeat_across_pool_refills() -> None:
    made = {random_hex() for _ in range(10_000)}
    assert len(made) == 10_000
    assert all(len(h) == 32 and int(h, 16) >= 0 for h in made)


def test_a_forked_child_draws_its_own_ids() -> None:
    random_uuid()  # the parent's pool is filled and part used
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report the next id it would hand out, then leave at once
        os.write(write_end, random_hex().encode())
        os._exit(0)
    os.close(write_end)
    child_id = os.read(read_end, 64).decode()
    os.close(read_end)
    os.waitpid(pid, 0)
    assert len(child_id) == 32
    assert child_id != random_hex()  # the parent's next id is not the one the child took


def test_the_text_forms_are_the_uuid_module_s_to_the_character() -> None:
    for raw in (bytes(16), b"\xff" * 16, *(os.urandom(16) for _ in range(2000))):
        made = uuid.UUID(bytes=raw, version=4)
        assert _v4_hex(raw) == made.hex
        assert _dashed(_v4_hex(raw)) == str(made)


def test_text_ids_are_version_4_and_never_repeat() -> None:
    made = {random_uuid_text() for _ in range(10_000)}
    assert len(made) == 10_000
    for text in made:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 4 and parsed.variant == uuid.RFC_4122
