"""Provenance: environments, versions, commits and run times read back from stored results."""

from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from kdutils import provenance
from kdutils.profiles import config_key, get_profile
from kdutils.results import run_path, write_json, write_npz
from kdutils.sweep import page_path
from kdutils.teacher_cache import SPLITS, teacher_paths

NOT_RUN = provenance.NOT_RUN
PROFILE = get_profile("smoke").replace(alphas=(0.0, 0.5, 1.0))  # seeds (0, 1), 2 epochs
COMMIT = "a" * 40


def env(numpy="2.0.0", commit=COMMIT, python="3.11.7") -> dict:
    """An environment as `kdutils.distill.repro.environment` records it."""
    return {
        "backend": "tensorflow",
        "versions": {"keras": "3.0.0", "numpy": numpy},
        "python": python,
        "machine": "Linux x86_64, 2 CPUs",
        "git_commit": commit,
    }


NOW = env()


def write_run(directory: Path, alpha: float, seed: int, seconds: float, environment: dict):
    record = {
        "config": PROFILE.run_config(alpha, seed),
        "history": [],
        "budgets": [],
        "val_accuracy": 0.9,
        "test_accuracy": 0.9,
        "test_fidelity": 0.95,
        "teacher_test_accuracy": 0.98,
        "noisy_labels": {"recovery": 0.5, "memorisation": 0.1, "flipped": 50},
        "parameters": 20_490,
        "train_seconds": seconds,
        "environment": environment,
    }
    write_json(run_path(directory, alpha, seed), record)
    return record


def write_teacher(directory: Path, seed: int, seconds: float, environment: dict, key=None):
    config = PROFILE.teacher_config(seed)
    record = {
        "key": key or config_key(config),
        "config": config,
        "parameters": 1_433_610,
        "history": [],
        "val_accuracy": 0.97,
        "test_accuracy": 0.98,
        "train_accuracy_clean": 0.96,
        "noisy_labels": {"recovery": 0.5, "memorisation": 0.1, "flipped": 50},
        "train_seconds": seconds,
        "seconds_per_epoch": seconds / PROFILE.teacher_epochs,
        "environment": environment,
    }
    record_path, logits_path, _ = teacher_paths(directory, seed)
    write_npz(logits_path, **{split: np.zeros((3, 10), "float32") for split in SPLITS})
    write_json(record_path, record)


def write_page(pages: Path, alpha: float, duration: float, end_time: str) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["papermill"] = {
        "duration": duration,
        "end_time": end_time,
        "exception": None,
        "parameters": {"alpha": alpha, "profile": PROFILE.name},
    }
    path = page_path(pages, PROFILE, alpha)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)


@pytest.fixture
def stored(tmp_path):
    """Results: alpha 0 both seeds, alpha 0.5 seed 0, a stale alpha 1 run; teacher 0 only.

    The alpha 0.5 run was computed with another numpy; one run page (alpha 0) exists.
    """
    directory, pages = tmp_path / "results" / PROFILE.name, tmp_path / "pages"
    write_run(directory, 0.0, 0, 10.0, env())
    write_run(directory, 0.0, 1, 20.0, env())
    write_run(directory, 0.5, 0, 30.0, env(numpy="1.26.4"))
    stale = write_run(directory, 1.0, 0, 99.0, env())
    stale["config"]["epochs"] = 3  # computed with another config: must be ignored
    write_json(run_path(directory, 1.0, 0), stale)
    write_teacher(directory, 0, 40.0, env())
    write_teacher(directory, 1, 50.0, env(), key="stale")  # another config: ignored
    write_page(pages, 0.0, 125.0, "2026-01-02T03:04:05.678+00:00")
    return directory, pages


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, NOT_RUN),
        (0.04, "0.0 s"),
        (42, "42.0 s"),
        (59.97, "1 min 00 s"),
        (185, "3 min 05 s"),
        (3599.6, "1 h 00 min"),
        (7620, "2 h 07 min"),
    ],
)
def test_format_duration(seconds, text):
    assert provenance.format_duration(seconds) == text


def test_stored_results_keep_only_what_matches_the_profile(stored):
    directory, _ = stored
    records, teachers = provenance.stored_results(PROFILE, directory)
    assert [(r["config"]["alpha"], r["config"]["seed"]) for r in records] == [
        (0.0, 0),
        (0.0, 1),
        (0.5, 0),
    ]
    assert list(teachers) == [0]
    assert teachers[0].record["train_seconds"] == 40.0
    assert teachers[0].logits["test"].shape == (3, 10)
    environments = provenance.recorded_environments(records, teachers)
    assert len(environments) == 4
    assert provenance.stored_results(PROFILE, directory.parent / "nothing") == ([], {})


def test_page_metadata(stored):
    _, pages = stored
    meta = provenance.page_metadata(PROFILE, 0.0, pages)
    assert meta["duration"] == 125.0
    assert meta["parameters"]["alpha"] == 0.0
    assert provenance.page_metadata(PROFILE, 0.5, pages) == {}
    assert provenance.page_seconds(PROFILE, pages) == {0.0: 125.0, 0.5: None, 1.0: None}


def test_recorded_values_for_prose():
    envs = [env(python="3.11.7"), env(python="3.12.1"), env(commit=None)]
    assert provenance.recorded_value(envs, "python") == "3.11.7; 3.12.1"
    assert provenance.recorded_value(envs, "git_commit") == COMMIT
    assert provenance.recorded_value([env(commit=None)], "git_commit") == "not recorded"
    assert provenance.recorded_value([], "python") == NOT_RUN
    assert provenance.recorded_versions(envs) == "keras 3.0.0, numpy 2.0.0"
    assert provenance.recorded_versions([env(), env(numpy="1.26.4")]) == (
        "keras 3.0.0, numpy 1.26.4; keras 3.0.0, numpy 2.0.0"
    )
    assert provenance.recorded_versions([]) == NOT_RUN


