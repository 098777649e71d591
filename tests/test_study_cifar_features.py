"""The cifar_features study: the report's numbers, settings, configs, augmentation, a tiny run."""

import numpy as np
import pytest

from kdutils.profiles import config_key, get_profile
from kdutils.studies import cifar_features as cf
from kdutils.studies import get_study


def test_report_numbers_and_the_alpha_convention():
    assert get_study("cifar_features") is cf
    r = cf.REPORT
    assert (r["teacher"], r["student"], r["response"], r["feature"]) == (88.30, 87.78, 89.29, 88.33)
    assert (r["response_temperature"], r["response_soft_weight"]) == (4.0, 0.4)
    # The report weighted the soft term by 0.4: alpha on the hard labels is 0.6.
    assert cf._alpha(0.4) == 0.6 and cf._alpha(0.8) == 0.2
    for name in ("smoke", "default", "full"):
        s = cf.settings(get_profile(name))
        runs = {spec["run"]: spec for spec in cf.run_specs(s, "response")}
        assert runs["kd_t4_alpha_0p6"] == {
            "run": "kd_t4_alpha_0p6",
            "method": "response",
            "alpha": 0.6,
            "temperature": 4.0,
        }
        assert runs["scratch"]["alpha"] == 1.0


def test_settings_per_profile():
    assert cf.conditions(get_profile("default")) == ["teacher", "response", "feature"]
    default, full = cf.settings("default"), cf.settings("full")
    assert len(default["seeds"]) >= 3 and len(full["seeds"]) >= 5
    assert {t for t, _ in default["response_grid"]} == {3.0, 4.0, 5.0}
    assert full["response_grid"] == cf.grid((3.0, 4.0, 5.0), (0.2, 0.4, 0.6, 0.8))
    assert full["train_size"] is None and full["test_size"] is None and full["augment"]
    assert full["teacher_widths"] == (64, 128, 256, 512) and full["teacher_blocks"] == (2,) * 4
    for s in (default, full, cf.settings("smoke")):
        assert len(s["teacher_widths"]) == len(s["student_widths"]) == 4  # stages 1-4 pair up
        assert all(a < b for a, b in zip(s["student_widths"], s["teacher_widths"], strict=True))
    assert cf.WEIGHTINGS == {"uniform": (0.25,) * 4, "ramp": (0.1, 0.2, 0.3, 0.4)}


def test_run_specs_and_configs():
    s = cf.settings("default")
    feature = {spec["run"]: spec for spec in cf.run_specs(s, "feature")}
    assert feature["mmd_alone"]["alpha"] == 0.0
    assert {spec["weighting"] for spec in feature.values()} == {"uniform", "ramp"}
    methods = [spec["method"] for spec in feature.values()]
    assert methods[-2:] == ["fitnets", "cosine"] and methods.count("mmd") == len(feature) - 2
    n_response = len(s["response_grid"]) + 1
    assert len(cf.run_specs(s, "response")) == n_response
    configs = {
        spec["run"]: cf.run_config(s, spec, 0)
        for c in ("response", "feature")
        for spec in cf.run_specs(s, c)
    }
    key = config_key(cf.teacher_config(s, 0))
    assert "teacher" not in configs["scratch"]
    assert all(c["teacher"] == key for n, c in configs.items() if n != "scratch")
    assert configs["mmd_alone"]["weights"] == [0.25] * 4 and "bandwidths" in configs["mmd_alone"]
    assert configs["kd_t4_alpha_0p6"]["report_soft_weight"] == 0.4
    assert len({cf.config_key(c) for c in configs.values()}) == len(configs)
    assert cf.run_config(s, feature["fitnets_alpha_0p5"], 1) != configs["fitnets_alpha_0p5"]
    with pytest.raises(ValueError, match="unknown condition"):
        cf.run_specs(s, "relations")


def test_augment_is_a_padded_crop_and_maybe_a_flip():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(40, 8, 8, 3)).astype("float32")
    out = cf.augment(images, np.random.default_rng(1), pad=2)
    assert out.shape == images.shape and out.dtype == images.dtype
    padded = np.pad(images, [(0, 0), (2, 2), (2, 2), (0, 0)])
    flips = 0
    for i in range(len(images)):
        crops = [
            (padded[i, a : a + 8, b : b + 8], flip)
            for a in range(5)
            for b in range(5)
            for flip in (False, True)
        ]
        found = [f for c, f in crops if np.array_equal(out[i], c[:, ::-1] if f else c)]
        assert found, f"image {i} is not a crop of its padded copy"
        flips += found[0]
    assert 5 < flips < 35  # about half flipped


