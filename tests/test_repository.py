"""The repository stands alone: nothing in it points outside it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# spelled in pieces so that this file does not match itself
OUTSIDE = re.compile(r"\.\./shared|" + "SPEC" + r"\.md|" + "SPEC" + " §")


def test_no_file_refers_outside_the_repository():
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    offenders = []
    for name in tracked:
        path = ROOT / name
        if path.suffix in (".gz", ".png") or not path.is_file():
            continue
        text = path.read_text(errors="replace")
        offenders += [f"{name}: {m.group(0)}" for m in OUTSIDE.finditer(text)]
    assert not offenders, offenders


def test_docs_are_linked_from_the_readme():
    readme = (ROOT / "README.md").read_text()
    for doc in ("docs/semantics.md", "docs/architecture.md", "docs/operations.md"):
        assert f"({doc})" in readme and (ROOT / doc).is_file()
