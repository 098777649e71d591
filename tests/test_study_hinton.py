"""The Hinton et al. (2015) study: jitter, error counts, bias shifts, configs and a tiny run."""

import numpy as np
import pytest
from keras import layers

from kdutils.distill.data import load_raw
from kdutils.distill.models import build_model
from kdutils.profiles import config_key, get_profile
from kdutils.results import by_seed
from kdutils.studies import get_study, hinton


def test_paper_constants_and_mnist_has_1010_test_threes():
    assert get_study("hinton") is hinton
    p = hinton.PAPER
    assert (p["teacher_errors"], p["scratch_errors"], p["distilled_errors"]) == (67, 146, 74)
    assert (p["omit3_errors"], p["omit3_errors_on_3s"], p["test_3s"]) == (206, 133, 1010)
    assert (p["omit3_bias_shift"], p["omit3_shifted_errors"]) == (3.5, 109)
    assert p["omit3_shifted_errors_on_3s"] == 14 and p["temperature"] == 20
    *_, y_test, _ = load_raw("mnist")
    assert len(y_test) == p["test_images"] and int((y_test == 3).sum()) == p["test_3s"]


def test_models_match_the_paper():
    teacher = build_model("hinton_teacher_mlp")
    student = build_model("hinton_student_mlp")
    assert teacher.count_params() == 2_395_210 and student.count_params() == 1_276_810
    dense = [layer.units for layer in teacher.layers if isinstance(layer, layers.Dense)]
    assert dense == [1200, 1200, 10]
    # Dropout 0.5 on each hidden layer of the teacher; the student has no regulariser.
    assert [d.rate for d in teacher.layers if isinstance(d, layers.Dropout)] == [0.5, 0.5]
    assert not [d for d in student.layers if isinstance(d, layers.Dropout)]


def test_settings_clean_labels_paper_temperature_and_enough_seeds():
    for name in ("smoke", "default", "full"):
        p = hinton.settings(get_profile(name))
        assert p.noise_rate == 0.0 and p.temperature == 20.0 and p.dataset == "mnist"
        assert (p.teacher, p.student) == ("hinton_teacher_mlp", "hinton_student_mlp")
        assert p.budgets == (p.epochs,)
    assert len(hinton.settings(get_profile("default")).seeds) >= 3
    full = hinton.settings(get_profile("full"))
    assert full.train_size is None and len(full.seeds) >= 5
    assert hinton.conditions(get_profile("default")) == ["teacher", "scratch", "distilled", "omit3"]


def test_run_configs_differ_where_runs_differ():
    p = hinton.settings(get_profile("default"))
    configs = {c: hinton.run_config(p, c, 0) for c in hinton.CONDITIONS}
    assert configs["teacher"]["jitter_pixels"] == 2 and configs["teacher"]["epochs"] == 20
    assert configs["scratch"]["alpha"] == 1.0 and "teacher" not in configs["scratch"]
    assert configs["distilled"]["alpha"] == hinton.ALPHA < 0.5
    key = config_key(hinton.teacher_config(p, 0))
    assert configs["distilled"]["teacher"] == configs["omit3"]["teacher"] == key
    assert configs["omit3"]["omitted_class"] == 3 and "omitted_class" not in configs["distilled"]
    assert hinton.run_config(p, "distilled", 1) != configs["distilled"]
    assert hinton.run_config(p.replace(temperature=5.0), "distilled", 0) != configs["distilled"]
    with pytest.raises(ValueError, match="unknown condition"):
        hinton.run_config(p, "ensemble", 0)


def test_jitter_moves_digits_by_at_most_two_pixels():
    *_, x, _, _ = load_raw("mnist")
    images = (x[:500].astype(np.float32) / 255)[..., None]
    ink = images[..., 0] > 0
    inside = ~(ink[:, :2].any((1, 2)) | ink[:, -2:].any((1, 2)))
    inside &= ~(ink[:, :, :2].any((1, 2)) | ink[:, :, -2:].any((1, 2)))
    images = images[inside]  # digits at least 2 pixels from every edge: none falls off
    out = hinton.jitter(images, 2, np.random.default_rng(0))
    assert out.shape == images.shape and out.dtype == images.dtype
    np.testing.assert_allclose(out.sum(axis=(1, 2, 3)), images.sum(axis=(1, 2, 3)), rtol=1e-5)
    rows = lambda a: np.argmax(a.sum(axis=(2, 3)) > 0, axis=1)  # noqa: E731
    cols = lambda a: np.argmax(a.sum(axis=(1, 3)) > 0, axis=1)  # noqa: E731
    dy, dx = rows(out) - rows(images), cols(out) - cols(images)
    assert np.abs(dy).max() == 2 and np.abs(dx).max() == 2
    assert len(set(zip(dy.tolist(), dx.tolist(), strict=True))) == 25  # every shift occurs
    np.testing.assert_array_equal(hinton.jitter(images, 0, np.random.default_rng(0)), images)


