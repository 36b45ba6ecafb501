"""`footage-gateway demo`: seed demo footage, print ready-to-paste curl lines, and serve.

The demo runs on the embedded defaults (SQLite, a local footage tree under ./var, a dev key)
so a new user sees every part of the flow with two commands and nothing else installed.

- `tokens`: the demo's people and the dev tokens minted for them.
- `seeding`: the one routine that writes demo cameras (with zones) and clips.
- `walkthrough`: the basic demo's cameras and the curl lines `make run` prints.
- `browsing`: the `--scenario browsing` replay of a support agent sweeping customers.
- `run`: what `footage-gateway demo` does, in order.

Arrows point down: `run` → `walkthrough`, `browsing` → `seeding`, `tokens`; nothing here
imports `run`, and the scenario never imports the walk-through.
"""

from __future__ import annotations

# Every `--scenario` the demo knows: the CLI offers exactly these.
SCENARIOS = ("basic", "browsing")
