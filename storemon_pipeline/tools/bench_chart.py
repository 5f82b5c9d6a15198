"""The curve of ``storemon bench``, as a picture: time and peak memory per phase against the scale.

Every 8-day run of the bench leaves ``<cache>/scale-K/results.json``; this module reads all of
them and draws two panels side by side, log-log, one line per phase: the seconds against the
scale, with a dashed guide of what linear growth would be, and the peak RSS against the scale,
with the 4 GB bar. Time that follows the guide and memory that stays flat under the bar is what
the README promises.

matplotlib is imported only when a chart is drawn: it is the ``bench`` extra
(``pip install -e '.[bench]'``), never a dependency of the product.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from storemon_pipeline.tools.bench import DAYS, MEMORY_BAR_MB, PHASES, SCALED_PHASES

# The scales the README's curve is meant to show; each is a tick, measured or not yet.
PLANNED_SCALES = (1.0, 10.0, 30.0, 100.0)
WIDTH_IN, HEIGHT_IN, DPI = 10.0, 4.2, 100  # 1000 x 420 pixels, whatever the machine
DEFAULT_CHART = Path("docs") / "bench.png"  # the README's picture, from the checkout's root
INSTALL_HINT = "install the bench extra: pip install -e '.[bench]' (in a checkout)"
# One colour per phase, the same in every chart whichever phases it holds.
COLOURS = {
    "floor": "#7f7f7f",
    "ingest": "#1f77b4",
    "windows": "#2ca02c",
    "report": "#d62728",
    "explain": "#9467bd",
}
OTHER_COLOURS = ("#ff7f0e", "#8c564b", "#e377c2", "#bcbd22", "#17becf")


class ChartError(RuntimeError):
    """No chart can be drawn: matplotlib is missing, or no 8-day run is cached."""


@dataclass(frozen=True)
class ChartSummary:
    """What a chart shows: its file, the scales measured and the phases drawn (in the
    legend's order), and the planned scales that have no run yet."""

    path: Path
    scales: tuple[float, ...]
    phases: tuple[str, ...]
    missing_scales: tuple[float, ...]


def chart_available() -> bool:
    """Whether matplotlib can be imported (the ``bench`` extra is installed)."""
    return importlib.util.find_spec("matplotlib") is not None


def read_results(cache_dir: Path) -> dict[float, dict[str, dict]]:
    """The phases of every cached 8-day run: ``{scale: {phase: row}}``, the rows that have
    seconds (a failed phase has none). Histories (``scale-K-days-D``) and unreadable files are
    left out."""
    runs: dict[float, dict[str, dict]] = {}
    for path in sorted(Path(cache_dir).glob("scale-*/results.json")):
        try:
            float(path.parent.name.removeprefix("scale-"))  # not scale-K-days-D
            data = json.loads(path.read_text())
            if data.get("days", DAYS) != DAYS:
                continue
            runs[float(data["scale"])] = {
                row["phase"]: row
                for row in data["rows"]
                if row.get("kind", "phase") == "phase" and row.get("seconds") is not None
            }
        except (ValueError, KeyError, TypeError, OSError):
            continue
    return {scale: runs[scale] for scale in sorted(runs) if runs[scale]}


def chart_phases(runs: dict[float, dict[str, dict]]) -> list[str]:
    """The phases to draw: those the bench runs at every scale, wherever measured, then any
    other phase measured at two scales or more."""
    counts: dict[str, int] = {}
    for phases in runs.values():
        for phase in phases:
            counts[phase] = counts.get(phase, 0) + 1
    others = [p for p in PHASES if p not in SCALED_PHASES]
    others += sorted(p for p in counts if p not in PHASES)
    return [p for p in SCALED_PHASES if p in counts] + [
        p for p in others if counts.get(p, 0) >= 2
    ]


def _scale_label(scale: float) -> str:
    return f"{scale:g}\N{MULTIPLICATION SIGN}"


def draw_chart(cache_dir: Path, path: Path) -> ChartSummary:
    """Draw the chart of the 8-day runs cached in ``cache_dir`` to the PNG ``path``."""
    if not chart_available():
        raise ChartError(f"the bench chart needs matplotlib: {INSTALL_HINT}")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

    runs = read_results(cache_dir)
    if not runs:
        raise ChartError(
            f"no 8-day bench results in {cache_dir} (scale-K/results.json): run "
            "`storemon bench --scale K` first"
        )
    scales = tuple(runs)
    phases = chart_phases(runs)
    ticks = sorted(set(PLANNED_SCALES) | set(scales))

    figure = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    time_axes, memory_axes = figure.subplots(1, 2)
    others = iter(OTHER_COLOURS * 4)
    for phase in phases:
        colour = COLOURS.get(phase) or next(others)
        measured = [s for s in scales if phase in runs[s]]
        for axes, key in ((time_axes, "seconds"), (memory_axes, "peak_rss_mb")):
            axes.plot(
                measured, [runs[s][phase][key] for s in measured], marker="o", color=colour,
                label=phase, linewidth=1.8, markersize=5,
            )

    # linear growth, through the first measured time of the ingest (else the first phase drawn)
    anchor = "ingest" if "ingest" in phases else phases[0]
    first = next(s for s in scales if anchor in runs[s])
    seconds = runs[first][anchor]["seconds"]
    span = [ticks[0], ticks[-1]]
    time_axes.plot(
        span, [seconds * s / first for s in span], linestyle="--", color="black",
        linewidth=1, alpha=0.6, label=f"linear (from {anchor} at {_scale_label(first)})",
    )
    memory_axes.axhline(MEMORY_BAR_MB, color="#d62728", linestyle=":", linewidth=1.5,
                        label=f"bar: {MEMORY_BAR_MB / 1024:g} GB")

    peaks = [runs[s][p]["peak_rss_mb"] for s in scales for p in phases if p in runs[s]]
    plain = FuncFormatter(lambda value, _: f"{value:,.0f}" if value >= 1 else f"{value:g}")
    for axes, title, unit in (
        (time_axes, "time per phase", "seconds"),
        (memory_axes, "peak memory per phase", "peak RSS (MB)"),
    ):
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_xlim(ticks[0] / 1.3, ticks[-1] * 1.3)
        axes.xaxis.set_major_locator(FixedLocator(ticks))
        axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: _scale_label(value)))
        axes.xaxis.set_minor_locator(NullLocator())
        axes.yaxis.set_major_formatter(plain)
        axes.yaxis.set_minor_formatter(NullFormatter())
        axes.set_xlabel("scale (1\N{MULTIPLICATION SIGN} = 14,000 stores, 1.85 M polls, 8 days)")
        axes.set_ylabel(unit)
        axes.set_title(title)
        axes.grid(True, which="major", linewidth=0.5, alpha=0.4)
        axes.legend(fontsize=8, loc="upper left", ncol=3)
    # room above the curves for the legends (log axes: a factor is a fixed height)
    times = [runs[s][p]["seconds"] for s in scales for p in phases if p in runs[s]]
    time_axes.set_ylim(min(times) / 2, max(*times, seconds * span[1] / first) * 25)
    memory_axes.set_ylim(min(peaks) / 2, MEMORY_BAR_MB * 6)
    memory_axes.yaxis.set_major_locator(FixedLocator([2.0**n for n in range(4, 16)]))
    missing = tuple(s for s in PLANNED_SCALES if s not in scales)
    figure.suptitle(
        "storemon bench, measured at "
        + ", ".join(_scale_label(s) for s in scales)
        + (f" (not yet: {', '.join(_scale_label(s) for s in missing)})" if missing else ""),
        fontsize=11,
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # no version in the file, so that the same results give the same bytes
    figure.savefig(path, dpi=DPI, format="png", metadata={"Software": None})
    return ChartSummary(path=path, scales=scales, phases=tuple(phases), missing_scales=missing)


def describe(summary: ChartSummary) -> str:
    """One line for the console."""
    line = (
        f"chart of {', '.join(summary.phases)} at "
        f"{', '.join(_scale_label(s) for s in summary.scales)}: {summary.path}"
    )
    if summary.missing_scales:
        line += (
            " (not measured yet: "
            + ", ".join(_scale_label(s) for s in summary.missing_scales) + ")"
        )
    return line


def redraw(cache_dir: Path, out: Callable[[str], None] = print) -> None:
    """After a bench run: the chart of every 8-day run cached, ``<cache>/bench.png``, when
    matplotlib (the ``bench`` extra) is there; the benchmark itself never needs it."""
    if not chart_available():
        return
    try:
        out(describe(draw_chart(cache_dir, cache_dir / "bench.png")))
    except ChartError as error:
        out(f"no chart drawn: {error}")
