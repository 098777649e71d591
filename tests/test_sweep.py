"""The sweep: papermill per alpha, resume after a kill, failures named, nothing duplicated."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from kdutils import sweep
from kdutils.profiles import get_profile
from kdutils.results import ROOT, read_json

# A tiny smoke variant: 200 training images, one epoch, one seed.
ARGS = ["--profile", "smoke", "--seeds", "0", "--train-size", "200", "--epochs", "1"]


def sweep_command(tmp: Path, *alphas: float, extra=()) -> list[str]:
    return [
        sys.executable,
        "-m",
        "kdutils.sweep",
        *ARGS,
        "--alphas",
        *map(str, alphas),
        "--results-dir",
        str(tmp / "results"),
        "--pages-dir",
        str(tmp / "pages"),
        *extra,
    ]


def env() -> dict:
    return os.environ | {"PYTHONPATH": str(ROOT)}


def run_sweep(tmp: Path, *alphas: float, extra=(), timeout=600) -> subprocess.CompletedProcess:
    """`python -m kdutils.sweep` on the tiny smoke variant, its output captured."""
    command = sweep_command(tmp, *alphas, extra=extra)
    return subprocess.run(command, env=env(), capture_output=True, text=True, timeout=timeout)


def test_notebook_parameters_round_trip():
    profile = get_profile("smoke").override(seeds=[0], train_size=200, epochs=1)
    params = sweep.notebook_parameters(profile, 0.3)
    assert params == {
        "profile": "smoke",
        "alpha": 0.3,
        "seeds": [0],
        "train_size": 200,
        "epochs": 1,
    }
    rebuilt = get_profile(params["profile"]).override(
        **{k: v for k, v in params.items() if k not in ("profile", "alpha")}
    )
    assert rebuilt == profile
    with pytest.raises(ValueError, match="cannot set"):
        sweep.notebook_parameters(get_profile("smoke").replace(batch_size=7), 0.3)


@pytest.mark.slow
def test_killed_sweep_resumes_without_loss_or_duplicates(tmp_path):
    runs = tmp_path / "results" / "smoke" / "runs"
    first = runs / "alpha_0p0_seed0.json"
    proc = subprocess.Popen(
        sweep_command(tmp_path, 0.0, 1.0),
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert first.exists(), "the first run never finished"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver, papermill and its kernel
        proc.wait()
    kept = first.read_bytes()

    # Rerun with a run that fails in its notebook (its record's path is taken by a folder, so
    # the record cannot be written; `--trainer separate` trains in the notebooks);
    # --keep-going runs the rest. (A bad alpha such as 1.5 is refused by the command line
    # before anything runs: tests/test_reliability_inputs.py.)
    (runs / "alpha_0p5_seed0.json").mkdir()
    done = run_sweep(tmp_path, 0.0, 0.5, 1.0, extra=["--keep-going", "--trainer", "separate"])
    assert done.returncode == 1, done.stdout + done.stderr
    assert "failed: [0.5]" in done.stderr
    failed_page = tmp_path / "results" / "smoke" / "failed" / "alpha_0p5.ipynb"
    assert f"partial executed notebook: {failed_page}" in done.stdout
    assert "Is a directory" in failed_page.read_text()
    (runs / "alpha_0p5_seed0.json").rmdir()

    assert first.read_bytes() == kept  # the finished run was not redone
    assert sorted(p.name for p in runs.glob("*.json")) == [
        "alpha_0p0_seed0.json",
        "alpha_1p0_seed0.json",
    ]
    pages = sorted(p.name for p in (tmp_path / "pages" / "smoke").iterdir())
    assert pages == ["alpha_0p0.ipynb", "alpha_1p0.ipynb"]  # no partial or temporary pages
    record = read_json(runs / "alpha_1p0_seed0.json")
    assert record["config"]["alpha"] == 1.0 and record["config"]["data"]["train_size"] == 200
    page = nbformat.read(tmp_path / "pages" / "smoke" / "alpha_1p0.ipynb", as_version=4)
    assert page.cells[0].source.startswith("# Run: α = 1 (smoke profile)")
    assert page.metadata["papermill"]["parameters"]["alpha"] == 1.0

    # A third run finds everything done, trains nothing and logs no session.
    again = run_sweep(tmp_path, 0.0, 1.0, timeout=300)
    assert again.returncode == 0 and "nothing to train or execute" in again.stdout
    sessions = read_json(tmp_path / "results" / "smoke" / "sweep.json")["sessions"]
    assert [s["failed_alphas"] for s in sessions] == [[0.5]]  # the killed one never logged
    assert sessions[0]["seconds"] > 0


def test_fused_sweep_writes_one_page_and_one_record_per_alpha(tmp_path):
    # the pages run side by side on local Ray, as `make book` runs them
    done = run_sweep(tmp_path, 0.0, 0.5, 1.0, extra=["--fused"])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "fused: 3 students of seed 0 trained together" in done.stdout
    runs = sorted((tmp_path / "results" / "smoke" / "runs").glob("*.json"))
    assert [p.name for p in runs] == [
        "alpha_0p0_seed0.json",
        "alpha_0p5_seed0.json",
        "alpha_1p0_seed0.json",
    ]
    records = [read_json(p) for p in runs]
    assert all(r["fused_with"] == [0.0, 0.5, 1.0] for r in records)
    assert len({r["test_accuracy"] for r in records}) > 1  # three different students
    pages = sorted((tmp_path / "pages" / "smoke").glob("*.ipynb"))
    assert [p.stem for p in pages] == ["alpha_0p0", "alpha_0p5", "alpha_1p0"]
    page = nbformat.read(pages[1], as_version=4)
    assert "Run: α = 0.5 (smoke profile)" in page.cells[0].source
    # The page reports the stored runs; it trained nothing itself.
    assert records[1]["train_seconds"] > 0
    again = run_sweep(tmp_path, 0.0, 0.5, 1.0, extra=["--fused"])
    assert "nothing to train or execute" in again.stdout


def test_each_seeds_fused_students_are_a_task_of_their_own(tmp_path):
    # two seeds: two student tasks, which local Ray runs side by side (a core each)
    done = run_sweep(tmp_path, 0.0, 1.0, extra=["--fused", "--seeds", "0", "1"])
    assert done.returncode == 0, done.stderr[-2000:]
    for seed in (0, 1):
        assert f"fused: 2 students of seed {seed} trained together" in done.stdout
    runs = sorted((tmp_path / "results" / "smoke" / "runs").glob("*.json"))
    assert [p.name for p in runs] == [
        f"alpha_{a}_seed{s}.json" for a in ("0p0", "1p0") for s in (0, 1)
    ]
    assert all(read_json(p)["fused_with"] == [0.0, 1.0] for p in runs)


TINY = """# %% [markdown]
# # Tiny

