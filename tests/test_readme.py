"""Every command README.md and docs/integration.md show runs as written from a fresh clone.

A command is a line of a ```sh (or plain ```) block, or an inline code span of two words or
more, that starts with `make`, `.venv/bin/` or `FOOTGW_…=… ` settings. Each must name a real
make target or parse with the real command line, and its `--help` must run. A bare
`footage-gateway …` (not on a fresh clone's PATH: it lives in `.venv/bin/`) is refused.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from gateway import cli

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", ROOT / "docs" / "integration.md"]
SETTING = re.compile(r"FOOTGW_[A-Z_]+=\S*")
FENCE = re.compile(r"^```(?:sh|bash)?\n(.*?)^```", re.M | re.S)
SPAN = re.compile(r"`([^`\n]+)`")
RUNNABLE = re.compile(r"^(make |\.venv/bin/|FOOTGW_[A-Z_]+=\S* )")
BARE = re.compile(r"^(FOOTGW_[A-Z_]+=\S* )*(footage-gateway|python -m gateway)\b")


def shown_commands(text: str) -> list[str]:
    """The command lines of ```sh blocks and the runnable-looking inline code spans."""
    lines = [line for block in FENCE.findall(text) for line in block.splitlines()]
    # A span of one word (`footage-gateway`, `.venv/bin/`) names a thing; a command has two.
    spans = [span for span in SPAN.findall(FENCE.sub("", text)) if " " in span.strip()]
    return [c.strip() for c in [*lines, *spans] if RUNNABLE.match(c.strip()) or BARE.match(c)]


def argv_of(command: str) -> list[str]:
    """The words of a command, without its leading settings, comment and redirection."""
    words = shlex.split(command, comments=True)
    while words and SETTING.fullmatch(words[0]):
        words.pop(0)
    if ">" in words:
        words = words[: words.index(">")]
    return words


def make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([a-z][\w-]*):", text, re.M))


COMMANDS = sorted({c for doc in DOCS for c in shown_commands(doc.read_text())})


def test_the_docs_show_commands_at_all():
    assert any(c.startswith(".venv/bin/footage-gateway") for c in COMMANDS)
    assert "make run" in [" ".join(argv_of(c)) for c in COMMANDS]


@pytest.mark.parametrize("command", COMMANDS)
def test_a_shown_command_runs_as_written(command: str) -> None:
    assert not BARE.match(command), f"not on a fresh clone's PATH: {command}"
    program, *args = argv_of(command)
    if program == "make":
        assert set(args) <= make_targets(), command
        return
    venv_bin = Path(sys.executable).parent
    # The docs say .venv/bin/ because the Makefile makes the venv there.
    assert re.search(r"^VENV\s*\?=\s*\.venv$", (ROOT / "Makefile").read_text(), re.M)
    if program == ".venv/bin/python":
        assert args[:2] == ["-m", "gateway"], command
        program, args = ".venv/bin/footage-gateway", args[2:]
    assert program == ".venv/bin/footage-gateway", command
    if "--help" not in args:
        parsed = cli._parser().parse_args(args)  # exits 2, failing the test, if it does not parse
        assert getattr(parsed, "func", None) or not args, command
    words = [a for a in args if not a.startswith("-")][:2]
    commands = [w for w in words if w in _command_names()]
    done = subprocess.run(
        [str(venv_bin / "footage-gateway"), *commands, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def _command_names() -> set[str]:
    import argparse

    names: set[str] = set()
    pending = [cli._parser()]
    while pending:
        parser = pending.pop()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                names.update(action.choices)
                pending.extend(action.choices.values())
    return names
