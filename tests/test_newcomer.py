"""Stored results stay valid where floats differ in their last bit (another CPU)."""

import hashlib
import json
import shutil

import numpy as np

from kdutils.experiment import load_run
from kdutils.profiles import canonical, config_key, get_profile, same_config
from kdutils.results import ROOT, run_path
from kdutils.studies import theory

DEFAULT = ROOT / "results" / "default"


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
