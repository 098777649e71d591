"""The notebooks run in Colab: an emulated Colab runtime installs kdutils with their own first cell.

Colab gives a notebook Python with TensorFlow, Keras and the scientific stack preinstalled,
and no kdutils. Every notebook's first code cell (tagged remove-cell) installs this book's
package there with `%pip install "kdutils[sweep] @ git+<repository>@main"`.

The emulation:

- The "Colab image" is a virtual environment built from `tests/colab-requirements.txt`
  (pinned like `requirements.txt`, which also serves as constraints for the transitive
  versions). It is built once per content of those two files and kept in
  `~/.cache/kdutils-colab/` (2 GB; a first build takes a few minutes); every test run works
  in a fresh hard-linked copy of it, so the image itself never changes.
- A notebook runs in an ipykernel of that copy, with `google.colab` faked in `sys.modules`,
  the repository URL of its Colab cell rewritten to a `file://` copy of this checkout
  (`pyproject.toml`, `README.md`, `LICENSE*`, `kdutils/`) and nothing of the checkout on
  `PYTHONPATH`: kdutils can only come from the cell's pip install. `PIP_CONSTRAINT` points at
  `requirements.txt`, so the extras resolve to the project's pins.
- `notebooks/distill.md` runs end to end with the smoke profile into a temporary results
  folder; every other notebook's import statements run after it, in the same kernel.
"""

from __future__ import annotations

import ast
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import jupytext
import nbformat
import pytest
import tomllib
import yaml

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.md"))
MAIN = ROOT / "notebooks" / "distill.md"
COLAB_REQUIREMENTS = ROOT / "tests" / "colab-requirements.txt"
REQUIREMENTS = ROOT / "requirements.txt"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kdutils-colab"
# Packages a Colab runtime does not have before the first cell: the cell must bring them.
NOT_IN_COLAB = ("kdutils", "papermill", "jupytext")


def _config() -> dict:
    return yaml.safe_load((ROOT / "_config.yml").read_text())


def install_url() -> str:
    """The pip URL of the Colab cells: the repository and branch of `_config.yml`."""
    repo = _config()["repository"]
    return f"git+{repo['url']}@{repo['branch']}"


def colab_cell(source: Path):
    """The first code cell of a notebook: the one that installs kdutils in Colab."""
    return next(c for c in jupytext.read(source).cells if c.cell_type == "code")


def rewrite(cell_source: str, target: str) -> str:
    """The Colab cell with its `git+...` pip URL replaced by `target`."""
    url = install_url()
    assert cell_source.count(f'"kdutils[sweep] @ {url}"') == 1, (
        f"the Colab cell does not install exactly one 'kdutils[sweep] @ {url}'"
    )
    return cell_source.replace(url, target)


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


# --- Known gaps: what the Colab cell cannot provide, computed from pyproject.toml ---------


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _installed_by_colab_cell() -> set[str]:
    """Distributions the Colab cell's `kdutils[sweep]` names, plus the Colab image's own."""
    project = _pyproject()["project"]
    specs = [*project["dependencies"], *project.get("optional-dependencies", {}).get("sweep", [])]
    names = {re.split(r"[\s\[<>=!~;@]", s, maxsplit=1)[0] for s in specs}
    return {re.sub(r"[-_.]+", "-", n).lower() for n in names} | set(_pins(COLAB_REQUIREMENTS))


def _packaged() -> set[str] | None:
    """The packages the wheel holds, or None when setuptools finds them itself."""
    packages = _pyproject().get("tool", {}).get("setuptools", {}).get("packages")
    return set(packages) if isinstance(packages, list) else None


def known_gaps(modules: set[str]) -> list[str]:
    """Why the imports `modules` must fail in Colab as the project stands (empty: they must not).

    Each gap is a fact about pyproject.toml; fixing it there turns the expected failure
    into a required pass (the xfail below is strict).
    """
    gaps = []
    if "myst_nb" in {m.split(".")[0] for m in modules} and (
        "myst-nb" not in _installed_by_colab_cell()
    ):
        gaps.append(
            "imports myst_nb (for glue), which neither Colab nor the Colab cell's "
            "kdutils[sweep] installs: add myst-nb to the sweep extra in pyproject.toml"
        )
    packaged = _packaged()
    if packaged is not None:
        missing = sorted(
            m
            for m in modules
            if m.startswith("kdutils.")
            and (ROOT / m.replace(".", "/") / "__init__.py").exists()
            and m not in packaged
        )
        if missing:
            gaps.append(
                f"imports {', '.join(missing)}, which pyproject.toml's "
                f"[tool.setuptools] packages = {sorted(packaged)} leaves out of the wheel"
            )
    return gaps


