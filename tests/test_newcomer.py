"""A newcomer's first build: it fails fast without data, and from committed results it trains
nothing and leaves the checkout as it was, even where floats differ in their last bit."""

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from kdutils import preflight
from kdutils.experiment import load_run
from kdutils.profiles import canonical, config_key, get_profile, same_config
from kdutils.results import ROOT, run_path
from kdutils.studies import theory

DEFAULT = ROOT / "results" / "default"
VENV = Path(sys.prefix)


def no_data_env(tmp_path: Path) -> dict:
    """An environment in which no dataset can be found (unless a Debian package has it)."""
    for name in ("data", "cache"):
        (tmp_path / name).mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "KDUTILS_RESULTS_DIR"}
    return env | {
        "KDUTILS_DATA_DIR": str(tmp_path / "data"),
        "KDUTILS_CACHE_DIR": str(tmp_path / "cache"),
        "KDUTILS_NO_DOWNLOAD": "1",
    }


def fresh_clone(tmp_path: Path) -> Path:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    return clone


def git_status(clone: Path) -> str:
    return subprocess.run(
        ["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True, check=True
    ).stdout


def run_group(command: list[str], env: dict, timeout: float) -> tuple[int, str, str, float]:
    """(exit status, stdout, stderr, seconds) of `command`; on a timeout its whole process
    group is killed (make's children too) and the status is None."""
    start = time.monotonic()
    proc = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return None, out, err, time.monotonic() - start
    return proc.returncode, out, err, time.monotonic() - start


def test_check_data_fails_fast_naming_the_ways_to_provide_data(tmp_path):
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "kdutils.sweep", "--profile", "default", "--check-data", "book"],
        env=no_data_env(tmp_path) | {"PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    seconds = time.monotonic() - start
    assert done.returncode == 1, done.stdout + done.stderr
    assert seconds < 60, f"the check took {seconds:.0f} s"
    message = done.stderr
    assert "Stopped before building" in message and "'mnist' not found" in message
    assert f"{tmp_path / 'data' / 'mnist'} (data_dir / KDUTILS_DATA_DIR)" in message
    assert "set KDUTILS_DATA_DIR=<dir>" in message
    assert "allow internet access" in message
    assert "chapter experiments" in message  # what needs the dataset


@pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")
@pytest.mark.skipif(sys.prefix == sys.base_prefix, reason="make needs the tests' venv as VENV")
def test_make_book_without_data_stops_within_a_minute(tmp_path):
    clone = fresh_clone(tmp_path)
    stamp = VENV / ".requirements-stamp"  # -o: never rebuild the venv running these tests
    command = ["make", "-C", str(clone), f"VENV={VENV}", "-o", str(stamp), "book"]
    env = no_data_env(tmp_path)
    del env["KDUTILS_DATA_DIR"]  # a plain `make book`, as a newcomer types it
    status, out, err, seconds = run_group(command, env, timeout=120)
    assert status not in (None, 0), out[-2000:]
    assert seconds < 60, f"make book took {seconds:.0f} s to fail"
    assert "KDUTILS_DATA_DIR" in err
    assert "jupyter-book" not in out  # it stopped before the sweep and the build
    assert git_status(clone) == ""


def test_sweep_from_committed_results_trains_nothing_and_changes_nothing(tmp_path):
    """Both sweeps of `make book` on a fresh clone: no data needed, no file touched."""
    clone = fresh_clone(tmp_path)
    dirs = ["--results-dir", str(clone / "results"), "--pages-dir", str(clone / "book" / "runs")]
    for what in (["--fused"], ["--study", "all"]):
        done = subprocess.run(
            [sys.executable, "-m", "kdutils.sweep", "--profile", "default", *what, *dirs],
            env=no_data_env(tmp_path) | {"PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        assert "nothing to train or execute, no session logged" in done.stdout
    assert git_status(clone) == ""


def test_committed_results_need_no_data_but_the_chapters_do():
    profile = get_profile("default")
    assert preflight.pending_work(profile, None) == {}
    assert preflight.needed_datasets(profile, "sweep") == {}
    needed = preflight.needed_datasets(profile, "book")
    assert needed == {
        "mnist": {
            "chapter experiments",
            "chapter literature",
            "chapter results",
            "chapter calibration",
            "chapter hinton",
        },
        "fashion_mnist": {"chapter fashion"},
    }


def test_chapter_datasets_names_every_chapter_that_loads_data():
    loads = re.compile(r"\b(load_dataset|load_raw)\(")
    chapters = {p.stem for p in (ROOT / "notebooks").glob("*.md") if loads.search(p.read_text())}
    assert chapters == set(preflight.chapter_datasets(get_profile("default")))


def test_study_datasets_are_known_names():
    from kdutils.distill.data import DATASETS
    from kdutils.studies import available_studies, condition_datasets, get_study

    profile = get_profile("default")
    for study in available_studies():
        for condition in get_study(study).conditions(profile):
            assert condition_datasets(study, profile, condition) <= set(DATASETS), study
    assert condition_datasets("theory", profile, "fixed_b0p1_n50") == set()
    assert condition_datasets("fashion", profile, "fashion_mnist") == {"fashion_mnist"}
    assert condition_datasets("cifar_dark", profile, "teacher") == {"cifar10"}


def one_ulp_up(x: float) -> float:
    return float(np.nextafter(x, np.inf))


def test_canonical_configs_ignore_last_bit_differences_only():
    value = 0.056234132519034905  # np.logspace on one CPU; another gave 0.05623413251903491
    assert value != 0.05623413251903491 and same_config([value], [0.05623413251903491])
    config = {"lr": 1e-3, "grid": (value, 0.1), "n": 3, "name": "x", "flag": True}
    nudged = {"lr": one_ulp_up(1e-3), "grid": [one_ulp_up(value), 0.1], "n": 3, "name": "x"}
    nudged["flag"] = True
    assert same_config(nudged, config) and config_key(nudged) == config_key(config)
    assert canonical(config)["grid"] == [0.0562341325190, 0.1]
    assert not same_config({**config, "lr": 1.001e-3}, config)  # a real change still counts
    assert not same_config(None, config)
    # keys of short decimals are the plain JSON hashes stored before rounding was introduced
    plain = {"noise_rate": 0.05, "learning_rate": 1e-3, "seed": 0}
    old_key = hashlib.sha256(json.dumps(plain, sort_keys=True).encode()).hexdigest()[:16]
    assert config_key(plain) == old_key


def test_stored_theory_record_matches_after_a_last_bit_change(tmp_path):
    profile, condition = get_profile("default"), "fixed_b0p1_n50"
    source = DEFAULT / "studies" / "theory" / condition
    copy = tmp_path / condition
    shutil.copytree(source, copy)
    path = theory.record_path(copy, 0)
    record = json.loads(path.read_text())
    record["config"]["noise_vars"] = [one_ulp_up(v) for v in record["config"]["noise_vars"]]
    path.write_text(json.dumps(record))
    assert theory.is_done(profile, condition, copy)
    assert len(theory.current(profile, [record])) == 1
    record["config"]["noise_vars"][0] *= 1.0001  # a different grid is not this config
    path.write_text(json.dumps(record))
    assert not theory.is_done(profile, condition, copy)


def test_stored_run_matches_after_a_last_bit_change(tmp_path):
    profile = get_profile("default")
    source = run_path(DEFAULT, 0.5, 0)
    path = run_path(tmp_path, 0.5, 0)
    path.parent.mkdir(parents=True)
    record = json.loads(source.read_text())
    record["config"]["learning_rate"] = one_ulp_up(record["config"]["learning_rate"])
    record["config"]["data"]["noise_rate"] = one_ulp_up(record["config"]["data"]["noise_rate"])
    path.write_text(json.dumps(record))
    assert load_run(profile, 0.5, 0, tmp_path) is not None
    record["config"]["learning_rate"] *= 2
    path.write_text(json.dumps(record))
    assert load_run(profile, 0.5, 0, tmp_path) is None
