"""The GPU script's CPU rehearsal: benchmarks/gpu_full.sh end to end at the smoke scale."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile

from kdutils.experiment import load_run
from kdutils.profiles import get_profile
from kdutils.results import ROOT, results_dir
from kdutils.studies import get_study, study_dir


def test_rehearsal_trains_packs_and_returns_usable_results(tmp_path):
    out = tmp_path / "out"
    env = os.environ | {"PYTHON": sys.executable, "KERAS_BACKEND": "tensorflow"}
    args = ["bash", str(ROOT / "benchmarks" / "gpu_full.sh"), "--scale", "smoke"]
    args += ["--out", str(out), "--steps", "main", "hinton", "--seeds", "0"]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    main = json.loads((out / "main.json").read_text())
    assert main["finished"] and [u["unit"] for u in main["units"]] == ["teacher seed 0", "students"]
    unit = main["units"][1]
    assert unit["students"] == unit["trained"] == 11 and unit["x_flop_floor"] > 1
    assert unit["trainer"] == ["batched-loop"]  # the batched trainer, in its CPU mode
    assert main["environment"]["backend"] == "tensorflow" and "card" in main

    # The archives unpack into a results folder in which every run is stored and current.
    unpacked = tmp_path / "results"
    for step in ("main", "hinton"):
        with tarfile.open(out / f"{step}.tar.gz") as tar:
            names = tar.getnames()
            assert not any(n.endswith((".weights.h5", ".lock", ".tmp")) for n in names)
            tar.extractall(unpacked, filter="data")
    smoke = get_profile("smoke").override(seeds=[0])
    directory = results_dir("smoke", unpacked)
    assert all(load_run(smoke, a, 0, directory) for a in smoke.alphas)
    hinton = get_study("hinton")
    for condition in hinton.conditions(smoke):
        assert hinton.is_done(smoke, condition, study_dir(smoke, "hinton", condition, unpacked))


def test_full_scale_refuses_to_start_without_a_gpu(tmp_path):
    env = os.environ | {"PYTHON": sys.executable, "KERAS_BACKEND": "tensorflow"}
    args = ["bash", str(ROOT / "benchmarks" / "gpu_full.sh"), "--out", str(tmp_path / "o")]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "no GPU visible" in done.stderr + done.stdout
    assert not (tmp_path / "o" / "main.tar.gz").exists()