def import_lines(source: Path) -> tuple[list[str], set[str]]:
    """Every import statement of a notebook's code cells but the Colab cell, and its modules."""
    from IPython.core.inputtransformer2 import TransformerManager

    python = TransformerManager()
    code_cells = [c for c in jupytext.read(source).cells if c.cell_type == "code"]
    lines, modules = [], set()
    for cell in code_cells[1:]:
        tree = ast.parse(python.transform_cell(cell.source))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules.add(node.module)
                modules.update(f"{node.module}.{a.name}" for a in node.names)
            else:
                continue
            line = ast.unparse(node)
            if line not in lines:
                lines.append(line)
    return lines, modules


def import_lines_modules(line: str) -> set[str]:
    """The modules one import statement names (as `import_lines` counts them)."""
    node = ast.parse(line).body[0]
    if isinstance(node, ast.Import):
        return {a.name for a in node.names}
    return {node.module, *(f"{node.module}.{a.name}" for a in node.names)}


# --- Text checks: cheap, no environment --------------------------------------------------


@pytest.mark.parametrize("source", NOTEBOOKS, ids=lambda p: p.name)
def test_colab_cell_is_the_books_one_and_can_be_pointed_at_this_checkout(source):
    """All Colab cells are the same cell, so running the main notebook's tests them all."""
    cell = colab_cell(source)
    assert cell.source == colab_cell(MAIN).source, (
        f"{source.name}'s first code cell differs from {MAIN.name}'s Colab cell: copy it exactly"
    )
    assert "remove-cell" in cell.metadata.get("tags", [])
    assert 'if "google.colab" in sys.modules:' in cell.source
    assert "file:///x" in rewrite(cell.source, "file:///x")


def test_colab_requirements_match_the_projects_pins():
    colab, project = _pins(COLAB_REQUIREMENTS), _pins(REQUIREMENTS)
    assert {"tensorflow-cpu", "keras", "ipykernel"} <= set(colab)
    assert not set(colab) & set(NOT_IN_COLAB), "Colab has no kdutils, papermill or jupytext"
    for name, version in colab.items():
        assert project.get(name, version) == version, f"{name}: requirements.txt pins another"


def test_known_gaps_are_computed_from_pyproject():
    assert not known_gaps({"kdutils", "kdutils.results", "numpy", "pandas"})
    assert bool(known_gaps({"myst_nb"})) == ("myst-nb" not in _installed_by_colab_cell())


# --- The emulated Colab runtime ------------------------------------------------------------


def _image_key() -> str:
    digest = hashlib.sha256()
    for part in (COLAB_REQUIREMENTS.read_bytes(), REQUIREMENTS.read_bytes()):
        digest.update(part)
    digest.update(f"{sys.version} {getattr(sys, '_base_executable', sys.executable)}".encode())
    return digest.hexdigest()[:12]


def _clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without anything that would make the checkout importable."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
    }
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.update(extra)
    return env


def _run(cmd: list[str], **kwargs) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}"


