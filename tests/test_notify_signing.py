"""Standard Webhooks signatures: what the gateway signs verifies with the spec's library, and
the receiver refuses anything else (another secret, a changed body, a stale timestamp)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from gateway.errors import ConfigError
from gateway.notify.signing import Signer, check_secret
from gateway.settings import load_settings
from tests.support.webhooks import WebhookReceiver, new_secret

BODY = '{"data":{"customer_id":"c1"},"id":"msg_1","type":"grant.first_use"}'


def test_a_signature_verifies_with_the_standard_library() -> None:
    secret = new_secret()
    headers = Signer(secret).headers("msg_1", BODY, datetime.now(UTC))
    assert Webhook(secret).verify(BODY, headers)["id"] == "msg_1"
    assert headers["webhook-signature"].startswith("v1,")


@pytest.mark.parametrize(
    "tamper",
    [
        lambda h, b: ({**h}, b.replace("c1", "c2")),  # a changed body
        lambda h, b: ({**h, "webhook-id": "msg_2"}, b),  # another message's id
        lambda h, b: ({k: v for k, v in h.items() if k != "webhook-signature"}, b),
    ],
)
def test_anything_changed_does_not_verify(tamper) -> None:
    secret = new_secret()
    headers, body = tamper(Signer(secret).headers("msg_1", BODY, datetime.now(UTC)), BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, headers)


def test_the_receiver_rejects_a_bad_signature_and_accepts_a_good_one() -> None:
    secret = new_secret()
    with WebhookReceiver(secret) as receiver:
        forged = Signer(new_secret()).headers("msg_1", BODY, datetime.now(UTC))
        assert httpx.post(receiver.url, content=BODY, headers=forged).status_code == 401
        stale = Signer(secret).headers("msg_1", BODY, datetime.now(UTC) - timedelta(minutes=10))
        assert httpx.post(receiver.url, content=BODY, headers=stale).status_code == 401
        unsigned = Signer(None).headers("msg_1", BODY, datetime.now(UTC))
        assert httpx.post(receiver.url, content=BODY, headers=unsigned).status_code == 401
        assert receiver.received == [] and len(receiver.rejected) == 3
        good = Signer(secret).headers("msg_1", BODY, datetime.now(UTC))
        assert httpx.post(receiver.url, content=BODY, headers=good).status_code == 204
        assert [m["id"] for m in receiver.accepted()] == ["msg_1"]


@pytest.mark.parametrize(
    ("secret", "says"),
    [
        ("c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0", "must start with whsec_"),
        ("whsec_not base64!", "base64"),
        ("whsec_c2hvcnQ=", "at least 24 bytes"),
    ],
)
def test_a_bad_secret_is_refused(secret: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        check_secret(secret)
    with pytest.raises(ConfigError) as refused:
        load_settings({"FOOTGW_NOTIFY_SECRET": secret})
    assert "FOOTGW_NOTIFY_SECRET" in str(refused.value) and secret not in str(refused.value)


def test_a_webhook_needs_a_secret_and_an_http_url() -> None:
    with pytest.raises(ConfigError, match="FOOTGW_NOTIFY_SECRET"):
        load_settings({"FOOTGW_NOTIFY_WEBHOOK": "https://hooks.example/x"})
    with pytest.raises(ConfigError, match="FOOTGW_NOTIFY_WEBHOOK"):
        load_settings({"FOOTGW_NOTIFY_WEBHOOK": "ftp://x", "FOOTGW_NOTIFY_SECRET": new_secret()})
    settings = load_settings(
        {"FOOTGW_NOTIFY_WEBHOOK": "https://hooks.example/x", "FOOTGW_NOTIFY_SECRET": new_secret()}
    )
    assert settings.notify.webhook == "https://hooks.example/x"
    assert settings.notify.max_attempts == 12 and settings.notify.expiry_warning_seconds == 3600
