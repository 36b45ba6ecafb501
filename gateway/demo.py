"""`footage-gateway demo`: seed demo footage, print ready-to-paste curl lines, and serve.

The demo runs on the embedded defaults (SQLite, a local footage tree under ./var, a dev key)
so a new user sees every part of the flow with two commands and nothing else installed.
"""

from __future__ import annotations

import asyncio
import hashlib
import shlex
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from gateway import migrations
from gateway.cameras import CameraStore
from gateway.db import create_db_engine
from gateway.devkeys import mint_dev_token
from gateway.errors import ConfigError
from gateway.settings import Settings
from gateway.storage import open_seeder
from gateway.types import RECORDED_AT_FORMAT, CameraRef, ClipRef, Zone, clip_recorded_at

TOKEN_TTL = 12 * 3600
CLIP_BYTES = 3 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class DemoCamera:
    customer_id: str
    camera_id: str
    zone: Zone
    label: str


CAMERAS = (
    DemoCamera("cust-alice", "front-door", Zone.OUTDOOR, "Front door"),
    DemoCamera("cust-alice", "living-room", Zone.INDOOR, "Living room"),
    DemoCamera("cust-alice", "nursery", Zone.PRIVATE, "Nursery"),
    DemoCamera("cust-bob", "garage", Zone.OUTDOOR, "Garage"),
    DemoCamera("cust-bob", "bedroom", Zone.PRIVATE, "Bedroom"),
)
# (sub, roles, customer_id) of everyone the demo mints a token for.
PEOPLE = {
    "ALICE": ("alice", ["customer"], "cust-alice"),
    "BOB": ("bob", ["customer"], "cust-bob"),
    "SAM": ("sam@support", ["support_agent"], None),
    "ANA": ("ana@security", ["security_analyst"], None),
    "LOU": ("lou@legal", ["legal"], None),
}


