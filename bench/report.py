"""Benchmark results: one row per measurement, targets as ratios, a table and a JSON file."""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numba
import numpy as np

import lsci


@dataclass
class Row:
    """One measured case."""

    suite: str
    case: str
    implementation: str
    median_ms: float
    per_second: float | None = None  # frames (or items) per second
    unit: str = "frames/s"
    fraction_of_bandwidth: float | None = None
    note: str = ""
    threads: int | None = None  # threads the implementation was given, where it is a setting
    min_ms: float | None = None  # fastest repeat: far below the median when the machine is busy


@dataclass
class Target:
    """A goal stated as a ratio (or a rate) measured in the same run."""

    name: str
    measured: float
    goal: float
    higher_is_better: bool = True

    @property
    def met(self) -> bool:
        if self.higher_is_better:
            return self.measured >= self.goal
        return self.measured <= self.goal


def _rate(per_second: float) -> str:
    """Whole numbers for ordinary rates, three significant digits for slow ones."""
    return f"{per_second:,.0f}" if per_second >= 10 else f"{per_second:.3g}"


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    extra: dict[str, object] = field(default_factory=dict)

    def table(self) -> str:
        header = f"{'suite':<10} {'case':<42} {'implementation':<34} {'thr':>3} {'ms':>10}"
        lines = [header + f" {'min ms':>9} {'rate':>10}  {'of BW':>6}", "-" * 132]
        for r in self.rows:
            rate = "" if r.per_second is None else _rate(r.per_second)
            frac = f"{100 * r.fraction_of_bandwidth:.1f}%" if r.fraction_of_bandwidth else ""
            threads = "" if r.threads is None else str(r.threads)
            fastest = "" if r.min_ms is None else f"{r.min_ms:.3f}"
            lines.append(
                f"{r.suite:<10} {r.case:<42} {r.implementation:<34} {threads:>3} "
                f"{r.median_ms:>10.3f} {fastest:>9} {rate:>10}  {frac:>6}"
                + (f"  {r.note}" if r.note else "")
            )
        if self.targets:
            lines += ["", "targets:"]
            for t in self.targets:
                sign = ">=" if t.higher_is_better else "<="
                verdict = "met" if t.met else "MISSED"
                lines.append(f"  {t.name:<70} {t.measured:>9.2f} {sign} {t.goal:<7g} {verdict}")
        return "\n".join(lines)

    def write_json(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "lsci_version": lsci.__version__,
            "machine": {
                "python": platform.python_version(),
                "processor": platform.processor() or platform.machine(),
                "numba_threads": numba.get_num_threads(),
                "numpy": np.__version__,
                "numba": numba.__version__,
            },
            "rows": [asdict(r) for r in self.rows],
            "targets": [asdict(t) | {"met": t.met} for t in self.targets],
            "extra": self.extra,
        }
        path.write_text(json.dumps(payload, indent=2))
