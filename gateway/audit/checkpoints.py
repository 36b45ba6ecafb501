"""Signed checkpoints of the audit chain: (seq, head hash) signed with Ed25519 (contract §7).

The hash chain shows an event changed or removed in the middle; it cannot show that the
*tail* was cut off, because a shorter chain is still a valid chain. A checkpoint is a signed
statement "the chain had this head at this seq"; `audit verify` fails when the log ends
before the newest checkpoint, or disagrees with it.

Written every `checkpoint_every_events` events or `checkpoint_every_seconds` seconds (an
`AuditLog.on_commit` hook, plus a timer so a quiet tail is covered too), and once more on
shutdown.

What this does not stop, and why the structured log matters: an attacker with write access
to the database can cut the tail AND delete the checkpoint rows that covered it; the chain
then verifies against an older checkpoint. Every checkpoint is therefore also one structlog
line (`audit_checkpoint`) that leaves the database with the log stream: compare the newest
exported checkpoint with `audit verify`'s head. They cannot forge a checkpoint without the
private key, so keep that key (settings.checkpoint_key_path, 0600) off the database host
when you can; an attacker holding both the database and the key can rewrite history.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio.to_thread
import sqlalchemy as sa
import structlog
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from gateway.audit.chain import Head, read_head
from gateway.audit.events import Event
from gateway.audit.verify import Checkpoint
from gateway.background import spawn
from gateway.db import audit_checkpoints
from gateway.settings import Settings
from gateway.types import format_ts

log = structlog.get_logger("gateway.audit.checkpoints")

DOMAIN = "footgw-checkpoint-v1"  # a signature over a checkpoint is never valid for anything else
INVALID_HEAD = "signature-invalid"  # never a sha256 hex digest: verify_rows fails on it


@dataclass(frozen=True, slots=True)
class SignedCheckpoint(Checkpoint):
    """A checkpoint row as stored, and whether its signature verified."""

    ts: str = ""
    key_id: str = ""
    signature: str = ""
    valid: bool = True
    problem: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "head_hash": self.head_hash,
            "ts": self.ts,
            "key_id": self.key_id,
            "valid": self.valid,
            "problem": self.problem,
        }


def message(seq: int, head_hash: str, ts: str, key_id: str) -> bytes:
    """The exact bytes a checkpoint signature covers."""
    return f"{DOMAIN}\n{seq}\n{head_hash}\n{ts}\n{key_id}".encode("ascii")


def key_id_of(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


class CheckpointKey:
    """The Ed25519 key in a PEM file, created 0600 on first signature if missing."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._private: Ed25519PrivateKey | None = None

    def private(self) -> Ed25519PrivateKey:
        if self._private is None:
            if not self.path.exists():
                _create_key(self.path)
            self._private = _load(self.path)
        return self._private

    def public(self) -> Ed25519PublicKey | None:
        """The public key, or None when no key exists yet (nothing it signed can verify)."""
        if self._private is None and not self.path.exists():
            return None
        return self.private().public_key()


