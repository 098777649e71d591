"""The temperature study: conditions, a shared teacher, finite losses at T = 1 and 1.01, and
a tiny run that resumes and feeds the chapter's numbers and figures."""

import dataclasses
import math

import keras
import numpy as np
import pytest

from kdutils import experiment
from kdutils.distill.distiller import Distiller, with_teacher_logits
from kdutils.distill.fused import FusedDistiller
from kdutils.distill.models import report_cnn
from kdutils.distill.repro import set_seed
from kdutils.profiles import config_key, get_profile
from kdutils.studies import get_study, grid, study_dir, temperature
from kdutils.studies import grid_stats as ss


def test_conditions_are_slugs_of_the_temperatures():
    assert get_study("temperature") is temperature
    default = get_profile("default")
    names = temperature.conditions(default)
    assert names[:3] == ["t_1", "t_1p01", "t_1p5"] and names[-2:] == ["t_10", "t_20"]
    assert [temperature.temperature_of(c) for c in names] == list(temperature.TEMPERATURES)
    assert {1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 10.0, 20.0, 1.01} == set(temperature.TEMPERATURES)
    assert temperature.conditions(get_profile("smoke")) == ["t_1", "t_1p01", "t_10"]
    for name in ("smoke", "default", "full"):
        for c in temperature.conditions(get_profile(name)):
            assert c.replace("_", "").isalnum()
    with pytest.raises(ValueError, match="unknown condition"):
        temperature.variant(default, "t_7")


@pytest.mark.parametrize("name", ["smoke", "default", "full"])
def test_every_temperature_shares_the_base_teacher(name):
    profile = get_profile(name)
    base = grid.base_profile(profile)
    variants = [temperature.variant(profile, c) for c in temperature.conditions(profile)]
    assert {v.temperature for v in variants} == set(temperature.SETTINGS[name]["temperatures"])
    for v in variants:
        assert config_key(v.teacher_config(0)) == config_key(base.teacher_config(0))
        assert grid.teacher_directory(v) == grid.teacher_directory(base)
        # a student run differs from the base run in its temperature only
        run, ref = v.run_config(0.5, 0), base.run_config(0.5, 0)
        assert {k for k in run if run[k] != ref[k]} <= {"temperature"}
        assert v.alphas == temperature.SETTINGS[name].get("alphas", base.alphas)
    if name == "default":
        assert len(base.seeds) >= 3 and len(variants[0].alphas) == 11


# Logits of a confident network: gaps of hundreds between classes, so that softmax(z / T)
# underflows to exactly 0 in float32 for T near 1 and the log of a softmax is -inf.
RNG = np.random.default_rng(0)
X = RNG.random((64, 28, 28, 1), dtype=np.float32)
Y = RNG.integers(0, 10, size=64).astype("int32")
TEACHER = (RNG.normal(scale=60.0, size=(64, 10)) + 200.0 * np.eye(10)[Y]).astype("float32")


@pytest.mark.parametrize("t", [1.0, 1.01])
def test_naive_kl_is_nan_on_these_logits(t):
    student = RNG.normal(scale=60.0, size=TEACHER.shape).astype("float32")
    p = keras.ops.softmax(TEACHER / t)
    q = keras.ops.softmax(student / t)
    naive = keras.ops.sum(p * (keras.ops.log(p) - keras.ops.log(q)), axis=-1)
    assert np.isnan(keras.ops.convert_to_numpy(naive)).any()  # the bug this study checks


