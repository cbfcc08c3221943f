"""What a workload produces (rows for the report's table, notes under it) and how figures are written."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class Row:
    workload: str
    figure: str
    agent: str
    baselines: str
    ratio: str
    target: str
    verdict: str  # "met", "MISSED", "n/a"


@dataclass
class Outcome:
    name: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    load: str = ""

    def add(
        self,
        workload: str,
        figure: str,
        *,
        agent: str,
        baselines: str = "",
        ratio: str = "",
        target: str = "",
        met: bool | None = None,
    ) -> None:
        """A row of the report's table; `met` None when the figure has no target (verdict "n/a")."""
        self.rows.append(Row(workload, figure, agent, baselines, ratio, target, verdict(met)))


def verdict(met: bool | None) -> str:
    return "n/a" if met is None else "met" if met else "MISSED"


def fmt_s(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def fmt_mb(kb: float) -> str:
    return f"{kb / 1024:.1f} MB"


def percentile(values: list[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    k = (len(ordered) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)
