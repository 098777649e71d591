"""Notebooks: each MyST .md has an output-free, in-sync .ipynb twin for Colab; glue keys unique."""

import re
from pathlib import Path

import jupytext
import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted((ROOT / "notebooks").glob("*.md"))
COLAB = 'if "google.colab" in sys.modules:'


def test_there_are_notebooks():
    assert (ROOT / "notebooks" / "distill.md") in SOURCES


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_paired_ipynb_in_sync_and_without_outputs(source):
    twin = source.with_suffix(".ipynb")
    assert twin.exists(), f"{source.name} has no paired {twin.name}: jupytext --to ipynb {source}"
    text = jupytext.read(source)
    pair = nbformat.read(twin, as_version=4)
    cells = [(c.cell_type, c.source.strip()) for c in text.cells]
    assert cells == [(c.cell_type, c.source.strip()) for c in pair.cells], (
        f"{twin.name} is out of sync with {source.name}: jupytext --to ipynb {source}"
    )
    for cell in pair.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{twin.name} has outputs"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_first_code_cell_installs_kdutils_in_colab(source):
    first = next(c for c in jupytext.read(source).cells if c.cell_type == "code")
    assert COLAB in first.source and "pip install" in first.source
    assert "remove-cell" in first.metadata.get("tags", [])


def test_sweep_notebook_has_a_parameters_cell():
    cells = jupytext.read(ROOT / "notebooks" / "distill.md").cells
    params = [c for c in cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1
    for name in ("profile", "alpha", "temperature", "seeds", "epochs", "dataset", "train_size"):
        assert re.search(rf"^{name} = ", params[0].source, re.M), name


def test_glue_keys_are_unique_across_the_book():
    seen: dict[str, str] = {}
    for source in SOURCES:
        for key in re.findall(r"""glue\(\s*["']([\w-]+)["']""", source.read_text()):
            assert key not in seen or seen[key] == source.name, (
                f"{key} in {seen[key]} and {source.name}"
            )
            seen[key] = source.name
