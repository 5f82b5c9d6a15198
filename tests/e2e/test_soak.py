"""`storemon soak --chaos`, short: a live feed, triggers all the time, processes killed at random;
then every poll stored exactly once, every report ended, every CSV equal to `storemon report`,
every alert event acknowledged by the soak's webhook receiver under its own key."""

from __future__ import annotations

import re
import subprocess
import sys


def test_a_short_chaos_soak_passes_its_checks(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "storemon_pipeline.cli", "soak", "--minutes", "1.25", "--chaos",
         "--kill-every", "9", "--home", str(tmp_path / "state")],
        capture_output=True, text=True, timeout=900,
    )
    print(result.stdout[-3000:])
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    assert "checks: all passed" in result.stdout
    summary = next(line for line in result.stdout.splitlines() if line.startswith("soak of "))
    assert "with chaos" in summary and "Complete" in summary
    downloaded, late = map(int, re.search(r"(\d+) CSVs downloaded \((\d+) made", summary).groups())
    assert downloaded > late, "some served CSVs were compared with `storemon report`"
    assert "kills: " in result.stdout
    alerts = next(line for line in result.stdout.splitlines() if line.startswith("alerts: "))
    events, posts = map(int, re.search(r"(\d+) events, (\d+) posts received", alerts).groups())
    assert events > 0 and posts >= events, alerts  # checked above: every event acknowledged