def test_versions_table_names_a_mismatch(stored):
    directory, _ = stored
    recorded = provenance.recorded_environments(*provenance.stored_results(PROFILE, directory))
    now = NOW | {"versions": {"keras": "3.0.0", "numpy": "2.0.0", "jax": "0.4.0"}}
    table = provenance.versions_table(now, recorded)
    assert list(table.columns) == ["now", "in the results", "same"]
    assert table.loc["numpy"].tolist() == ["2.0.0", "1.26.4; 2.0.0", "no"]
    assert table.loc["keras", "same"] == "yes"
    assert table.loc["jax"].tolist() == ["0.4.0", "—", "not recorded"]
    table = provenance.versions_table({"versions": {"keras": "3.0.0"}}, [env()])
    assert table.loc["numpy"].tolist() == ["—", "2.0.0", "not installed now"]
    assert set(provenance.versions_table(NOW, [])["same"]) == {"not recorded"}


def test_setup_table():
    table = provenance.setup_table(NOW, [env(), env()])
    assert list(table.index) == ["Keras backend", "Python", "machine", "git commit"]
    assert set(table["same"]) == {"yes"}
    table = provenance.setup_table(NOW, [env(commit=None, python="3.12.1")])
    assert table.loc["git commit"].tolist() == [COMMIT, "—", "not recorded"]
    assert table.loc["Python", "same"] == "no"


def test_timing_summary(stored):
    directory, pages = stored
    summary = provenance.timing_summary(PROFILE, directory, pages)
    assert summary == {
        "profile": "smoke",
        "machine": "Linux x86_64, 2 CPUs",
        "backend": "tensorflow",
        "python": "3.11.7",
        "versions": "keras 3.0.0, numpy 1.26.4; keras 3.0.0, numpy 2.0.0",
        "teachers": "1 of 1",  # smoke shares one teacher between its seeds
        "teacher_seconds": "40.0 s",
        "teacher_epoch_seconds": "40.0 s",  # smoke teachers train one epoch
        "runs": "3 of 6",
        "student_seconds": "1 min 00 s",
        "student_epoch_seconds": "10.0 s",  # mean of 10/2, 20/2, 30/2
        "pages": "1 of 3",
        "pages_seconds": "2 min 05 s",
        "sweep_seconds": NOT_RUN,
        "sweep_invocations": NOT_RUN,
        "sweep_longest_started": NOT_RUN,
    }
    write_json(
        directory / "sweep.json",
        {
            "sessions": [
                {"started": "2026-01-01T10:00:00+00:00", "seconds": 1000.0},
                {"started": "2026-01-02T10:00:00+00:00", "seconds": 5.0},
            ]
        },
    )
    summary = provenance.timing_summary(PROFILE, directory, pages)
    assert summary["sweep_seconds"] == "16 min 45 s" and summary["sweep_invocations"] == "2"
    assert summary["sweep_longest_started"] == "2026-01-01 10:00 UTC"
    empty = provenance.timing_summary(PROFILE, directory.parent / "nothing", pages.parent / "x")
    assert empty["runs"] == "0 of 6" and empty["teachers"] == "0 of 1"
    assert empty["machine"] == empty["versions"] == NOT_RUN
    assert empty["student_seconds"] == empty["pages_seconds"] == NOT_RUN


def test_teacher_times(stored):
    directory, _ = stored
    table = provenance.teacher_times(PROFILE, directory)
    assert table.index.name == "seed" and list(table.index) == [0]
    assert table.loc[0].tolist() == [1, 40.0, 40.0]
    assert provenance.teacher_times(PROFILE, directory.parent / "nothing").empty


def test_per_alpha_times(stored):
    directory, pages = stored
    table = provenance.per_alpha_times(PROFILE, directory, pages)
    assert list(table.index) == [0.0, 0.5, 1.0]
    assert list(table.columns) == ["runs", "training (s)", "per epoch (s)", "papermill page (s)"]
    assert table.loc[0.0].tolist() == [2, 30.0, 7.5, 125.0]
    assert table.loc[0.5].tolist() == [1, 30.0, 15.0, NOT_RUN]
    assert table.loc[1.0].tolist() == [0, NOT_RUN, NOT_RUN, NOT_RUN]
    empty = provenance.per_alpha_times(PROFILE, directory.parent / "nothing", pages)
    assert empty["runs"].tolist() == [0, 0, 0]
    assert empty["training (s)"].tolist() == [NOT_RUN] * 3


def test_run_times(stored):
    directory, pages = stored
    table = provenance.run_times(PROFILE, directory, pages)
    assert list(table.columns) == [
        "page (s)",
        "page finished (UTC)",
        "seed 0 training (s)",
        "seed 1 training (s)",
    ]
    assert table.loc[0.0].tolist() == [125.0, "2026-01-02 03:04", 10.0, 20.0]
    assert table.loc[0.5].tolist() == [NOT_RUN, NOT_RUN, 30.0, NOT_RUN]
    assert table.loc[1.0].tolist() == [NOT_RUN] * 4  # the stale run does not count


def test_profiles_table():
    table = provenance.profiles_table()
    assert list(table.columns) == ["smoke", "default", "full"]
    assert "name" not in table.index
    assert table.loc["seeds", "default"] == ", ".join(map(str, range(10)))
    assert table.loc["alphas", "smoke"].startswith("0, 0.1, 0.2")
    assert table.loc["train_size", "full"] == 10_000
    assert isinstance(table, pd.DataFrame)
