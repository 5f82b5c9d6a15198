"""The bench's curve as a picture: time and peak memory per phase against the scale, drawn from
the cached results of the 8-day runs (storemon_pipeline.tools.bench_chart)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from storemon_pipeline.cli import main as storemon_main
from storemon_pipeline.tools import bench_chart

PHASES = ("floor", "ingest", "report", "windows", "explain")


def write_results(cache: Path, scale: float, days: int = 8, **extra: dict) -> None:
    """A results.json as `storemon bench` writes it: time linear in the scale, memory flat."""
    rows = [
        {"kind": "phase", "phase": phase, "seconds": (i + 1) * 0.5 * scale,
         "peak_rss_mb": 300.0 + 20 * i}
        for i, phase in enumerate(PHASES)
    ]
    rows += [{"kind": "phase", "phase": phase, **row} for phase, row in extra.items()]
    name = f"scale-{scale:g}" + (f"-days-{days}" if days != 8 else "")
    folder = cache / name
    folder.mkdir(parents=True)
    bars = [{"kind": "bar", "bar": "ingest", "value": 1.0, "limit": 5.0, "unit": "s",
             "passed": True}]
    (folder / "results.json").write_text(
        json.dumps({"scale": scale, "days": days, "rows": rows, "bars": bars})
    )


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    cache = tmp_path / "bench"
    # the load phase runs only at 1x (one scale: not a curve); a phase failed at 30x (no seconds)
    write_results(cache, 1, load={"seconds": 5.0, "peak_rss_mb": 900.0})
    write_results(cache, 10)
    write_results(cache, 30, late_100={"seconds": None, "peak_rss_mb": 100.0, "error": "x"})
    # a history run is not one of the curve's 8-day runs
    write_results(cache, 10, days=31, sla={"seconds": 99.0, "peak_rss_mb": 9000.0})
    return cache


def test_chart_of_the_cached_scales(cache: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from matplotlib.image import imread

    summary = bench_chart.draw_chart(cache, tmp_path / "out" / "bench.png")
    assert summary.path.is_file()
    assert imread(summary.path).shape[:2] == (420, 1000)  # height, width: fixed size and dpi
    assert summary.scales == (1.0, 10.0, 30.0)
    assert summary.phases == PHASES  # not the load (one scale), nor the history's SLA
    assert summary.missing_scales == (100.0,)
    assert "not measured yet: 100×" in bench_chart.describe(summary)
    # the same results, the same bytes
    again = bench_chart.draw_chart(cache, tmp_path / "again.png")
    assert again.path.read_bytes() == summary.path.read_bytes()


def test_a_phase_at_several_scales_is_drawn_too(tmp_path: Path) -> None:
    runs = {
        1.0: {"ingest": {}, "load": {}, "stray": {}, "sla": {}},
        10.0: {"ingest": {}, "stray": {}},
    }
    # a scaled phase wherever measured; another phase only where measured at two scales
    assert bench_chart.chart_phases(runs) == ["ingest", "stray"]


def test_cli_draws_from_the_cache_without_running(cache: Path, tmp_path: Path, capsys) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "chart.png"
    assert storemon_main(["bench", "--cache-dir", str(cache), "--chart", str(out)]) == 0
    assert out.is_file()
    assert str(out) in capsys.readouterr().out
    assert not (cache / "scale-1" / "run").exists()  # no benchmark ran

    assert storemon_main(["bench", "--cache-dir", str(tmp_path / "none"), "--chart",
                          str(tmp_path / "no.png")]) == 2
    assert "no 8-day bench results" in capsys.readouterr().err


def test_without_matplotlib_it_says_how_to_install_it(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bench_chart, "chart_available", lambda: False)
    with pytest.raises(bench_chart.ChartError, match=r"pip install -e '\.\[bench\]'"):
        bench_chart.draw_chart(cache, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_the_product_never_imports_matplotlib() -> None:
    code = (
        "import sys; import storemon_pipeline.cli as c, storemon_pipeline.tools.bench_chart; "
        "c.build_parser(); assert 'matplotlib' not in sys.modules, 'imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
