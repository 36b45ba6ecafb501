"""Standard Webhooks signatures (https://www.standardwebhooks.com/, the `standardwebhooks` package).

Every delivery carries `webhook-id` (the notification's id, the same on every retry, so a
receiver dedupes on it), `webhook-timestamp` (Unix seconds of this attempt) and
`webhook-signature`: `v1,` and base64 of HMAC-SHA256 over `id.timestamp.body`, keyed with the
secret `whsec_<base64>` (FOOTGW_NOTIFY_SECRET). The receiver checks it with `Webhook.verify`.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

SECRET_PREFIX = "whsec_"  # noqa: S105 (the spec's prefix, not a secret)
MIN_SECRET_BYTES = 24  # the spec's lower bound on a secret's length


def check_secret(secret: str) -> None:
    """ValueError unless `secret` is `whsec_` and base64 of at least MIN_SECRET_BYTES bytes."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"must start with {SECRET_PREFIX}")
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"must be {SECRET_PREFIX} and base64") from exc
    if len(key) < MIN_SECRET_BYTES:
        raise ValueError(f"must hold at least {MIN_SECRET_BYTES} bytes of key")


class Signer:
    """The headers of one delivery attempt; without a secret, id and timestamp only."""

    def __init__(self, secret: str | None) -> None:
        self._webhook = Webhook(secret) if secret else None

    def headers(self, msg_id: str, body: str, now: datetime) -> dict[str, str]:
        """Headers for posting `body` (the exact bytes sent) as message `msg_id` at `now`."""
        moment = now.astimezone(UTC)
        headers = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(moment.timestamp())),
        }
        if self._webhook is not None:
            headers["webhook-signature"] = self._webhook.sign(msg_id, moment, body)
        return headers
