"""Playwright driving Debian's chromium, for the console's browser tests (docs/console.md).

No browser is ever downloaded: Playwright is pointed at the system chromium (`make browser`
installs it with apt). Where there is none, or no Playwright, the browser tests skip and say
why. One browser per test module; each test gets a fresh context (its own sessionStorage).

Playwright's sync API keeps an asyncio loop on the main thread, so anything that calls
`asyncio.run` (seeding footage through the storage layer) goes through `off_loop`.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import websockets

CHROMIUM = Path(os.environ.get("FOOTGW_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Tests write screenshots to tests/artifacts/ (ignored by git); `make screenshots` sends
# them to docs/screenshots/ to refresh the ones the README shows.
DEFAULT_SCREENSHOTS = Path(__file__).parents[2] / "tests" / "artifacts" / "screenshots"
SCREENSHOTS = Path(os.environ.get("FOOTGW_SCREENSHOTS_DIR", DEFAULT_SCREENSHOTS))
VIEWPORT = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# A zone far from UTC, so "shown in the viewer's time zone" is tested, not assumed.
TIMEZONE = "America/New_York"
# Console messages that mean the page broke a rule (CSP, Trusted Types) rather than that an
# API call it made on purpose was refused.
FATAL_CONSOLE = ("Refused to", "Content Security Policy", "TrustedHTML", "Trusted Type")

T = TypeVar("T")


def no_browser_reason() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[test]')"
    if not (CHROMIUM.exists() or shutil.which(str(CHROMIUM))):
        return f"no chromium at {CHROMIUM}: `make browser` installs Debian's (apt, as root)"
    return None


def off_loop(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run `fn` in a fresh thread (it may call asyncio.run; Playwright owns this thread's loop)."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


# Module-scoped, not session-scoped: while Playwright's sync API is running, its asyncio loop is
# the main thread's running loop, and every later test that calls asyncio.run (or anyio) would
# fail. Stopping it at the end of each browser test module hands the thread back.
@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    reason = no_browser_reason()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class PageProblems(list[str]):
    """Uncaught page errors and CSP / Trusted Types refusals seen while a test ran."""


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    """A fresh laptop-sized page; the test fails if the page threw or broke its CSP."""
    context = chromium.new_context(viewport=VIEWPORT, timezone_id=TIMEZONE, locale="en-US")
    context.set_default_timeout(10_000)
    tab = context.new_page()
    problems = PageProblems()
    tab.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    tab.on(
        "console",
        lambda msg: (
            problems.append(f"console: {msg.text}")
            if msg.type == "error" and any(s in msg.text for s in FATAL_CONSOLE)
            else None
        ),
    )
    try:
        yield tab
    finally:
        context.close()
    assert not problems, problems


def screenshot(tab: Any, name: str) -> Path:
    """Save what the page shows now as docs/screenshots/<name>.png (viewport, not full page).

    Every main view passes through here, so it is also where a view's text is checked for
    values that leaked through unrendered (`null`, `undefined`, `[object Object]`).
    """
    shown = tab.locator("main").inner_text()
    leaked = re.findall(r"\b(?:null|undefined|NaN)\b|\[object Object\]", shown)
    assert not leaked, f"{name}: {leaked} shown on the page"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    tab.screenshot(path=str(path), animations="disabled", caret="hide")
    return path


def sign_in(tab: Any, base_url: str, token: str, view: str = "") -> Any:
    """Open the console with the token handed over in the URL fragment; the main response.

    Outside dev mode the console refuses `#token=` links (contract §15): there the token is
    pasted into the sign-in form instead, then the view opened.
    """
    fragment = f"#token={token}" + (f"&view={view}" if view else "")
    response = tab.goto(f"{base_url}/console/{fragment}")
    tab.wait_for_selector("#view h1, #signin-notice:has-text('refused')")
    if tab.locator("#view h1").count() == 0:
        tab.fill("#token-input", token)
        tab.click("#signin-form button[type=submit]")
        tab.wait_for_selector("#view h1")
        if view:
            tab.evaluate(f"location.hash = {json.dumps('#' + view)}")
            tab.wait_for_selector("#view h1")
    return response


# --- Firefox, over WebDriver BiDi ------------------------------------------------------------
# Playwright drives only its own patched Firefox builds, which cannot be downloaded here, so the
# Firefox check talks WebDriver BiDi (https://w3c.github.io/webdriver-bidi/) to Debian's
# firefox-esr directly: start it with --remote-debugging-port, open a session, navigate,
# evaluate. Enough to see the console load, sign in and render in a second engine.

FIREFOX = Path(os.environ.get("FOOTGW_TEST_FIREFOX", "/usr/bin/firefox-esr"))


def no_firefox_reason() -> str | None:
    """Why the Firefox check cannot run here, or None when it can."""
    if not (FIREFOX.exists() or shutil.which(str(FIREFOX))):
        return f"no Firefox at {FIREFOX}: `make browser` installs Debian's firefox-esr (apt, root)"
    return None


class Firefox:
    """One headless firefox-esr and one BiDi session on it (use `with`; asyncio inside)."""

    def __init__(self, profile: Path) -> None:
        self.profile = profile
        self.proc: Any = None
        self.ws: Any = None
        self.context = ""
        self.ids = 0

    async def __aenter__(self) -> Firefox:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        args = [str(FIREFOX), "--headless", "--no-remote", "--profile", str(self.profile)]
        self.proc = subprocess.Popen(
            [*args, "--remote-debugging-port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            self.ws = await self._connect(f"ws://127.0.0.1:{port}/session")
            await self.command("session.new", capabilities={})
            tree = await self.command("browsingContext.getTree")
            self.context = tree["contexts"][0]["context"]
            size = {"width": VIEWPORT["width"], "height": VIEWPORT["height"]}
            await self.command("browsingContext.setViewport", context=self.context, viewport=size)
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def _connect(self, url: str) -> Any:
        deadline = time.monotonic() + 30
        while True:
            try:
                return await websockets.connect(url, max_size=2**26)
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise
                await asyncio.sleep(0.2)

    async def __aexit__(self, *_exc: object) -> None:
        if self.ws is not None:
            await self.ws.close()
        self.proc.terminate()
        self.proc.wait(timeout=15)

    async def command(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one BiDi command and return its result (events in between are dropped)."""
        self.ids += 1
        await self.ws.send(json.dumps({"id": self.ids, "method": method, "params": params}))
        while True:
            message = json.loads(await self.ws.recv())
            if message.get("id") == self.ids:
                if message.get("type") == "error":
                    raise RuntimeError(f"{method}: {message.get('message')}")
                return dict(message["result"])

    async def goto(self, url: str) -> None:
        await self.command(
            "browsingContext.navigate", context=self.context, url=url, wait="complete"
        )

    async def evaluate(self, expression: str) -> Any:
        """The JSON value of `expression` in the page (None for undefined)."""
        result = await self.command(
            "script.evaluate",
            expression=expression,
            target={"context": self.context},
            awaitPromise=True,
        )
        if result.get("type") == "exception":
            raise RuntimeError(result["exceptionDetails"].get("text"))
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 10.0) -> Any:
        """Poll until `expression` is truthy in the page; its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            assert time.monotonic() < deadline, f"timed out waiting for {expression}"
            await asyncio.sleep(0.1)
