"""The Ray engine (kdutils.graph): shared teachers once, worker deaths retried, notebook
errors reported once. On a local Ray of 2 CPUs, with tiny tasks."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kdutils import graph, sweep
from kdutils.profiles import get_profile
from kdutils.results import ROOT, read_json, write_json

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """One local Ray for the module; this module's functions travel by value to workers."""
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield
    ray.shutdown()


def count(path: Path) -> int:
    """How many times a task appended a line to `path` (its runs)."""
    return len(path.read_text().splitlines()) if path.exists() else 0


def record_times(profile, seed: int, directory: Path, *teacher) -> tuple[int, int]:
    """A teacher's user: the teacher record's mtime before and after asking the cache for it
    (`get_teacher` trains it if there is none)."""
    from kdutils.teacher_cache import get_teacher, main_spec

    path = main_spec(profile, seed, directory).record_path
    before = path.stat().st_mtime_ns
    get_teacher(profile, seed, directory)
    return before, path.stat().st_mtime_ns


def test_no_pool_and_ray_imported_only_when_there_is_work():
    options = {a.dest for a in sweep.parser()._actions}
    assert "address" in options and not options & {"jobs", "engine"}
    assert not hasattr(sweep, "in_processes")
    assert sweep.parser().parse_args(["--address", "auto"]).address == "auto"
    code = "import sys, kdutils.sweep; assert 'ray' not in sys.modules"
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_study_pages_refuse_overrides_they_would_not_run(capsys):
    with pytest.raises(SystemExit):
        sweep.main(["--profile", "smoke", "--study", "audit", "--seeds", "0"])
    assert "cannot be combined with --study" in capsys.readouterr().err


def test_studies_sharing_a_teacher_need_one_teacher_task(tmp_path, monkeypatch):
    """calibration and temperature distil the same teachers (temperature changes only the
    students): the graph trains each once, before the pages of both."""
    monkeypatch.setenv("KDUTILS_RESULTS_DIR", str(tmp_path))
    from kdutils.studies import grid

    profile = get_profile("smoke")
    tasks = graph.study_tasks(profile, ["calibration", "temperature"], tmp_path, tmp_path)
    teachers = [t for t in tasks if t.key.startswith("teacher ")]
    assert len(teachers) == len(grid.variant(profile).teacher_seeds()) == 2
    pages = [t for t in tasks if t.key.startswith("page ")]
    assert {p.key.split("/")[0] for p in pages} == {"page calibration", "page temperature"}
    assert all(set(p.needs) == {t.key for t in teachers} for p in pages)
    assert len({t.key for t in tasks}) == len(tasks)


def test_teacher_shared_by_two_studies_is_trained_once(tmp_path):
    small = get_profile("smoke").override(seeds=[0], train_size=200, epochs=1)
    small = small.replace(teacher_train_size=400, validation_size=200, test_size=200)
    other = small.replace(temperature=small.temperature + 1)  # a student-only change
    teachers: dict = {}
    needs = [graph.teacher_task(teachers, p, 0, tmp_path) for p in (small, other)]
    assert len(teachers) == 1 and needs[0] == needs[1]
    users = [
        graph.Task(f"user {i}", record_times, (p, 0, tmp_path), needs[0])
        for i, p in enumerate((small, other))
    ]
    assert graph.run_tasks([*teachers.values(), *users]) == []
    times = ray.get([ray.remote(record_times).remote(p, 0, tmp_path) for p in (small, other)])
    assert len({t for pair in times for t in pair}) == 1  # written once, by the teacher task
    assert graph.teacher_task({}, other, 0, tmp_path) == ()  # cached: nothing to submit


def dies_once(marker: Path, runs: Path, record: Path) -> str:
    """Kill this worker with SIGKILL the first time; then write `record`."""
    with runs.open("a") as f:
        f.write(f"{os.getpid()}\n")
    if not marker.exists():
        marker.touch()
        os.kill(os.getpid(), 9)
    write_json(record, {"runs": count(runs)})
    return "written"


def test_killed_worker_is_retried_and_the_graph_completes(tmp_path):
    marker, runs, record = tmp_path / "marker", tmp_path / "runs.txt", tmp_path / "r.json"
    tasks = [
        graph.Task("dies once", dies_once, (marker, runs, record), trains=True),
        graph.Task("reads", read_json, (record,), ("dies once",)),
    ]
    assert graph.run_tasks(tasks) == []
    assert count(runs) == 2
    assert read_json(record) == {"runs": 2}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no partials


NOTEBOOK = """# %% [markdown]
# # Tiny

# %% tags=["parameters"]
x = 1
runs = ""

# %%
with open(runs, "a") as f:
    f.write("run\\n")
assert x > 0, "x must be positive"
"""


def test_notebook_error_is_reported_kept_and_not_retried(tmp_path):
    notebook, runs, failed = tmp_path / "tiny.py", tmp_path / "runs.txt", tmp_path / "failed"
    notebook.write_text(NOTEBOOK)
    args = (notebook, {"x": -1, "runs": str(runs)}, tmp_path / "bad.ipynb", failed, "Run: bad")
    tasks = [graph.Task("page bad", sweep.execute_page, args, label="bad")]
    assert graph.run_tasks(tasks, keep_going=True) == ["bad"]
    assert count(runs) == 1  # not retried
    assert "x must be positive" in (failed / "bad.ipynb").read_text()
    assert not (tmp_path / "bad.ipynb").exists()


def test_running_counts_the_tasks_in_flight_that_have_started():
    started = ray.remote(graph.Started).options(num_cpus=0).remote()
    teacher = graph.Task("teacher", print, (), trains=True, wide=True)
    page = graph.Task("page", print, ())
    flying = {"t": teacher, "p": page}
    assert graph.running(ray, started, flying) == 0  # submitted, waiting for CPUs
    ray.get(started.add.remote("teacher"))
    assert graph.running(ray, started, flying) == 1  # the teacher, however many CPUs it holds
    ray.get(started.add.remote("page"))
    assert graph.running(ray, started, flying) == 2
    assert graph.running(ray, started, {"p": page}) == 1  # the teacher ended
