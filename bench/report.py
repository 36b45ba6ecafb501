"""Figures: medians, min–max, ratios against the baseline of the same run, the table, the JSON.

Every figure's `met` is computed here from its measured ratio, the same way for all of them:
`met = ratio >= goal`. For a figure where lower is better (latency, memory) the baseline is the
goal's limit and the ratio is limit / value, so a ratio of 1.0 or more is within the limit.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def paired(
    measure: Callable[[], float], baseline: Callable[[], float], runs: int
) -> tuple[list[float], list[float]]:
    """Interleaved runs, the order alternating, after one unmeasured warm-up of each."""
    measure(), baseline()
    ours, theirs = [], []
    for i in range(runs):
        if i % 2 == 0:
            ours.append(measure())
            theirs.append(baseline())
        else:
            theirs.append(baseline())
            ours.append(measure())
    return ours, theirs


@dataclass
class Figure:
    name: str
    unit: str
    values: list[float]
    baseline: str
    baseline_values: list[float] | None  # per run, interleaved with `values`; None: a limit
    goal: float | None  # on the ratio; None: reported for information only
    goal_text: str = ""
    lower_is_better: bool = False
    limit: float | None = None  # the baseline value when the baseline is a fixed limit
    valid: bool = True  # False: a run went wrong (errors, missing audit events): never met

    @property
    def value(self) -> float:
        return statistics.median(self.values)

    @property
    def baseline_value(self) -> float | None:
        if self.baseline_values:
            return statistics.median(self.baseline_values)
        return self.limit

    @property
    def ratio(self) -> float | None:
        if not self.values:
            return None
        if self.baseline_values:
            # Paired runs: each gateway run against the baseline run next to it, then the median,
            # so drift in the machine's load over the bench cancels out.
            pairs = zip(self.values, self.baseline_values, strict=True)
            if self.lower_is_better:
                return statistics.median(b / v for v, b in pairs)
            return statistics.median(v / b for v, b in pairs)
        if self.limit is None:
            return None
        return self.limit / self.value if self.lower_is_better else self.value / self.limit

    @property
    def met(self) -> bool | None:
        ratio = self.ratio
        if self.goal is None or ratio is None:
            return None
        return self.valid and ratio >= self.goal

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "unit": self.unit,
            "value": _round(self.value) if self.values else None,
            "min": _round(min(self.values)) if self.values else None,
            "max": _round(max(self.values)) if self.values else None,
            "baseline": self.baseline,
            "baseline_value": _round(self.baseline_value),
            "ratio": _round(self.ratio, 3),
            "goal": self.goal,
            "met": self.met,
        }


def _round(x: float | None, digits: int = 1) -> float | None:
    return None if x is None else round(x, digits)


def _num(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:,.1f}" if abs(x) >= 10 else f"{x:,.2f}"


def table(figures: Sequence[Figure]) -> str:
    """One Markdown table: figure, value (min–max), baseline, ratio, goal, met."""
    rows = [
        "| figure | value (min–max) | baseline | ratio | goal | met |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for f in figures:
        value = (
            f"{_num(f.value)} {f.unit} ({_num(min(f.values))}–{_num(max(f.values))})"
            if f.values
            else "not measured"
        )
        base = (
            f.baseline
            if f.baseline_value is None
            else f"{f.baseline}: {_num(f.baseline_value)} {f.unit}"
        )
        ratio = "—" if f.ratio is None else f"{f.ratio:.2f}"
        met = {True: "yes", False: "**no**", None: "—"}[f.met]
        goal = f.goal_text or ("—" if f.goal is None else f"≥ {f.goal:g}")
        rows.append(f"| {f.name} | {value} | {base} | {ratio} | {goal} | {met} |")
    return "\n".join(rows)