def demo_clip_ids(now: datetime) -> list[str]:
    """Three clips recorded yesterday (UTC), so every grant window in the walk-through fits."""
    day = (now - timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    times = [day + timedelta(hours=h, minutes=m) for h, m in ((8, 15), (13, 30), (19, 45))]
    return [t.strftime(RECORDED_AT_FORMAT) + ".mp4" for t in times]


def clip_bytes(key: str, size: int = CLIP_BYTES) -> bytes:
    """Deterministic filler behind an MP4 `ftyp` box: a few MB that look like a file."""
    header = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
    block = hashlib.sha256(key.encode()).digest() * 2048  # 64 KiB
    body = (block * (size // len(block) + 1))[: size - len(header)]
    return header + body


async def seed(settings: Settings, now: datetime) -> list[str]:
    """Write the demo's cameras (with zones) and clips; idempotent. Returns the clip ids."""
    engine = create_db_engine(settings.database_url)
    migrations.migrate(engine)
    cameras = CameraStore(engine)
    storage = open_seeder(settings)
    clip_ids = demo_clip_ids(now)
    try:
        for cam in CAMERAS:
            ref = CameraRef(cam.customer_id, cam.camera_id)
            cameras.set(ref, cam.zone, cam.label, "demo", now)
            for clip_id in clip_ids:
                recorded_at = clip_recorded_at(clip_id) or now
                clip = ClipRef(cam.customer_id, cam.camera_id, clip_id, recorded_at)
                await storage.put(clip, clip_bytes(clip.key))
    finally:
        await storage.close()
        engine.dispose()
    return clip_ids


def dev_token(
    settings: Settings, sub: str, roles: list[str], customer_id: str | None = None
) -> str:
    """A demo token signed by the dev key, with the configured issuer and audience."""
    return mint_dev_token(
        settings.dev_key_file,
        sub=sub,
        roles=roles,
        customer_id=customer_id,
        ttl=TOKEN_TTL,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
    )


def tokens(settings: Settings) -> dict[str, str]:
    return {
        name: dev_token(settings, sub, roles, customer)
        for name, (sub, roles, customer) in PEOPLE.items()
    }


def walkthrough(base: str, clip_id: str, minted: dict[str, str], now: datetime) -> str:
    """The curl lines `make run` prints: each does what its comment says."""
    clip = f"{base}/v1/footage/cust-alice/front-door/{clip_id}"
    staff = "-H 'X-Access-Purpose: customer_support' -H 'X-Access-Justification: TICKET-4521'"
    day = datetime.strptime(clip_id[:16], RECORDED_AT_FORMAT).replace(tzinfo=UTC)
    grant = (
        '{"grantee": "sam@support", "purpose": "customer_support", "cameras": ["front-door"], '
        f'"footage_from": "{day:%Y-%m-%d}T00:00:00Z", '
        f'"footage_until": "{day:%Y-%m-%d}T23:59:59Z", '
        f'"expires_at": "{(now + timedelta(hours=4)):%Y-%m-%dT%H:%M:%SZ}", '
        '"ticket": "TICKET-4521", "include_private": false}'
    )
    status = "-w ' -> HTTP %{http_code}, %{size_download} bytes\\n'"
    exports = "\n".join(f"export {name}={shlex.quote(tok)}" for name, tok in minted.items())
    return f"""
# Tokens (dev mode, valid {TOKEN_TTL // 3600} h):
{exports}

# 1. Alice (the owner) watches her front-door clip:
curl -sS -o /dev/null {status} -H "Authorization: Bearer $ALICE" {clip}

# 2. Sam (support) is refused: no grant from Alice (403 no_grant):
curl -sS {staff} -H "Authorization: Bearer $SAM" {clip}; echo

# 3. A ranged read: the first KiB only (206, Content-Range):
curl -sS -D - -o /dev/null -r 0-1023 -H "Authorization: Bearer $ALICE" {clip}

# 4. Ana (security) reads the audit log (oldest first; page on with after_seq):
curl -sS -H "Authorization: Bearer $ANA" '{base}/v1/audit/events?limit=5'; echo

# 5. Alice grants Sam one camera for one ticket, 4 hours:
GRANT=$(curl -sS -H "Authorization: Bearer $ALICE" -H 'Content-Type: application/json' \\
  -d '{grant}' {base}/v1/grants \\
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["grant_id"])'); echo "$GRANT"

# 6. Sam watches the clip under that grant (200):
curl -sS -o /dev/null {status} {staff} -H "Authorization: Bearer $SAM" {clip}

# 7. Alice sees who looked, and why:
curl -sS -H "Authorization: Bearer $ALICE" '{base}/v1/me/access-log?limit=3'; echo

# 8. Alice revokes; Sam's next request is refused (403 no_grant):
curl -sS -X DELETE -o /dev/null {status} -H "Authorization: Bearer $ALICE" {base}/v1/grants/$GRANT
curl -sS {staff} -H "Authorization: Bearer $SAM" {clip}; echo

# 9. The chain verifies:
curl -sS -H "Authorization: Bearer $ANA" {base}/v1/audit/verify; echo

# Web console: {base}/console/  (the token rides in the #fragment: never sent, never logged)
#   Ana, security analyst (flags, principals, audit, chain):
{base}/console/#token={minted["ANA"]}
#   Alice, customer (who looked at her footage, grants, cameras):
{base}/console/#token={minted["ALICE"]}
"""


def run_demo(settings: Settings, *, scenario: str = "basic", serve_after: bool = True) -> int:
    """Seed, print the walk-through, and serve (dev mode only: it mints tokens)."""
    if not settings.dev_mode:
        raise ConfigError("FOOTGW_DEV_MODE", "the demo mints dev tokens: set it to 1")
    now = datetime.now(UTC)
    clip_ids = asyncio.run(seed(settings, now))
    base = f"http://{settings.host}:{settings.port}"
    minted = tokens(settings)
    print(walkthrough(base, clip_ids[0], minted, now), flush=True)
    if scenario != "basic":
        from gateway.scenarios import run_scenario

        run_scenario(scenario, settings, minted, now)
    if not serve_after:
        return 0
    from gateway.server import serve

    return serve(settings, migrate=True)
