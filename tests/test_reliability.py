"""Caches, records, logs and pages are checked on load; logs lose nothing; no duplicate work;
no machine paths in committed files (issue 17)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest

from kdutils import sweep
from kdutils.distill.data import arrays_sha256
from kdutils.experiment import load_run
from kdutils.profiles import config_key, get_profile
from kdutils.results import (
    ROOT,
    CacheWarning,
    append_log,
    portable,
    read_json,
    read_npz,
    run_path,
    write_json,
    write_npz,
)
from kdutils.teacher_cache import SPLITS, load_teacher, load_weights, teacher_paths

TINY = get_profile("smoke").override(seeds=[0], train_size=200, epochs=1)


def env() -> dict:
    return os.environ | {"PYTHONPATH": str(ROOT)}


# --- records and caches are checked on load ------------------------------------------------


@pytest.mark.parametrize(
    "text, problem",
    [("[1, 2]", "JSON list, not an object"), ('{"a": ', "not valid JSON"), ("", "not valid")],
)
def test_a_record_that_is_not_a_json_object_is_named_and_treated_as_missing(
    tmp_path, text, problem
):
    path = run_path(tmp_path, 0.5, 0)
    path.parent.mkdir(parents=True)
    path.write_text(text)
    with pytest.warns(CacheWarning, match=re.escape(str(path))) as caught:
        assert load_run(TINY, 0.5, 0, tmp_path) is None  # was: AttributeError, no file named
    assert problem in str(caught[0].message)
    assert read_json(tmp_path / "missing.json") is None  # missing: no warning


def test_a_truncated_or_non_finite_npz_is_named_and_treated_as_missing(tmp_path):
    path = write_npz(tmp_path / "a.npz", x=np.ones((4, 3), "f4"))
    assert read_npz(path, ("x",))["x"].shape == (4, 3)
    with pytest.warns(CacheWarning, match="lacks|incomplete"):
        assert read_npz(path, ("x", "y")) is None
    path.write_bytes(path.read_bytes()[:40])
    with pytest.warns(CacheWarning, match=re.escape(str(path))):
        assert read_npz(path, ("x",)) is None
    write_npz(path, x=np.array([1.0, np.nan]))
    with pytest.warns(CacheWarning, match="non-finite"):
        assert read_npz(path, ("x",)) is None


def _store_teacher(directory: Path) -> dict[str, np.ndarray]:
    """A stand-in cached teacher for TINY's seed 0, written as `train_teacher` writes one."""
    logits = {
        s: np.random.default_rng(i).normal(size=(8, 10)).astype("f4") for i, s in enumerate(SPLITS)
    }
    record_path, logits_path, _ = teacher_paths(directory, 0)
    write_npz(logits_path, **logits)
    key = config_key(TINY.teacher_config(0))
    write_json(record_path, {"key": key, "logits_sha256": arrays_sha256(logits)})
    return logits


def test_a_corrupt_teacher_cache_is_named_and_rebuilt_not_raised(tmp_path):
    logits = _store_teacher(tmp_path)
    _, logits_path, _ = teacher_paths(tmp_path, 0)
    np.testing.assert_array_equal(load_teacher(TINY, 0, tmp_path).logits["val"], logits["val"])

    for broken in (
        b"",
        logits_path.read_bytes()[:100],
    ):  # empty, truncated: was EOFError, BadZipFile
        logits_path.write_bytes(broken)
        with pytest.warns(CacheWarning, match=re.escape(str(logits_path))):
            assert load_teacher(TINY, 0, tmp_path) is None

    edited = logits | {"test": logits["test"] + 1}  # well-formed, but not what was stored
    write_npz(logits_path, **edited)
    with pytest.warns(CacheWarning, match="does not match the checksum in seed0.json"):
        assert load_teacher(TINY, 0, tmp_path) is None


