"""What a scenario measured, and the markdown table it becomes."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.counting import Counts


@dataclass
class Side:
    """One side (ours or naive) of a scenario: the counts of its last run and every run's wall time."""

    counts: Counts
    seconds: list[float] = field(default_factory=list)
    first_run: Counts | None = None  # kept only when it differed from the later runs (cold clients)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.seconds) * 1000

    @property
    def runs(self) -> int:
        return len(self.seconds)


@dataclass(frozen=True)
class Row:
    scenario: str
    ours: float | None
    naive: float | None = None
    target: str = "—"
    met: bool | None = None
    decimals: int = 0

    @property
    def ratio(self) -> float | None:
        if self.ours is None or not self.naive:
            return None
        return self.ours / self.naive


@dataclass
class ScenarioResult:
    name: str
    rows: list[Row]
    details: list[str] = field(default_factory=list)
    ours: Side | None = None
    naive: Side | None = None
    tables: list[str] = field(default_factory=list)  # markdown tables of its own, after the main one

    def row(self, prefix: str) -> Row:
        """The row whose scenario text starts with `prefix` (tests look rows up this way)."""
        for row in self.rows:
            if row.scenario.startswith(prefix):
                return row
        raise KeyError(f"{self.name} has no row starting {prefix!r}: {[r.scenario for r in self.rows]}")


def _number(value: float | None, decimals: int) -> str:
    if value is None:
        return "—"
    return f"{value:,.{decimals}f}"


def _met(met: bool | None) -> str:
    return "—" if met is None else ("yes" if met else "**NO**")


def _ratio(ratio: float | None) -> str:
    if ratio is None:
        return "—"
    if 0 < ratio < 0.01:
        return f"1/{1 / ratio:,.0f}"  # 0.000 would hide how far apart the two are
    return f"{ratio:,.3f}"


def table(results: Sequence[ScenarioResult]) -> str:
    lines = ["| scenario | ours | naive | ratio | target | met? |", "|---|---:|---:|---:|---|---|"]
    for result in results:
        for row in result.rows:
            ratio = _ratio(row.ratio)
            lines.append(
                f"| {row.scenario} | {_number(row.ours, row.decimals)} | {_number(row.naive, row.decimals)} "
                f"| {ratio} | {row.target} | {_met(row.met)} |"
            )
    return "\n".join(lines)


def details(results: Sequence[ScenarioResult]) -> str:
    blocks = []
    for result in results:
        if result.details:
            blocks.append(f"**{result.name}**\n\n" + "\n".join(f"- {line}" for line in result.details))
    return "\n\n".join(blocks)


def tables(results: Sequence[ScenarioResult]) -> str:
    return "\n\n".join(table for result in results for table in result.tables)


def missed(results: Sequence[ScenarioResult]) -> list[str]:
    return [row.scenario for result in results for row in result.rows if row.met is False]
