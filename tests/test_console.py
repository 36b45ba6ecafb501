"""The console as served (gateway/console/routes.py): headers, files, what its source may not do.

Browser behaviour is in tests/test_console_browser.py; these need no browser.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.console.routes import CONTENT_SECURITY_POLICY, STATIC_DIR, content_security_policy
from gateway.demo.walkthrough import walkthrough
from gateway.errors import ConfigError
from gateway.storage import media_origins
from gateway.types import ClipRef
from tests.support.server import make_env, start_live

SOURCES = sorted(STATIC_DIR.rglob("*.js"))
# Sinks that parse a string as HTML or code. The console builds the page with createElement
# and textContent only; the CSP requires Trusted Types, so these would throw anyway.
HTML_SINKS = re.compile(
    r"\.innerHTML|\.outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function\b"
    r"|setAttribute\(\s*[\"']on|\.srcdoc\b|createContextualFragment|DOMParser"
)


def directives(csp: str) -> dict[str, list[str]]:
    parsed = {}
    for part in csp.split(";"):
        name, *values = part.split()
        parsed[name] = values
    return parsed


def test_console_page_has_a_strict_content_security_policy(live):
    r = live.client.get("/console/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    rules = directives(csp)
    assert rules["default-src"] == ["'none'"]
    assert rules["script-src"] == ["'self'"] and rules["style-src"] == ["'self'"]
    assert rules["connect-src"] == ["'self'"] and rules["frame-ancestors"] == ["'none'"]
    assert rules["base-uri"] == ["'none'"]
    assert rules["require-trusted-types-for"] == ["'script'"]
    assert rules["media-src"] == ["'self'"]  # proxy delivery: video only from the gateway
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["x-request-id"]


def test_in_redirect_mode_video_may_also_come_from_the_one_s3_origin_it_presigns_for(
    s3_bucket, tmp_path
):
    """A <video> follows the playback URL's 307 to S3, and CSP checks that target too: the
    console allows exactly the origin the gateway's own presigned URLs point at, nothing more."""
    endpoint, bucket = s3_bucket
    extra = {
        "FOOTGW_STORAGE": f"s3://{bucket}/footage",
        "FOOTGW_S3_ENDPOINT_URL": endpoint,
        "FOOTGW_DELIVERY": "redirect",
    }
    with start_live(make_env(tmp_path, extra)) as running:
        r = running.client.get("/console/")
        rules = directives(r.headers["content-security-policy"])
        assert rules["media-src"] == ["'self'", endpoint]  # http://127.0.0.1:<port>
        assert rules["connect-src"] == ["'self'"] and rules["img-src"] == ["'self'"]
        assert rules["default-src"] == ["'none'"]
        clip = ClipRef("c1", "cam", "20261128T101500Z.mp4", datetime(2026, 11, 28, tzinfo=UTC))
        presigned = running.services.storage.presign(clip, None, None, 60)  # type: ignore[attr-defined]
        url = running.server.run_on_loop(presigned)
        assert url.startswith(f"{endpoint}/")  # the origin allowed is the one redirected to


def test_media_origins_follow_the_delivery_mode(aws_env, tmp_path):
    """Proxy and accel serve video from the gateway; on AWS proper (no endpoint) the origin is
    the bucket's, as botocore addresses it, not a wildcard over amazonaws.com."""
    proxy = make_env(tmp_path).settings
    assert media_origins(proxy) == ()
    (tmp_path / "footage").mkdir()
    accel = make_env(tmp_path, {"FOOTGW_DELIVERY": "accel"}).settings
    assert media_origins(accel) == ()
    aws = make_env(tmp_path, {"FOOTGW_STORAGE": "s3://clips-eu", "FOOTGW_DELIVERY": "redirect"})
    (origin,) = media_origins(aws.settings)
    assert origin == "https://clips-eu.s3.amazonaws.com"
    assert content_security_policy((origin,)).count("amazonaws") == 1


def test_redirect_delivery_without_credentials_to_presign_with_refuses_to_start(
    aws_env, tmp_path, monkeypatch
):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    monkeypatch.delenv("AWS_SECURITY_TOKEN")
    env = make_env(tmp_path, {"FOOTGW_STORAGE": "s3://clips", "FOOTGW_DELIVERY": "redirect"})
    with pytest.raises(ConfigError, match="FOOTGW_DELIVERY"):
        media_origins(env.settings)


def test_console_without_slash_redirects(live):
    r = live.client.get("/console", follow_redirects=False)
    assert r.status_code == 308 and r.headers["location"] == "/console/"


def test_modules_and_styles_are_served_with_their_types_and_headers(live):
    for path, kind in (("js/main.js", "javascript"), ("console.css", "text/css")):
        r = live.client.get(f"/console/{path}")
        assert r.status_code == 200, path
        assert kind in r.headers["content-type"]
        assert r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert r.headers["x-content-type-options"] == "nosniff"


def test_every_file_the_page_references_is_served(live):
    index = (STATIC_DIR / "index.html").read_text()
    wanted = set(re.findall(r'(?:src|href)="([^"#:]+)"', index))
    for source in SOURCES:
        for target in re.findall(r'from\s+"(\.[^"]+)"', source.read_text()):
            wanted.add((source.parent / target).resolve().relative_to(STATIC_DIR).as_posix())
    assert "js/main.js" in wanted and "js/views/flags.js" in wanted
    for path in sorted(wanted):
        assert live.client.get(f"/console/{path}").status_code == 200, path


@pytest.mark.parametrize(
    "path", ["/console/nope.js", "/console/..%2Froutes.py", "/console/%2e%2e/routes.py"]
)
def test_nothing_outside_the_static_files_is_served(live, path):
    r = live.client.get(path)
    assert r.status_code == 404
    assert "CONTENT_SECURITY_POLICY" not in r.text


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.relative_to(STATIC_DIR).as_posix())
def test_console_source_never_parses_strings_as_html(source: Path):
    text = source.read_text()
    assert not HTML_SINKS.search(text), HTML_SINKS.search(text)


def test_index_has_no_inline_script_style_or_handlers():
    index = (STATIC_DIR / "index.html").read_text()
    scripts = re.findall(r"<script\b[^>]*>", index)
    assert scripts and all("src=" in tag for tag in scripts)
    assert "<style" not in index
    assert not re.search(r"\sstyle=", index)
    assert not re.search(r"\son[a-z]+=", index)


def test_demo_prints_signed_in_console_links_for_an_analyst_a_customer_and_an_agent():
    now = datetime(2026, 11, 28, 12, tzinfo=UTC)
    minted = {"ALICE": "alice.tok.en", "BOB": "b", "SAM": "sam.tok.en", "ANA": "ana.tok.en"}
    text = walkthrough("http://127.0.0.1:8080", "20261127T081500Z.mp4", minted, now)
    assert "http://127.0.0.1:8080/console/#token=ana.tok.en" in text
    assert "http://127.0.0.1:8080/console/#token=alice.tok.en" in text
    assert "http://127.0.0.1:8080/console/#token=sam.tok.en&view=/desk" in text
    assert "?token=" not in text