def colab_image() -> tuple[Path, dict]:
    """The Colab image for the current pins, built first if needed; (path, build record)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    image = CACHE / f"image-{_image_key()}"
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (image / "built.json").exists():
            for old in CACHE.glob("image-*"):
                shutil.rmtree(old, ignore_errors=True)
            start = time.perf_counter()
            env = _clean_env()
            python = str(image / "bin" / "python")
            _run([sys.executable, "-m", "venv", str(image)], env=env, cwd=CACHE)
            pip = [python, "-m", "pip", "install", "-q"]
            _run([*pip, "--upgrade", "pip"], env=env, cwd=CACHE)
            _run([*pip, "-r", str(COLAB_REQUIREMENTS), "-c", str(REQUIREMENTS)], env=env, cwd=CACHE)
            record = {"seconds": round(time.perf_counter() - start, 1), "key": _image_key()}
            (image / "built.json").write_text(json.dumps(record) + "\n")
        return image, json.loads((image / "built.json").read_text())


def fresh_copy(image: Path) -> Path:
    """A new virtual environment identical to `image`: hard links, so a second at most."""
    runs = CACHE / "runs"
    runs.mkdir(exist_ok=True)
    for old in runs.iterdir():  # left behind by a killed run
        if time.time() - old.stat().st_mtime > 6 * 3600:
            shutil.rmtree(old, ignore_errors=True)
    copy = runs / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    if subprocess.run(["cp", "-al", str(image), str(copy)], capture_output=True).returncode:
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(image, copy, symlinks=True)
    return copy


def checkout_copy(dest: Path) -> Path:
    """What pip needs to build kdutils from this working tree, as a git clone would hold it."""
    dest.mkdir()
    for name in ("pyproject.toml", "README.md", *(p.name for p in ROOT.glob("LICENSE*"))):
        shutil.copy2(ROOT / name, dest / name)
    shutil.copytree(
        ROOT / "kdutils", dest / "kdutils", ignore=shutil.ignore_patterns("__pycache__")
    )
    return dest


def _code(source: str, **metadata) -> nbformat.NotebookNode:
    return nbformat.v4.new_code_cell(source, metadata={"colab_test": metadata})


PROBE = """\
import importlib.util, json, os, sys
print("PROBE " + json.dumps({
    "prefix": sys.prefix,
    "pythonpath": os.environ.get("PYTHONPATH"),
    "found": {m: getattr(importlib.util.find_spec(m), "origin", None) for m in %r},
}))
"""


IMPORTS = """\
import json
failed = {}
for line in %r:
    try:
        exec(line, {})
    except Exception as error:
        failed[line] = f"{type(error).__name__}: {error}"
print("IMPORTS " + json.dumps(failed))
"""


def colab_notebook(install_target: str) -> nbformat.NotebookNode:
    """distill.md as Colab runs it, then every notebook's imports; cells tagged with their role."""
    main = jupytext.read(MAIN)
    first = next(i for i, c in enumerate(main.cells) if c.cell_type == "code")
    cells = [
        _code('import sys, types\nsys.modules["google.colab"] = types.ModuleType("google.colab")'),
        _code(PROBE % (NOT_IN_COLAB,), role="before"),
        _code(rewrite(main.cells[first].source, install_target), role="install"),
        _code(PROBE % (NOT_IN_COLAB,), role="after"),
    ]
    for cell in main.cells[first + 1 :]:
        if cell.cell_type == "code":
            cells.append(_code(cell.source, role="main"))
    for source in NOTEBOOKS:
        lines, _ = import_lines(source)
        cells.append(_code(IMPORTS % (lines,), role="imports", notebook=source.name))
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {
        "name": "colab",
        "display_name": "Colab",
        "language": "python",
    }
    return notebook


def _role(cell) -> dict:
    return cell.metadata.get("colab_test", {})


def _seconds(cell) -> float:
    from datetime import datetime

    timing = cell.metadata.get("execution", {})
    busy, idle = timing.get("iopub.status.busy"), timing.get("iopub.status.idle")
    if not (busy and idle):
        return float("nan")
    parse = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    return (parse(idle) - parse(busy)).total_seconds()


def _text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type == "error":
            parts.append(f"{out.ename}: {out.evalue}")
    return "".join(parts)


def _probe(cell) -> dict:
    line = next(li for li in _text(cell).splitlines() if li.startswith("PROBE "))
    return json.loads(line.removeprefix("PROBE "))


