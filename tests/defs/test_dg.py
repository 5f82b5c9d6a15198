"""`dg check defs` (dagster-dg-cli, configured under [tool.dg] in pyproject.toml) loads the code
location as `dg dev` would, and passes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def test_dg_check_defs_passes(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STOREMON_", "DAGSTER_"))}
    env.update(
        STOREMON_HOME=str(tmp_path / "state"),
        DAGSTER_HOME=str(tmp_path / "dagster"),
        VIRTUAL_ENV=str(BIN.parent),  # the project's .venv is the active one
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    (tmp_path / "dagster").mkdir()
    done = subprocess.run(
        [str(BIN / "dg"), "check", "defs"], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "All definitions loaded successfully" in done.stdout + done.stderr
    assert "does not match the virtual environment" not in done.stdout + done.stderr