def test_test_subset_is_fixed_and_covers_every_class():
    from kdutils.distill.data import load_raw

    *_, y_test, _ = load_raw("cifar10")
    keep = cf.test_subset(len(y_test), 200)
    assert len(set(keep)) == 200 and np.array_equal(keep, cf.test_subset(len(y_test), 200))
    assert np.bincount(y_test[keep], minlength=10).min() >= 10  # not sorted by class
    assert len(cf.test_subset(len(y_test), None)) == len(y_test)


def test_cached_logits_refused_under_augmentation():
    with pytest.raises(ValueError, match="augmentation"):
        cf._fit(None, None, None, {"augment": True}, 1, 0, teacher_logits=np.zeros((1, 10)))


@pytest.fixture
def tiny(monkeypatch):
    tiny = cf.SETTINGS["smoke"] | {
        "train_size": 64,
        "validation_size": 64,
        "test_size": 64,
        "seeds": (0,),
        "teacher_widths": (4, 4, 8, 8),
        "student_widths": (2, 2, 4, 4),
        "batch_size": 64,  # one step per run
    }
    assert tiny["run_eagerly"] and tiny["weightings"] == ("uniform",)
    monkeypatch.setitem(cf.SETTINGS, "smoke", tiny)
    return get_profile("smoke")


def test_tiny_study_runs_resumes_and_reports(tiny, tmp_path, monkeypatch):
    # The feature runs come first: they train the teacher they need, in its own folder.
    study = {c: cf.run(tiny, c, tmp_path / c) for c in ("feature", "response")}
    assert cf.is_done(tiny, "teacher", tmp_path / "teacher")
    spec = cf.teacher_spec(cf.settings(tiny), 0, tmp_path / "teacher")
    assert spec.weights_path.exists() and spec.logits_path.exists()
    study["teacher"] = cf.run(tiny, "teacher", tmp_path / "teacher")
    runs = cf.by_run(study)
    assert set(runs) == {
        "teacher",
        "scratch",
        "kd_t4_alpha_0p6",
        "mmd_uniform_alpha_0p5",
        "mmd_alone",
        "fitnets_alpha_0p5",
        "cosine_alpha_0p5",
    }
    for name, records in runs.items():
        r = records[0]
        assert 0.0 <= r["test_accuracy"] <= 1.0 and r["test_examples"] == 64
        assert all(np.isfinite(v) for h in r["history"] for v in h.values())
        if name not in ("teacher", "scratch"):
            assert 0.0 <= r["test_fidelity"] <= 1.0
    assert "feature_loss" in runs["mmd_alone"][0]["history"][0]
    assert "soft_loss" in runs["kd_t4_alpha_0p6"][0]["history"][0]
    # Widths differ at every stage: a 1x1 projection per stage, (2+2+4+4) x (4+4+8+8) weights.
    assert runs["mmd_alone"][0]["projection_parameters"] == 2 * 4 + 2 * 4 + 4 * 8 + 4 * 8

    # Resume: nothing is trained again, and the same records come back.
    def refuse(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(cf, "train_teacher", refuse)
    monkeypatch.setattr(cf, "train_student", refuse)
    for condition, records in study.items():
        assert cf.run(tiny, condition, tmp_path / condition) == records
    # A changed setting is a different run.
    monkeypatch.setitem(cf.SETTINGS, "smoke", cf.SETTINGS["smoke"] | {"epochs": 2})
    assert not cf.is_done(tiny, "feature", tmp_path / "feature")
    assert cf.is_done(tiny, "teacher", tmp_path / "teacher")

    assert set(cf.summary(study["feature"]).index.get_level_values("run")) == {
        "mmd_uniform_alpha_0p5",
        "mmd_alone",
        "fitnets_alpha_0p5",
        "cosine_alpha_0p5",
    }
    assert cf.report_run(runs) == "kd_t4_alpha_0p6" and cf.best_mmd(runs) == "mmd_uniform_alpha_0p5"
    assert cf.runs_of_method(runs, "mmd") == ["mmd_uniform_alpha_0p5", "mmd_alone"]


def test_gain_and_best_on_validation_read_the_records():
    def records(test, val):
        return [
            {"config": {"seed": i}, "test_accuracy": a, "val_accuracy": v}
            for i, (a, v) in enumerate(zip(test, val, strict=True))
        ]

    runs = {
        "a": records([0.50, 0.52, 0.51], [0.40, 0.41, 0.42]),
        "b": records([0.48, 0.50, 0.50], [0.45, 0.44, 0.46]),
    }
    g = cf.gain(runs["a"], runs["b"])
    per_seed = np.array([2.0, 2.0, 1.0])  # points
    np.testing.assert_allclose([g["mean"], g["sd"]], [per_seed.mean(), per_seed.std(ddof=1)])
    assert cf.best_on_validation(runs, ["a", "b", "absent"]) == "b"  # validation, not test
    with pytest.raises(ValueError, match="same seeds"):
        cf.gain(runs["a"], runs["b"][:2])
