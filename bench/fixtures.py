"""The bench's world: a data dir with a trusted Ed25519 key, a migrated SQLite database, seeded
clips (a real 256 MiB clip, sparse 256 MiB and 1 GiB clips), a camera zone, one covering grant
and 10,000 unrelated active grants, and tokens for an owner and 32 support agents.

Built with the gateway's own stores (never by writing SQL), like tests/support/server.py.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway import migrations
from gateway.cameras import CameraStore
from gateway.db import create_db_engine
from gateway.db import grants as grants_table
from gateway.detection.config import load_detection_config
from gateway.grants import Grant, GrantStore
from gateway.grants import _row as grant_row
from gateway.settings import REPO_POLICY_DIR
from gateway.types import CameraRef, Zone

MiB = 1024 * 1024
CUSTOMER, CAMERA = "cust1", "cam1"
CLIP = "20261101T100000Z.mp4"  # 256 MiB of real bytes: the throughput and ranged-read clip
CLIP_SIZE = 256 * MiB
TICKET = "SUP-4242"
AGENTS = 32
OTHER_GRANTS = 10_000


def rss_clip(size_mib: int, index: int) -> str:
    """The id of one sparse clip for the RSS figures (16 of each size)."""
    return f"20261101T1{size_mib % 10}{index:02d}00Z-rss{size_mib}.mp4"


@dataclass
class World:
    root: Path
    key: Ed25519PrivateKey
    public_key_file: Path
    policy_dir: Path
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def footage(self) -> Path:
        return self.root / "footage"

    @property
    def clip_path(self) -> Path:
        return self.footage / CUSTOMER / CAMERA / CLIP

    def env(self, data_dir: Path, **extra: str) -> dict[str, str]:
        """The FOOTGW_* settings of one gateway process on this world."""
        return {
            "FOOTGW_DATA_DIR": str(data_dir),
            "FOOTGW_STORAGE": f"file://{self.footage}",
            "FOOTGW_JWT_PUBLIC_KEY_FILE": str(self.public_key_file),
            "FOOTGW_POLICY_DIR": str(self.policy_dir),
            "FOOTGW_LOG_FORMAT": "json",
            # One process, as the baselines it is compared with (nginx, the bare apps) are;
            # the ranged figures set N workers against a bare app with N.
            "FOOTGW_WORKERS": "1",
            **extra,
        }

    def token(self, sub: str, *roles: str, customer_id: str | None = None) -> str:
        now = int(time.time())
        claims: dict[str, object] = {
            "sub": sub,
            "roles": list(roles),
            "iat": now,
            "exp": now + 3600,
        }
        if customer_id:
            claims["customer_id"] = customer_id
        return jwt.encode(claims, self.key, algorithm="EdDSA")

    def owner_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens['owner']}"}

    def agent_headers(self, i: int) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.tokens[f'agent{i}']}",
            "X-Access-Purpose": "customer_support",
            "X-Access-Justification": f"{TICKET} customer asked about the porch",
        }


def make_world(root: Path) -> World:
    """Keys, policy and footage shared by every gateway process of the run."""
    key = Ed25519PrivateKey.generate()
    public = root / "jwt-public.pem"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    (root / "jwt-private.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    _policy_dir(root)
    world = load_world(root)
    _write_clips(world)
    return world


def load_world(root: Path) -> World:
    """The world make_world built under root (for the bench's other processes)."""
    key = serialization.load_pem_private_key((root / "jwt-private.pem").read_bytes(), None)
    assert isinstance(key, Ed25519PrivateKey)
    world = World(root, key, root / "jwt-public.pem", root / "policies")
    world.tokens["owner"] = world.token("owner-1", "customer", customer_id=CUSTOMER)
    for i in range(AGENTS):
        world.tokens[f"agent{i}"] = world.token(f"agent-{i}", "support_agent")
    return world


def _policy_dir(root: Path) -> Path:
    """The repo's policies, unchanged: detection.toml's working hours are the shipped ones, so
    a staff view at night or on a weekend extends an `off_hours` flag, as it does in production.
    """
    target = root / "policies"
    shutil.copytree(REPO_POLICY_DIR, target)
    return target


# Local times well inside and well outside the shipped working hours (Mon-Fri 07:00-20:00), so
# that a run of a few minutes never crosses a boundary.
_TARGET_HOURS = {"inside": range(10, 17), "outside": range(0, 5)}


def policies_at(world: World, when: str) -> tuple[Path, str]:
    """A policy directory whose detection puts this moment `when` ("inside" or "outside"
    working hours), and the time zone it uses.

    The shipped policies when they already do (their zone is UTC); otherwise a copy whose only
    change is `time_zone`, to the fixed-offset zone where it is now that kind of hour: the
    working hours, the rules and their thresholds stay the shipped ones.
    """
    shipped = load_detection_config(world.policy_dir)
    now = datetime.now(UTC)
    if _is(shipped.working_hours.contains(now), when, now.hour):
        return world.policy_dir, "UTC (shipped)"
    for offset in range(-12, 15):
        zone = f"Etc/GMT{-offset:+d}" if offset else "Etc/UTC"  # Etc/GMT-3 is UTC+3
        local = now.astimezone(ZoneInfo(zone))
        target = world.root / f"policies-{when}"
        if local.weekday() < 5 and local.hour in _TARGET_HOURS[when]:
            if not target.exists():
                shutil.copytree(world.policy_dir, target)
                rules = target / "detection.toml"
                text = rules.read_text().replace('time_zone = "UTC"', f'time_zone = "{zone}"')
                rules.write_text(text)
            config = load_detection_config(target)
            assert config.working_hours.contains(now) == (when == "inside")
            return target, zone
    raise RuntimeError(f"no time zone puts {now.isoformat()} {when} working hours")


def _is(inside: bool, when: str, hour: int) -> bool:
    if when == "inside":
        return inside and hour in _TARGET_HOURS["inside"]
    return not inside and hour in _TARGET_HOURS["outside"]


def _write_clips(world: World) -> None:
    camera = world.footage / CUSTOMER / CAMERA
    camera.mkdir(parents=True)
    block = os.urandom(MiB)
    with open(world.clip_path, "wb") as handle:
        for _ in range(CLIP_SIZE // MiB):
            handle.write(block)
    # Sparse: the RSS figures need many big clips, not the disk space or the time to write them.
    for size in (256, 1024):
        for i in range(16):
            with open(camera / rss_clip(size, i), "wb") as handle:
                handle.truncate(size * MiB)


def make_data_dir(world: World, data_dir: Path, *, grants: bool = True) -> Path:
    """A migrated database with cam1 indoor, the agents' grant and 10,000 other active grants."""
    data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_db_engine(f"sqlite:///{data_dir / 'gateway.db'}")
    try:
        migrations.migrate(engine)
        now = datetime.now(UTC)
        CameraStore(engine).set(CameraRef(CUSTOMER, CAMERA), Zone.INDOOR, "porch", "bench", now)
        if grants:
            GrantStore(engine).create(_grant("role:support_agent", CUSTOMER, now))
            others = [
                _grant(f"agent-other-{i % 500}", f"cust-other-{i}", now)
                for i in range(OTHER_GRANTS)
            ]
            with engine.begin() as conn:  # one transaction: 10,000 fsyncs would take a while
                conn.execute(grants_table.insert(), [grant_row(g) for g in others])
    finally:
        engine.dispose()
    return data_dir


def _grant(grantee: str, customer_id: str, now: datetime) -> Grant:
    return Grant(
        grant_id="gr_" + secrets.token_urlsafe(12),
        customer_id=customer_id,
        grantee=grantee,
        purpose="customer_support",
        cameras=(CAMERA,),
        footage_from=datetime(2026, 1, 1, tzinfo=UTC),
        footage_until=datetime(2026, 12, 31, tzinfo=UTC),
        expires_at=now + timedelta(days=2),
        ticket=TICKET,
        include_private=False,
        created_at=now,
        created_by="bench",
    )
