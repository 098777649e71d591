"""kdutils's three layers: distillation <- runner <- analysis, each module in one of them."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "kdutils"
# The modules of the runner that load studies by name: the sweep and its task graph drive
# them, and the build's checks ask them what they need (preflight) and what they show
# (bookcheck).
DRIVERS = {"sweep", "graph", "preflight", "bookcheck"}


def imported(path: Path) -> set[str]:
    """Every kdutils module `path` imports, as dotted names (`from kdutils import x` -> x)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names if a.name.startswith("kdutils")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("kdutils"):
            names.add(node.module)
            if node.module in ("kdutils", "kdutils.distill", "kdutils.analysis"):
                names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


def layer_modules(layer: str) -> list[Path]:
    if layer == "runner":
        return sorted(p for p in ROOT.glob("*.py") if p.stem != "__init__")
    return sorted((ROOT / layer).glob("*.py"))


@pytest.mark.parametrize("path", layer_modules("distill"), ids=lambda p: p.stem)
def test_distillation_imports_only_itself(path):
    outside = {m for m in imported(path) if not m.startswith("kdutils.distill")}
    assert not outside, f"{path.name} reaches out of the distillation layer: {sorted(outside)}"


@pytest.mark.parametrize("path", layer_modules("runner"), ids=lambda p: p.stem)
def test_runner_never_imports_analysis_or_studies(path):
    allowed = ("kdutils.analysis", "kdutils.studies") if path.stem in DRIVERS else ()
    above = {
        m
        for m in imported(path)
        if m.startswith(("kdutils.analysis", "kdutils.studies")) and not m.startswith(allowed)
    }
    assert not above, f"{path.name} (runner) imports from a layer above it: {sorted(above)}"


@pytest.mark.parametrize("path", layer_modules("analysis"), ids=lambda p: p.stem)
def test_analysis_reads_records_and_never_trains(path):
    allowed = ("kdutils.analysis", "kdutils.results", "kdutils.profiles")
    other = {m for m in imported(path) if not m.startswith(allowed)}
    assert not other, f"{path.name} (analysis) imports training or driving code: {sorted(other)}"


def test_no_module_name_is_used_twice():
    """One name, one module: `sweep` and a study's helper, `metrics` and the calibration
    study, the teacher cache and the `teachers` study no longer share a name."""
    stems = [p.stem for p in ROOT.rglob("*.py") if p.stem != "__init__"]
    assert sorted(s for s in set(stems) if stems.count(s) > 1) == []
    names = set(stems)
    for a in names:
        for b in names - {a}:
            assert b != a + "s", f"{a} and {b} differ by a plural only"


def test_an_installed_kdutils_has_every_layer():
    """`pip install .` (not only `-e`) packages every package of kdutils."""
    import tomllib
    from setuptools import find_packages

    repo = ROOT.parent
    find = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["setuptools"]
    packaged = set(find_packages(repo, include=find["packages"]["find"]["include"]))
    present = {".".join(p.parent.relative_to(repo).parts) for p in ROOT.rglob("__init__.py")}
    assert packaged == present and {"kdutils.distill", "kdutils.analysis"} <= packaged