def _create_key(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # Written whole under a private name, then linked into place: link() fails if the key exists,
    # so two processes (workers starting together) never overwrite each other's key, and the
    # other never reads a key file that is still being written.
    partial = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(partial, path)
        except FileExistsError:
            return
    finally:
        partial.unlink(missing_ok=True)
    log.info("checkpoint_key_created", path=str(path))


def load_public_key(path: Path) -> Ed25519PublicKey:
    """A retired checkpoint key's public half (PEM), kept to verify what it signed."""
    key = serialization.load_pem_public_key(path.read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{path} is not an Ed25519 public key")
    return key


def _load(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return key


class Checkpointer:
    """Writes signed checkpoints of the chain head and finds the newest one that verifies."""

    def __init__(
        self,
        engine: Engine,
        key: CheckpointKey,
        every_events: int = 1000,
        every_seconds: float = 60.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        retired: Sequence[Ed25519PublicKey] = (),
    ) -> None:
        self.engine = engine
        self.key = key
        # Public halves of keys rotated out: checkpoints they signed still verify (docs/deploy.md).
        self.retired = tuple(retired)
        self.every_events = every_events
        self.every_seconds = every_seconds
        self.clock = clock
        self._uncovered = 0  # events committed by this process since its last checkpoint
        self._last_at = clock()
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[SignedCheckpoint | None]] = set()

    @classmethod
    def from_settings(cls, settings: Settings, engine: Engine) -> Checkpointer:
        return cls(
            engine,
            CheckpointKey(settings.checkpoint_key_path),
            settings.checkpoint_every_events,
            settings.checkpoint_every_seconds,
            retired=[load_public_key(path) for path in settings.checkpoint_retired_keys],
        )

    # -- writing ---------------------------------------------------------------------------

    async def on_commit(self, batch: Sequence[Event]) -> None:
        """AuditLog hook: checkpoint the batch's last event when N events or T seconds passed."""
        if not batch:
            return
        self._uncovered += len(batch)
        due = (self.clock() - self._last_at).total_seconds() >= self.every_seconds
        if self._uncovered >= self.every_events or due:
            last = batch[-1]
            await anyio.to_thread.run_sync(self.write, int(last["seq"]), str(last["hash"]))
        elif self._timer is None:
            # Nothing may be committed for a while: cover this tail once T seconds pass.
            self._timer = asyncio.get_running_loop().call_later(self.every_seconds, self._fire)

    def _fire(self) -> None:
        self._timer = None
        task = spawn(self.checkpoint_head(), name="audit-checkpoint")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def checkpoint_head(self) -> SignedCheckpoint | None:
        """Checkpoint the chain's current head, if this process committed anything since."""
        if self._uncovered == 0:
            return None
        try:
            head = await anyio.to_thread.run_sync(self._head)
            if head.seq == 0:
                return None
            return await anyio.to_thread.run_sync(self.write, head.seq, head.hash)
        except Exception as exc:  # a missed checkpoint is logged; the chain itself is intact
            log.error("checkpoint_failed", error=str(exc))
            return None

    def _head(self) -> Head:
        with self.engine.connect() as conn:
            return read_head(conn)

    def write(self, seq: int, head_hash: str) -> SignedCheckpoint:
        """Sign and store a checkpoint (sync); another replica's one for this seq is kept."""
        now = self.clock()
        private = self.key.private()
        key_id = key_id_of(private.public_key())
        ts = format_ts(now)
        signature = base64.b64encode(private.sign(message(seq, head_hash, ts, key_id))).decode()
        checkpoint = SignedCheckpoint(seq, head_hash, ts, key_id, signature)
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    audit_checkpoints.insert().values(
                        seq=seq, head_hash=head_hash, ts=ts, key_id=key_id, signature=signature
                    )
                )
        except IntegrityError:
            pass  # already checkpointed at this seq (by another replica): same head, fine
        self._uncovered, self._last_at = 0, now
        # The copy that leaves the database: see the module docstring.
        log.info(
            "audit_checkpoint",
            seq=seq,
            head_hash=head_hash,
            ts=ts,
            key_id=key_id,
            signature=signature,
        )
        return checkpoint

    async def close(self) -> None:
        """Stop the timer and cover whatever this process committed since the last checkpoint."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for task in list(self._tasks):
            await task
        await self.checkpoint_head()

    # -- verifying -------------------------------------------------------------------------

    def stored(self) -> list[SignedCheckpoint]:
        """Every stored checkpoint, oldest first, each with its signature checked."""
        with self.engine.connect() as conn:
            rows = (
                conn.execute(sa.select(audit_checkpoints).order_by(audit_checkpoints.c.seq))
                .mappings()
                .all()
            )
        current = self.key.public()
        trusted = {key_id_of(k): k for k in (*self.retired, *([current] if current else []))}
        return [_checked(dict(row), trusted) for row in rows]

    def latest_verified(self) -> SignedCheckpoint | None:
        """The newest checkpoint, or the first whose signature fails.

        A bad signature is never skipped: it means someone wrote to the checkpoints table who
        does not hold the key. The checkpoint returned then carries a head hash no event can
        have, so `verify_rows` fails at its seq (and `valid`/`problem` say why).
        """
        checkpoints = self.stored()
        for checkpoint in checkpoints:
            if not checkpoint.valid:
                log.error("checkpoint_invalid", seq=checkpoint.seq, problem=checkpoint.problem)
                return checkpoint
        return checkpoints[-1] if checkpoints else None


def _checked(row: dict[str, Any], trusted: dict[str, Ed25519PublicKey]) -> SignedCheckpoint:
    seq, head, ts, key_id = int(row["seq"]), str(row["head_hash"]), row["ts"], row["key_id"]
    problem = _signature_problem(row, trusted)
    if problem:
        # seq at least 1, so a row tampered to seq 0 still makes verify fail.
        return SignedCheckpoint(
            max(seq, 1), INVALID_HEAD, ts, key_id, row["signature"], valid=False, problem=problem
        )
    return SignedCheckpoint(seq, head, ts, key_id, row["signature"])


def _signature_problem(row: dict[str, Any], trusted: dict[str, Ed25519PublicKey]) -> str:
    if not trusted:
        return "no checkpoint key to verify with"
    public = trusted.get(str(row["key_id"]))
    if public is None:
        return f"signed by unknown key {row['key_id']}"
    try:
        signature = base64.b64decode(row["signature"], validate=True)
        public.verify(
            signature, message(int(row["seq"]), row["head_hash"], row["ts"], row["key_id"])
        )
    except (InvalidSignature, ValueError):
        return "signature does not verify"
    return ""