def test_training_at_t_near_1_keeps_every_loss_finite():
    models = []
    for t in (1.0, 1.01):
        set_seed(0)
        students = [report_cnn((4, 8), name=f"s{i}_{t}") for i in range(2)]
        models.append(FusedDistiller(students, [0.0, 0.5], temperature=t))
    models.append(Distiller(report_cnn((4, 8), name="single"), alpha=0.0, temperature=1.01))
    for model in models:
        model.compile(optimizer=keras.optimizers.Adam(1e-2))  # large steps: extreme students
        history = model.fit(
            with_teacher_logits(X, TEACHER), Y, batch_size=16, epochs=1, verbose=0
        ).history  # 4 steps
        losses = [v for k, values in history.items() if "loss" in k for v in values]
        assert len(losses) >= 3 and all(math.isfinite(v) for v in losses)
        soft = history["soft_loss"] if "soft_loss" in history else history["s0_soft_loss"]
        assert max(soft) > 1  # far from the teacher: the soft term is large, and finite
        assert all(np.isfinite(w).all() for w in model.get_weights())
    record = {"history": [{"loss": 1.0, "s0_soft_loss": math.nan, "accuracy": math.nan}]}
    assert temperature.nonfinite([record]) == 1  # NaNs in accuracies do not count


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """A tiny smoke profile: 256 images, one seed, two alphas, one epoch, a small teacher,
    two temperatures, 500 test images."""
    monkeypatch.setenv("KDUTILS_RESULTS_DIR", str(tmp_path))
    profile = get_profile("smoke").replace(
        train_size=256,
        validation_size=256,
        seeds=(0,),
        alphas=(0.0, 1.0),
        epochs=1,
        budgets=(1,),
        teacher="report_student",
    )
    monkeypatch.setitem(temperature.SETTINGS, "smoke", {"temperatures": (1.01, 10.0)})
    real = experiment.load_dataset

    def small_test_set(**config):  # 500 test images: the plumbing, not the numbers
        data = real(**config)
        return dataclasses.replace(data, x_test=data.x_test[:500], y_test=data.y_test[:500])

    monkeypatch.setattr(experiment, "load_dataset", small_test_set)
    return profile


def test_tiny_study_runs_resumes_and_reports(tiny, tmp_path, monkeypatch):
    study = {}
    for c in temperature.conditions(tiny):
        directory = study_dir(tiny, "temperature", c)
        assert not temperature.is_done(tiny, c, directory)
        study[c] = temperature.run(tiny, c, directory)
        assert temperature.is_done(tiny, c, directory) and len(study[c]) == 2
    # One teacher for the seed, trained once for both temperatures.
    teachers = list((tmp_path / "smoke" / "studies" / "teachers").glob("*/teachers/seed*.json"))
    assert len(teachers) == 1
    assert temperature.nonfinite([r for rs in study.values() for r in rs]) == 0

    def refuse(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(experiment, "_train", refuse)
    for c, records in study.items():
        assert temperature.run(tiny, c, study_dir(tiny, "temperature", c)) == records
    # Records of another profile's config are not current.
    assert ss.current(study, temperature.variants(tiny)) == study
    assert ss.current(study, temperature.variants(tiny.replace(epochs=2, budgets=(2,)))) == {}

    frame = temperature.table(study)
    assert len(frame) == 2 * 2 and frame["test_kl"].ge(0).all()
    ones = frame[frame["alpha"] == 1.0].pivot(
        index="seed", columns="temperature", values="test_accuracy"
    )
    # alpha = 1 ignores the teacher, so the temperature cannot change its run.
    np.testing.assert_array_equal(ones[1.01], ones[10.0])
    pair = temperature.best_pair(frame)
    val = frame.groupby(["temperature", "alpha"])["val_accuracy"].mean()
    assert val[(pair["temperature"], pair["alpha"])] == val.max()
    best = temperature.best_by_temperature(frame)
    assert list(best["temperature"]) == [1.01, 10.0] and best["range"].ge(0).all()
    cells = temperature.cell_differences(frame)
    assert len(cells) == 2 and set(cells["alpha"]) == {0.0}  # alpha < 1 against alpha = 1
    assert temperature.underflow_gap() == 104  # exp(-104) is 0 in float32
    assert "non-finite losses" in temperature.summary(study["t_1p01"])
    assert ss.missing(study, temperature.variants(tiny)) == []
    assert ss.missing({"t_10": study["t_10"]}, temperature.variants(tiny)) == ["t_1p01"]
