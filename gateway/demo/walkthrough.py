"""The basic demo: Alice's and Bob's cameras, and the curl lines `make run` prints."""

from __future__ import annotations

import shlex
from datetime import UTC, datetime, timedelta

from gateway.demo.seeding import DemoCamera, seed
from gateway.demo.tokens import TOKEN_TTL
from gateway.settings import Settings
from gateway.types import RECORDED_AT_FORMAT, Zone

CAMERAS = (
    DemoCamera("cust-alice", "front-door", Zone.OUTDOOR, "Front door"),
    DemoCamera("cust-alice", "living-room", Zone.INDOOR, "Living room"),
    DemoCamera("cust-alice", "nursery", Zone.PRIVATE, "Nursery"),
    DemoCamera("cust-bob", "garage", Zone.OUTDOOR, "Garage"),
    DemoCamera("cust-bob", "bedroom", Zone.PRIVATE, "Bedroom"),
)


def demo_clip_ids(now: datetime) -> list[str]:
    """Three clips recorded yesterday (UTC), so every grant window in the walk-through fits."""
    day = (now - timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    times = [day + timedelta(hours=h, minutes=m) for h, m in ((8, 15), (13, 30), (19, 45))]
    return [t.strftime(RECORDED_AT_FORMAT) + ".mp4" for t in times]


async def seed_walkthrough(settings: Settings, now: datetime) -> list[str]:
    """Write the walk-through's cameras and clips; idempotent. Returns the clip ids."""
    clip_ids = demo_clip_ids(now)
    await seed(settings, CAMERAS, clip_ids, now)
    return clip_ids


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
#   Alice, customer (who looked at her footage, grants, cameras: Show clips, Play):
{base}/console/#token={minted["ALICE"]}
#   Sam, support agent (the staff desk: declare a purpose, play under a grant from Alice):
{base}/console/#token={minted["SAM"]}&view=/desk
"""