@pytest.fixture(scope="module")
def colab_run(tmp_path_factory):
    """Run the emulated Colab notebook once; the tests below inspect what it did."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    tmp = tmp_path_factory.mktemp("colab")
    start = time.perf_counter()
    image, built = colab_image()
    venv = fresh_copy(image)
    try:
        python = str(venv / "bin" / "python")
        spec = tmp / "kernels" / "colab"
        spec.mkdir(parents=True)
        (spec / "kernel.json").write_text(
            json.dumps(
                {
                    "argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                    "display_name": "Colab",
                    "language": "python",
                }
            )
        )
        source = checkout_copy(tmp / "alpha-distillation")
        content = tmp / "content"  # Colab's working directory
        content.mkdir()
        results = tmp / "results"
        env = _clean_env(
            KDUTILS_PROFILE="smoke",
            KDUTILS_RESULTS_DIR=str(results),
            PIP_CONSTRAINT=str(REQUIREMENTS),
            PATH=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        )
        notebook = colab_notebook(source.as_uri())
        ready = time.perf_counter()
        manager = KernelManager(
            kernel_name="colab",
            kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(tmp / "kernels")]),
        )
        client = NotebookClient(
            notebook,
            km=manager,
            timeout=900,
            allow_errors=True,
            resources={"metadata": {"path": str(content)}},
        )
        try:
            client.execute(env=env)
        finally:
            if manager.has_kernel:  # a kernel manager passed in is not shut down by nbclient
                manager.shutdown_kernel(now=True)
            # Kept for a look (pytest keeps its last three temporary folders).
            nbformat.write(notebook, tmp / "colab-executed.ipynb")
        timing = {
            "image_build_s": built["seconds"],
            "setup_s": round(ready - start, 1),
            "notebook_s": round(time.perf_counter() - ready, 1),
        }
        yield {"notebook": notebook, "venv": venv, "results": results, "timing": timing}
    finally:
        shutil.rmtree(venv, ignore_errors=True)


def _cells(run, role, **match):
    return [
        c
        for c in run["notebook"].cells
        if _role(c).get("role") == role and all(_role(c).get(k) == v for k, v in match.items())
    ]


@pytest.mark.slow
def test_colab_image_has_no_kdutils_before_the_colab_cell(colab_run):
    probe = _probe(_cells(colab_run, "before")[0])
    assert probe["pythonpath"] is None
    assert Path(probe["prefix"]) == colab_run["venv"]
    assert probe["found"] == dict.fromkeys(NOT_IN_COLAB), "the image must not have these yet"


@pytest.mark.slow
def test_colab_cell_installs_kdutils_with_pip(colab_run, record_property):
    install = _cells(colab_run, "install")[0]
    assert not [o for o in install.outputs if o.output_type == "error"], _text(install)
    probe = _probe(_cells(colab_run, "after")[0])
    site = colab_run["venv"] / "lib"
    for module in NOT_IN_COLAB:
        origin = probe["found"][module]
        assert origin and Path(origin).is_relative_to(site), f"{module} from {origin}"
        assert "site-packages" in origin
    seconds = _seconds(install)
    record_property("colab_install_seconds", seconds)
    print(f"\nColab cell (pip install of kdutils[sweep]): {seconds:.1f} s; {colab_run['timing']}")


@pytest.mark.slow
def test_main_notebook_runs_in_colab_with_the_smoke_profile(colab_run):
    cells = _cells(colab_run, "main")
    assert cells
    for cell in cells:
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert not errors, f"{cell.source[:200]}\n---\n" + "\n".join(errors[0].traceback)
    runs = sorted((colab_run["results"] / "smoke" / "runs").glob("*.json"))
    records = [json.loads(p.read_text()) for p in runs]
    from kdutils.profiles import get_profile

    (parameters,) = [
        c for c in jupytext.read(MAIN).cells if "parameters" in c.metadata.get("tags", [])
    ]
    values: dict = {}
    exec(parameters.source, values)  # the notebook's defaults: the smoke profile, one alpha
    assert values["profile"] == "smoke"
    seeds = values.get("seeds") or get_profile("smoke").seeds
    expected = [("smoke", values["alpha"], seed) for seed in seeds]
    found = [(r["config"]["profile"], r["config"]["alpha"], r["config"]["seed"]) for r in records]
    assert found == expected, [p.name for p in runs]
    assert all(0.0 <= r["test_accuracy"] <= 1.0 for r in records)


@pytest.mark.slow
@pytest.mark.parametrize("source", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_imports_resolve_after_the_colab_cell(colab_run, source, request):
    """Each import statement of the notebook works in Colab, but for the known gaps.

    A known gap (see `known_gaps`) makes the test an expected failure, strictly: once
    pyproject.toml closes the gap, the import must work.
    """
    lines, _ = import_lines(source)
    assert lines, f"{source.name} imports nothing?"
    (cell,) = _cells(colab_run, "imports", notebook=source.name)
    text = _text(cell)
    assert "IMPORTS " in text, text
    failed = json.loads(text.split("IMPORTS ", 1)[1].splitlines()[0])
    gaps = {line: known_gaps(import_lines_modules(line)) for line in lines}
    unexpected = {line: error for line, error in failed.items() if not gaps[line]}
    assert not unexpected, f"{source.name}: these imports fail in Colab: {unexpected}"
    expected = sorted({gap for line in lines for gap in gaps[line]})
    if expected:
        request.applymarker(
            pytest.mark.xfail(strict=True, reason=f"{source.name} " + "; ".join(expected))
        )
    assert not failed, f"{source.name}: {failed}"