# %% tags=["parameters"]
x = 1

# %%
assert x > 0, "x must be positive"
print(f"double: {2 * x}")
"""


def test_page_whose_kernel_never_ran_a_cell_is_started_again(tmp_path, monkeypatch):
    """Kernels started side by side can race for a port and die at start-up: start another."""
    import papermill

    real, calls, died = papermill.execute_notebook, [], []

    def dies_once_at_start(source, output, **kwargs):
        calls.append(kwargs["parameters"])
        if not died:  # what papermill leaves then: the notebook, no cell executed
            died.append(True)
            nbformat.write(nbformat.read(source, as_version=4), output)
            raise RuntimeError("Kernel died before replying to kernel_info")
        return real(source, output, **kwargs)

    monkeypatch.setattr(papermill, "execute_notebook", dies_once_at_start)
    notebook = tmp_path / "tiny.py"
    notebook.write_text(TINY)
    failed = tmp_path / "failed"
    page = sweep.execute_page(notebook, {"x": 21}, tmp_path / "tiny.ipynb", failed, "Run: tiny")
    assert len(calls) == 2
    cells = nbformat.read(page, as_version=4).cells
    text = "".join(o.get("text", "") for c in cells for o in c.get("outputs", []))
    assert "double: 42" in text
    assert not failed.exists()

    # A cell that fails is the notebook's own error: no second start, the page kept in failed/.
    calls.clear()
    with pytest.raises(Exception, match="x must be positive"):
        sweep.execute_page(notebook, {"x": -1}, tmp_path / "bad.ipynb", failed, "Run: bad")
    assert len(calls) == 1 and (failed / "bad.ipynb").exists()
    assert not (tmp_path / "bad.ipynb").exists()


def test_default_sweep_trains_every_alpha_and_seed_together(tmp_path):
    # The batched trainer, named: on CPU `--trainer auto` picks the fused one (TRAINERS).
    extra = ["--seeds", "0", "1", "--trainer", "batched"]
    done = run_sweep(tmp_path, 0.0, 1.0, extra=extra, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "batched: 4 students trained together" in done.stdout
    runs = sorted((tmp_path / "results" / "smoke" / "runs").glob("*.json"))
    assert len(runs) == 4
    pairs = [[0.0, 0], [1.0, 0], [0.0, 1], [1.0, 1]]
    assert all(read_json(p)["trained_with"] == pairs for p in runs)
    pages = sorted((tmp_path / "pages" / "smoke").glob("*.ipynb"))
    assert [p.stem for p in pages] == ["alpha_0p0", "alpha_1p0"]
    again = run_sweep(tmp_path, 0.0, 1.0, extra=["--seeds", "0", "1"])
    assert "nothing to train or execute" in again.stdout and "batched:" not in again.stdout
