"""docs/contract.md stays true mechanically: what the code knows, the contract names.

Each test reads one set from the code itself (the settings module, the error classes and the
places that pick an error code, the EventType enum, the app's route table, the CLI parser)
and checks that docs/contract.md names every member. A member the code gains and the contract
does not mention fails here, so the contract cannot drift silently behind the code.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog.testing
from starlette.exceptions import HTTPException
from starlette.routing import Mount, Route

from gateway import cli
from gateway.api import routes
from gateway.errors import GatewayError
from gateway.middleware import error_handlers
from gateway.types import EventType

ROOT = Path(__file__).resolve().parent.parent
GATEWAY = ROOT / "gateway"
CONTRACT_PATH = ROOT / "docs" / "contract.md"
CONTRACT = CONTRACT_PATH.read_text()
LINES = CONTRACT.splitlines()


def _table_rows() -> list[str]:
    return [line for line in LINES if line.startswith("|")]


# -- settings ---------------------------------------------------------------------------------

# How gateway/settings.py names a key: read.text("PORT"), read.parse("GRANT_MAX_TTL", …),
# read.choice("DELIVERY", …), f"{PREFIX}CONFIG", or the full "FOOTGW_…" spelled out.
_SETTING_PATTERNS = (
    re.compile(r'read\.(?:text|parse|choice)\(\s*"([A-Z0-9_]+)"'),
    re.compile(r"\{PREFIX\}([A-Z0-9_]+)"),
    re.compile(r"FOOTGW_([A-Z0-9_]+)"),
)


def setting_keys() -> set[str]:
    source = (GATEWAY / "settings.py").read_text()
    return {f"FOOTGW_{name}" for pattern in _SETTING_PATTERNS for name in pattern.findall(source)}


def test_every_setting_is_in_the_contract():
    keys = setting_keys()
    assert {"FOOTGW_CONFIG", "FOOTGW_PORT", "FOOTGW_ACCEL_PREFIX"} <= keys  # the reader works
    missing = sorted(k for k in keys if f"`{k}`" not in CONTRACT)
    assert not missing, f"settings missing from docs/contract.md §2: {missing}"


# -- error codes ------------------------------------------------------------------------------


def _subclasses(cls: type[GatewayError]) -> Iterator[type[GatewayError]]:
    yield cls
    for sub in cls.__subclasses__():
        yield from _subclasses(sub)


def _string_constants(node: ast.AST) -> set[str]:
    return {
        n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    }


def _returned_strings(tree: ast.Module, name: str) -> set[str]:
    """The string constants a function of this module returns (e.g. authz._why_no_rule)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == name:
            for ret in ast.walk(node):
                if isinstance(ret, ast.Return) and ret.value is not None:
                    found |= _string_constants(ret.value)
    return found


def _is_deny(call: ast.Call) -> bool:
    func = call.func
    return isinstance(func, ast.Attribute) and func.attr == "deny"


def _codes_in_module(path: Path) -> set[str]:
    """Codes a module picks: `code="…"` keywords, and the reasons of Decision.deny(…), which the
    pipeline turns into 403 codes (a reason computed by a local function counts too)."""
    tree = ast.parse(path.read_text())
    codes: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        for keyword in node.keywords:
            if keyword.arg == "code" and isinstance(keyword.value, ast.Constant):
                codes.add(str(keyword.value.value))
        if _is_deny(node) and node.args:
            reason = node.args[0]
            codes |= _string_constants(reason)
            if isinstance(reason, ast.Call):
                callee = reason.func
                name = callee.attr if isinstance(callee, ast.Attribute) else None
                name = callee.id if isinstance(callee, ast.Name) else name
                if name:
                    codes |= _returned_strings(tree, name)
    return codes


def _framework_codes() -> set[str]:
    """The codes the one error handler gives Starlette's HTTP errors and unexpected ones."""
    handlers = error_handlers()

    async def code_of(handler_key: type[Exception], exc: Exception) -> str:
        response = await handlers[handler_key](None, exc)
        return str(json.loads(response.body)["error"]["code"])

    async def collect() -> set[str]:
        found = {await code_of(HTTPException, HTTPException(s)) for s in range(400, 600)}
        with structlog.testing.capture_logs():  # the handler logs the bug; keep it off the output
            found.add(await code_of(Exception, RuntimeError("a bug")))
        return found

    return asyncio.run(collect())