def test_error_counts_and_bias_shifts():
    labels = np.array([0, 1, 3, 3, 2])
    logits = np.zeros((5, 10))
    logits[np.arange(5), [0, 1, 2, 3, 2]] = 5.0  # one 3 called a 2
    logits[2, 3] = 4.0  # ... by a margin of 1
    counts = hinton.error_counts(logits, labels)
    assert counts["errors"] == 1 and counts["errors_by_class"][3] == 1
    assert counts["count_by_class"][:4] == [1, 1, 1, 2]
    total, on3 = hinton.shifted_errors(logits, labels, 3, shifts=(0.0, 0.5, 1.5, 6.0))
    assert total.tolist() == [1, 1, 0, 3] and on3.tolist() == [1, 1, 0, 0]
    assert hinton.choose_shift(total, (0.0, 0.5, 1.5, 6.0)) == 1.5
    assert hinton.choose_shift([2, 1, 1, 5], (0.0, 0.1, 0.2, 0.3)) == 0.1  # smallest of ties
    assert 3.5 in hinton.SHIFTS and hinton.SHIFTS[0] == 0.0


@pytest.fixture
def tiny(monkeypatch):
    tiny = {
        "train_size": 300,
        "validation_size": 200,
        "seeds": (0,),
        "teacher_epochs": 1,
        "epochs": 1,
        "batch_size": 128,
    }
    monkeypatch.setitem(hinton.SETTINGS, "smoke", tiny)
    return get_profile("smoke")


def test_tiny_study_runs_resumes_and_reports(tiny, tmp_path, monkeypatch):
    study = {c: hinton.run(tiny, c, tmp_path / c) for c in ("scratch", "omit3")}
    # omit3 trained the teacher it needed, in the teacher condition's folder.
    assert hinton.is_done(tiny, "teacher", tmp_path / "teacher")
    assert (tmp_path / "teacher" / "logits" / "seed0.npz").exists()
    for condition in ("teacher", "distilled"):
        study[condition] = hinton.run(tiny, condition, tmp_path / condition)
        assert hinton.is_done(tiny, condition, tmp_path / condition)

    omit3 = study["omit3"][0]
    data_3s = omit3["val_count_by_class"][3]
    assert omit3["train_examples"] < 300 and data_3s > 0
    assert len(omit3["shift_curve"]["test_errors"]) == len(hinton.SHIFTS)
    assert omit3["shift_curve"]["test_errors"][0] == omit3["test_errors"]
    i = hinton.SHIFTS.index(3.5)
    assert omit3["paper_shift_test_errors"] == omit3["shift_curve"]["test_errors"][i]
    best = min(omit3["shift_curve"]["val_errors"])
    assert omit3["chosen_shift_val_errors"] == best
    assert sum(study["distilled"][0]["test_count_by_class"]) == 10_000
    assert study["scratch"][0]["train_examples"] == 300

    # Resume: nothing is trained again, and the same records come back.
    def refuse(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(hinton, "train_teacher", refuse)
    monkeypatch.setattr(hinton, "train_student", refuse)
    for condition, records in study.items():
        assert hinton.run(tiny, condition, tmp_path / condition) == records

    # A changed setting is a different run.
    monkeypatch.setitem(hinton.SETTINGS, "smoke", hinton.SETTINGS["smoke"] | {"epochs": 2})
    assert not hinton.is_done(tiny, "distilled", tmp_path / "distilled")
    assert hinton.is_done(tiny, "teacher", tmp_path / "teacher")

    assert list(hinton.summary(study["omit3"]).index) == [0]
    assert by_seed(study["omit3"], "chosen_shift").tolist() == [omit3["chosen_shift"]]


def test_gap_closed_and_bias_gap_per_seed():
    def records(errors, biases=None):
        return [
            {"config": {"seed": seed}, "test_errors": e}
            | ({} if biases is None else {"output_bias": biases[i]})
            for i, (seed, e) in enumerate(zip((1, 0), errors, strict=True))
        ]

    study = {
        "teacher": records((60, 50)),
        "scratch": records((160, 150)),
        "distilled": records((110, 70)),
    }
    # seed 0: (150 - 70) / (150 - 50) = 0.8; seed 1: (160 - 110) / (160 - 60) = 0.5
    np.testing.assert_allclose(hinton.gap_closed(study), [0.8, 0.5])
    bias = [[0.0] * 10, [1.0] * 10]
    bias[0][3], bias[1][3] = -0.9, 2.8  # listed seed 1 first; seed 0's 3 is 1.8 above the rest
    np.testing.assert_allclose(hinton.bias_gap(records((0, 0), bias)), [1.8, -0.9])
