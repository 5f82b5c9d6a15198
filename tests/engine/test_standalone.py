"""The engine stands on its own: each of its modules, imported alone in a fresh interpreter,
brings in neither the application's settings nor Dagster; and no module of the product is
part of an import circle (one module importing another that imports it back, even lazily)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("storemon_pipeline", "storemon_api")
ENGINE_MODULES = sorted(
    f"storemon_pipeline.engine.{path.stem}"
    for path in (ROOT / "storemon_pipeline" / "engine").glob("*.py")
    if path.stem != "__init__"
)
FORBIDDEN = ("storemon_pipeline.settings", "dagster", "storemon_pipeline.defs", "storemon_api")

WATCH = """
import json, sys
module = sys.argv[1]
__import__(module)
print(json.dumps(sorted(sys.modules)))
"""


@pytest.mark.parametrize("module", ENGINE_MODULES)
def test_an_engine_module_imports_neither_settings_nor_dagster(module: str) -> None:
    loaded = json.loads(
        subprocess.run(
            [sys.executable, "-c", WATCH, module], cwd=ROOT, check=True, capture_output=True,
            text=True, timeout=120,
        ).stdout
    )
    offending = [
        name for name in loaded
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)
    ]
    assert not offending, f"{module} imports {offending}"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """The product's modules this file imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name.startswith(PACKAGES)}


def test_no_import_circles() -> None:
    files = [p for package in PACKAGES for p in (ROOT / package).rglob("*.py")]
    modules = {_module_name(p): p for p in files}
    graph = {
        name: {m for m in _imports(path) if m in modules and m != name}
        for name, path in modules.items()
    }
    # a package's __init__ is what importing it runs; edges into it stand for the package
    circles = []

    def visit(node: str, trail: list[str]) -> None:
        for target in sorted(graph[node]):
            if target in trail:
                circles.append(trail[trail.index(target):] + [target])
            elif target not in done:
                visit(target, [*trail, target])
        done.add(node)

    done: set[str] = set()
    for name in sorted(graph):
        if name not in done:
            visit(name, [name])
    assert not circles, "import circles: " + "; ".join(" -> ".join(c) for c in circles)