def test_unloadable_teacher_weights_are_named_and_rebuilt_not_raised(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    path = tmp_path / "seed0.weights.h5"
    model.save_weights(path)
    assert load_weights(model, path)
    path.write_bytes(path.read_bytes()[:500])  # truncated
    with pytest.warns(CacheWarning, match=re.escape(str(path))):
        assert not load_weights(model, path)
    assert not load_weights(model, tmp_path / "missing.weights.h5")  # missing: no warning


# --- executed pages -------------------------------------------------------------------------


def _page(path: Path, ran: bool = True, error: bool = False) -> Path:
    cell = nbformat.v4.new_code_cell("print(1)", execution_count=1 if ran else None)
    if error:
        cell.outputs = [nbformat.v4.new_output("error", ename="E", evalue="x", traceback=[])]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# T"), cell])
    nbformat.write(notebook, path)
    return path


def test_only_a_complete_executed_page_counts_as_done(tmp_path):
    assert sweep.page_complete(_page(tmp_path / "good.ipynb"))
    assert not sweep.page_complete(tmp_path / "missing.ipynb")
    truncated = _page(tmp_path / "truncated.ipynb")
    truncated.write_bytes(truncated.read_bytes()[:-40])
    cases = {
        truncated: "not a valid notebook",
        _page(tmp_path / "unrun.ipynb", ran=False): "never ran",
        _page(tmp_path / "failed.ipynb", error=True): "failed",
    }
    for page, problem in cases.items():
        with pytest.warns(CacheWarning, match=re.escape(str(page))) as caught:
            assert not sweep.page_complete(page)
        assert problem in str(caught[0].message)


# --- logs that lose nothing -----------------------------------------------------------------

APPEND = """
import sys
from kdutils.results import append_log
for i in range(int(sys.argv[3])):
    append_log(sys.argv[1], {"writer": sys.argv[2], "i": i})
"""


@pytest.mark.slow
def test_concurrent_log_writers_lose_no_entry(tmp_path):
    log = tmp_path / "sweep.json"
    writers = [
        subprocess.Popen([sys.executable, "-c", APPEND, str(log), name, "200"], env=env())
        for name in ("a", "b")
    ]
    assert [w.wait(timeout=300) for w in writers] == [0, 0]
    sessions = read_json(log)["sessions"]
    assert len(sessions) == 400
    for name in ("a", "b"):
        assert [s["i"] for s in sessions if s["writer"] == name] == list(range(200))


def test_a_corrupt_log_is_moved_aside_never_overwritten(tmp_path):
    log = tmp_path / "sweep.json"
    append_log(log, {"n": 1})
    log.write_text(log.read_text()[:-5])  # a truncated log
    kept = log.read_bytes()
    with pytest.warns(CacheWarning, match="moved it aside"):
        append_log(log, {"n": 2})
    (aside,) = tmp_path.glob("sweep.json.corrupt-*")
    assert aside.read_bytes() == kept
    assert read_json(log) == {"sessions": [{"n": 2}]}
    log.write_text('{"sessions": 3}')  # valid JSON, but not a log
    with pytest.warns(CacheWarning, match="moved it aside"):
        append_log(log, {"n": 3})
    assert len(list(tmp_path.glob("sweep.json.corrupt-*"))) == 2


# --- no machine paths -----------------------------------------------------------------------

# POSIX homes and scratch folders, and Windows drives (C:\ or, JSON-escaped, C:\\)
MACHINE_PATH = re.compile(
    r"(?<![\w.])(/work/|/home/|/root/|/tmp/|/Users/)|(?<![\w\\])[A-Z]:\\{1,2}\w"
)


def test_committed_results_and_pages_hold_no_machine_paths():
    listed = subprocess.run(
        ["git", "ls-files", "results", "book/runs"], cwd=ROOT, capture_output=True, text=True
    )
    if listed.returncode or not listed.stdout:
        pytest.skip("not a git checkout with committed results")
    found = []
    for name in listed.stdout.split():
        if name.endswith((".json", ".ipynb", ".md", ".csv", ".txt")):
            for number, line in enumerate((ROOT / name).read_text().splitlines(), start=1):
                if MACHINE_PATH.search(line):
                    found.append(f"{name}:{number}: {line.strip()[:120]}")
    assert not found, "absolute machine paths in committed files:\n" + "\n".join(found)


def test_paths_and_commands_are_stored_relative_to_the_repository(monkeypatch):
    monkeypatch.setenv("KDUTILS_DATA_DIR", "/data/copies")
    assert portable(ROOT / "results" / "default") == "results/default"
    assert portable("/data/copies/mnist") == "$KDUTILS_DATA_DIR/mnist"
    assert portable(Path.home() / "x") == "~/x"
    argv = [str(ROOT / "kdutils" / "sweep.py"), "--profile", "default", "--pages-dir"]
    command = sweep.command_line([*argv, str(ROOT / "book" / "runs"), "--fused"])
    assert command == "python -m kdutils.sweep --profile default --pages-dir book/runs --fused"
    assert not MACHINE_PATH.search(json.dumps(command))


# --- no duplicate work: one task per teacher and per seed's students ----------------------


def test_a_sweeps_graph_gives_each_teacher_and_each_seeds_students_one_task(tmp_path):
    from kdutils import graph

    profile = get_profile("smoke").override(seeds=[0, 1], train_size=200, epochs=1)
    pages = tmp_path / "pages"
    tasks = graph.sweep_tasks(profile, [0.0, 1.0], tmp_path / "smoke", pages, "fused")
    assert len({t.key for t in tasks}) == len(tasks)
    teachers = [t for t in tasks if t.key.startswith("teacher ")]
    assert len(teachers) == len(profile.teacher_seeds()) == 1  # both seeds share one
    students = [t for t in tasks if t.key.startswith("students ")]
    assert [t.args[2] for t in students] == [[0], [1]]
    assert all(t.needs == (teachers[0].key,) for t in students)
    alpha_pages = [t for t in tasks if t.key.startswith("page ")]
    assert [t.label for t in alpha_pages] == [0.0, 1.0]
    assert all(set(t.needs) == {s.key for s in students} for t in alpha_pages)


# --- a rerun after a corrupted file completes -----------------------------------------------


def _sweep(tmp: Path) -> subprocess.CompletedProcess:
    args = ["--profile", "smoke", "--seeds", "0", "--train-size", "200", "--epochs", "1"]
    paths = ["--results-dir", str(tmp / "results"), "--pages-dir", str(tmp / "pages")]
    command = [sys.executable, "-m", "kdutils.sweep", *args, "--alphas", "0.5", *paths]
    return subprocess.run(command, env=env(), capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_a_rerun_survives_corrupt_teacher_logits_a_corrupt_log_and_a_truncated_page(tmp_path):
    first = _sweep(tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    results = tmp_path / "results" / "smoke"
    _, logits_path, _ = teacher_paths(results, 0)
    page, log = tmp_path / "pages" / "smoke" / "alpha_0p5.ipynb", results / "sweep.json"
    logits_path.write_bytes(logits_path.read_bytes()[:100])
    page.write_bytes(page.read_bytes()[:-200])
    log.write_text('{"sessions": [')

    again = _sweep(tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    for path in (logits_path, page):
        assert f"{path}: " in again.stderr  # the warning names the file
    assert load_teacher(TINY, 0, results) is not None  # the teacher was trained again
    assert sweep.page_complete(page)  # and the page executed again
    asides = list(results.glob("sweep.json.corrupt-*"))  # the corrupt log is kept, not lost
    assert [a.read_text() for a in asides] == ['{"sessions": ['] or log.read_text() == (
        '{"sessions": ['
    )