def error_codes() -> set[str]:
    codes = {cls.code for cls in _subclasses(GatewayError)}
    for path in GATEWAY.rglob("*.py"):
        codes |= _codes_in_module(path)
    return codes | _framework_codes()


def test_every_error_code_is_in_the_contract():
    codes = error_codes()
    assert {"bad_request", "no_grant", "zone_restricted", "method_not_allowed"} <= codes
    rows = _table_rows()
    missing = sorted(c for c in codes if not any(f"| `{c}` |" in row for row in rows))
    assert not missing, f"error codes missing from the table in docs/contract.md §5: {missing}"


# -- audit event types ------------------------------------------------------------------------


def test_every_event_type_is_in_the_contract():
    rows = _table_rows()
    missing = sorted(
        t.value for t in EventType if not any(r.startswith(f"| `{t}` |") for r in rows)
    )
    assert not missing, f"event types missing from the table in docs/contract.md §7: {missing}"


# -- routes -----------------------------------------------------------------------------------


def _documented_methods(route: Route) -> set[str]:
    # Starlette adds HEAD to every GET route; the contract says so once, not on every row.
    methods = set(route.methods or ())
    return methods - {"HEAD"} if "GET" in methods else methods


def test_every_route_is_in_the_contract_with_its_methods():
    table = routes()
    assert len(table) >= 15
    rows = _table_rows()
    problems = []
    for route in table:
        path = f"`{route.path}`"
        if isinstance(route, Mount):
            if not any(f"`{route.path}/`" in row for row in rows):
                problems.append(f"{route.path}/ (mount)")
            continue
        assert isinstance(route, Route)
        wanted = _documented_methods(route)
        if not any(path in row and all(f"`{m}`" in row for m in wanted) for row in rows):
            problems.append(f"{sorted(wanted)} {route.path}")
    assert not problems, f"routes missing from docs/contract.md §5: {problems}"


# -- command line -----------------------------------------------------------------------------


def _commands(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every leaf command (`audit verify`, `serve`, …) with its parser."""
    groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not groups and prefix:
        yield prefix, parser
    for group in groups:
        for name, sub in group.choices.items():
            yield from _commands(sub, (*prefix, name))


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {
        option
        for action in parser._actions
        for option in action.option_strings
        if option.startswith("--") and option not in ("--help", "--config")
    }


def test_every_command_and_option_is_in_the_contract():
    commands = dict(_commands(cli._parser()))
    assert {("serve",), ("audit", "verify"), ("policy", "check")} <= set(commands)
    assert "`--config" in CONTRACT or "[--config" in CONTRACT
    rows = _table_rows()
    problems = []
    for words, parser in commands.items():
        head = f"| `footage-gateway {' '.join(words)}"
        row = next((r for r in rows if r.startswith(head) and r[len(head)] in " `"), None)
        if row is None:
            problems.append(" ".join(words))
            continue
        problems += [f"{' '.join(words)} {o}" for o in sorted(_options(parser)) if o not in row]
    assert not problems, f"commands or options missing from docs/contract.md §9: {problems}"


# -- the repository stands on its own ---------------------------------------------------------


def _text_files() -> Iterator[Path]:
    yield ROOT / "README.md"
    for top in ("docs", "gateway"):
        for path in sorted((ROOT / top).rglob("*")):
            if path.is_file() and path.suffix not in (".png", ".pyc", ".ico", ".woff2"):
                yield path


@pytest.mark.parametrize("needle", ["../shared", "shared/"])
def test_nothing_refers_to_files_outside_the_repository(needle):
    found = [
        str(path.relative_to(ROOT))
        for path in _text_files()
        if needle in path.read_text(errors="replace")
    ]
    assert not found, f"{needle!r} appears in {found}: the contract is docs/contract.md"
