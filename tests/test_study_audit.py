"""The audit study: each of the original's bugs, reproduced on purpose, does what it claims."""

import json

import keras
import matplotlib.pyplot as plt
import numpy as np
import pytest

from kdutils.distill import reportmetric
from kdutils.distill.distiller import Distiller, with_teacher_logits
from kdutils.distill.models import report_cnn
from kdutils.distill.repro import set_seed
from kdutils.profiles import get_profile
from kdutils.studies import audit

RNG = np.random.default_rng(0)
X = RNG.random((64, 28, 28, 1), dtype=np.float32)
Y = RNG.integers(0, 10, size=64).astype("int32")


def tiny(name: str) -> keras.Model:
    return report_cnn((4, 8), name=name)


# --- bug 1 -----------------------------------------------------------------------------------


def test_perfect_model_scores_zero_on_a_batch_whose_largest_label_sits_past_position_9():
    labels = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 9, 3, 9], dtype="int32")
    perfect = reportmetric.perfect_logits(labels)
    assert np.all(np.argmax(perfect, axis=-1) == labels)
    cat = keras.metrics.CategoricalAccuracy()
    # The first 9 is at position 11: no class equals 11, so no prediction can "match".
    assert reportmetric.keras_metric(cat, labels, perfect, None) == 0.0
    # With a column of labels the "true class" is always 0: the share of predicted 0s.
    assert reportmetric.keras_metric(cat, labels[:, None], perfect, None) == pytest.approx(2 / 14)
    sparse = keras.metrics.SparseCategoricalAccuracy()
    assert reportmetric.keras_metric(sparse, labels, perfect, None) == 1.0
    scores = reportmetric.perfect_scores(labels, batch_size=7)
    assert scores["sparse"] == 1.0
    assert scores["zero_batches"] == 1  # the second batch, [7, 8, 0, 1, 9, 3, 9]: argmax 4
    assert scores["zero_batch"]["index"] == 1
    assert scores["zero_batch"]["argmax"] == 4


@pytest.mark.parametrize("batch_size", [None, 7, 64])
def test_numpy_explanation_matches_keras(batch_size):
    labels = RNG.integers(0, 10, size=200).astype("int32")
    logits = RNG.normal(size=(200, 10)).astype("float32")
    scores = reportmetric.categorical_scores(logits, labels, batch_size or 200)
    assert scores["flat"] == pytest.approx(scores["explained_flat"], abs=1e-6)
    assert scores["column"] == pytest.approx(scores["explained_column"], abs=1e-6)
    assert scores["column"] == pytest.approx(scores["share_of_class_0"], abs=1e-6)
    assert scores["flat_whole"] == pytest.approx(scores["explained_flat_whole"], abs=1e-6)


def test_kdutils_refuses_the_bugs():
    out = audit.refusals(get_profile("smoke"))
    assert "CategoricalAccuracy" in out["categorical_accuracy"]
    assert "already used" in out["reused_student"]
    assert out["kdutils_tensors"] == "6"  # the student's kernels and biases only
    assert out["example_tensors"] == "12"  # the example trains the teacher's as well
    assert out["kdutils_parameters"] == "20,490"
    assert out["example_parameters"] == f"{20_490 + 1_433_610:,}"


# --- bug 2 -----------------------------------------------------------------------------------


def _teacher() -> keras.Model:
    set_seed(1)
    return tiny("teacher")  # untrained: the gradient reaches it all the same


@pytest.mark.parametrize(("alpha", "moves"), [(0.0, True), (1.0, False)])
def test_example_distiller_trains_the_teacher_unless_alpha_is_1(alpha, moves):
    teacher = _teacher()
    before = [np.array(w) for w in teacher.get_weights()]
    set_seed(0)
    distiller = audit.example_distiller(tiny("student"), teacher, alpha, 10.0, 1e-3)
    distiller.fit(X, Y, batch_size=16, epochs=1, verbose=0)
    drift = audit.relative_change(before, teacher.get_weights())
    # At alpha = 1 the teacher's gradient is exactly zero, and so is Adam's step.
    assert (drift > 1e-4) if moves else (drift == 0.0)


def test_frozen_example_equals_kdutils_distiller_on_cached_logits():
    teacher = _teacher()
    logits = teacher.predict(X, verbose=0)
    teacher.trainable = False  # the one-line fix
    before = [np.array(w) for w in teacher.get_weights()]
    set_seed(0)
    student_a = tiny("student")
    audit.example_distiller(student_a, teacher, 0.3, 10.0, 1e-3).fit(
        X, Y, batch_size=16, epochs=2, verbose=0
    )
    assert audit.relative_change(before, teacher.get_weights()) == 0.0
    set_seed(0)
    student_b = tiny("student")
    kd = Distiller(student_b, alpha=0.3, temperature=10.0)
    kd.compile(optimizer=keras.optimizers.Adam(1e-3), steps_per_execution=32)
    kd.fit(with_teacher_logits(X, logits), Y, batch_size=16, epochs=2, verbose=0)
    for a, b in zip(student_a.get_weights(), student_b.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, atol=2e-5)


# --- bug 3 -----------------------------------------------------------------------------------


def test_reused_chain_starts_each_link_from_the_last(monkeypatch):
    received = []

    class Student:
        def __init__(self, alpha):
            self.alpha = alpha

        def get_weights(self):
            return [np.full(3, self.alpha)]

    def fake_fit(config, x, y, logits, epochs, seed, weights=None):
        received.append((config["alpha"], seed, weights))
        return Student(config["alpha"]), []

    monkeypatch.setattr(audit, "_fit_corrected", fake_fit)
    config = {"alphas": [0.0, 0.1, 0.2]}
    links = list(audit.train_chain(config, X, Y, None, epochs=1, seed=3))
    assert [a for a, _, _ in links] == [0.0, 0.1, 0.2]
    # The first link starts fresh (the main sweep's run); each later one from the last's end.
    assert received[0] == (0.0, 3, None)
    for (_, seed, weights), previous in zip(received[1:], (0.0, 0.1), strict=True):
        assert seed == 3
        np.testing.assert_array_equal(weights[0], np.full(3, previous))


# --- bookkeeping -----------------------------------------------------------------------------


def test_settings_configs_and_resume(tmp_path, monkeypatch):
    profile = get_profile("smoke")
    for name in ("smoke", "default", "full"):
        p = get_profile(name)
        for condition in audit.conditions(p):
            audit.settings(p, condition)  # epochs are budgets of the main sweep
    default = get_profile("default")
    assert len(default.seeds) >= 3
    # Every condition has seeds enough for intervals, but the compounded pipeline: its few
    # chains are drawn one line each (no interval), as the report ran one.
    seeds = {c: s.get("seeds", default.seeds) for c, s in audit.SETTINGS["default"].items()}
    assert all(len(s) >= 3 for c, s in seeds.items() if c != "compounded")
    assert len(seeds["compounded"]) >= 2
    assert audit.planned(default, "reused_student")[0]["alphas"] == list(default.alphas)
    calls = []

    def fake(profile, config, directory, data):
        calls.append(config)
        return {"config": config}

    monkeypatch.setitem(audit.RUNNERS, "trainable_teacher", fake)
    monkeypatch.setattr(audit, "load_dataset", lambda **kw: None)
    directory = tmp_path / "trainable_teacher"
    plans = audit.planned(profile, "trainable_teacher")
    assert not audit.is_done(profile, "trainable_teacher", directory)
    audit.run(profile, "trainable_teacher", directory)
    assert len(calls) == len(plans) == len({json.dumps(c, sort_keys=True) for c in plans})
    assert audit.is_done(profile, "trainable_teacher", directory)
    audit.run(profile, "trainable_teacher", directory)
    assert len(calls) == len(plans)  # nothing recomputed
    path = audit.record_path(directory, plans[0])
    path.write_text(json.dumps({"config": plans[0] | {"epochs": 99}}))
    audit.run(profile, "trainable_teacher", directory)
    assert len(calls) == len(plans) + 1  # a stale record is recomputed


def _fake_study(seeds=(0, 1, 2)):
    """Records with the fields the chapter reads (synthetic numbers, for the plumbing only)."""
    labels = RNG.integers(0, 10, size=300).astype("int32")
    perfect = reportmetric.perfect_scores(labels, 64)
    cat, tt, ru, main = [], [], [], []
    for seed in seeds:
        for alpha in (0.0, 0.5, 1.0):
            scores = reportmetric.categorical_scores(RNG.normal(size=(300, 10)), labels, 64)
            config = {"alpha": alpha, "seed": seed, "epochs": 2, "condition": "x"}
            cat.append({"config": config, "test_accuracy": 0.9 + seed / 100, "categorical": scores})
            cat[-1]["perfect"] = perfect
            main.append(
                {
                    "config": {"alpha": alpha, "seed": seed},
                    "budgets": [
                        {"epochs": 2, "val_accuracy": 0.9, "test_accuracy": 0.9 + seed / 100}
                        | {"test_fidelity": 0.9}
                    ],
                }
            )
            for variant in audit.VARIANTS:
                drift = 0.1 * (alpha < 1) * (variant == "buggy")
                tt.append(
                    {
                        "config": {"variant": variant, "alpha": alpha, "seed": seed}
                        | {"train_size": 2000, "epochs": 3, "teacher_val_images": 2000},
                        "trainable_weights": {"tensors": 12, "parameters": 1_454_100},
                        "train_seconds": 1.0,
                        "test_accuracy": 0.8 + RNG.random() / 10,
                        "val_accuracy": 0.8,
                        "test_fidelity": 0.8,
                        "teacher_drift": drift,
                        "teacher_val_accuracy_before": 0.95,
                        "teacher_val_accuracy_after": 0.95 - drift,
                        "teacher_test_accuracy": 0.95,
                        "final_loss": 0.1 + drift,
                        "soft_loss_original_teacher": 0.2,
                    }
                )
        ru.append(
            {
                "config": {"seed": seed, "alphas": [0.0, 0.5, 1.0], "epochs": 2},
                "links": [
                    {"alpha": a, "position": i, "epochs_before": 2 * i}
                    | {"val_accuracy": 0.9, "test_accuracy": 0.9 + seed / 100 + i / 100}
                    | {"test_fidelity": 0.9}
                    for i, a in enumerate((0.0, 0.5, 1.0))
                ],
            }
        )
    study = {"categorical_accuracy": cat, "trainable_teacher": tt, "reused_student": ru}
    return study, main


def test_numbers_and_figures_from_records():
    study, main = _fake_study()
    out = audit.numbers(study, main, get_profile("default"))
    assert out["ru_first_gap"] == "0.00"
    assert out["ru_diff_a1"].startswith("+2.00 points")
    # Each curve's second alpha minus its first: the chain gains a point per link, new
    # students nothing.
    assert out["ru_rise_chain"].startswith("+1.00 points")
    assert out["ru_rise_fresh"].startswith("+0.00 points")
    diffs = audit.reused_differences(study["reused_student"], main)
    assert set(diffs) == {"0", "0.5", "1", "rise_chain", "rise_fresh"}
    assert audit.verdict(diffs["rise_chain"]) == "higher than"
    assert set(audit.teacher_differences(study["trainable_teacher"])) == {0.0, 0.5, 1.0}
    assert out["tt_drift_a1"].startswith("0.000")
    assert out["cat_main_gap"] == "0.00 points"
    assert out["perfect_sparse"] == "100.00%"
    assert all(isinstance(v, str) and v for v in out.values())
    for fig in (
        audit.distortion_figure(study, main),
        audit.teacher_figure(study["trainable_teacher"]),
        audit.reused_figure(study["reused_student"], main),
    ):
        assert fig.axes
        plt.close(fig)
    for condition, records in study.items():
        for r in records:
            r["config"]["condition"] = condition
        assert not audit.summary(records).empty


def test_compounded_chain_carries_one_student_and_one_trainable_teacher(tmp_path):
    """Every bug at once, on a tiny scale: the teacher drifts from the first link on, and each
    link is scored as the report printed it (1 - CategoricalAccuracy, batch 32)."""
    profile = get_profile("smoke").override(train_size=100, epochs=1, seeds=[0], alphas=[0.0, 1.0])
    profile = profile.replace(teacher="tiny_teacher", teacher_train_size=300, validation_size=300)
    directory = tmp_path / "smoke" / "studies" / "audit" / "compounded"
    (record,) = audit.run(profile, "compounded", directory)
    config = record["config"]
    assert config["batch_size"] == reportmetric.REPORT_BATCH_SIZE == 32
    assert config["metric"] == "CategoricalAccuracy" and config["alphas"] == [0.0, 1.0]
    first, last = record["links"]
    assert first["teacher_drift"] > 0  # alpha = 0 trains the teacher too
    assert last["teacher_drift"] == pytest.approx(first["teacher_drift"])  # alpha = 1 does not
    for link in record["links"]:
        assert link["reported"] == pytest.approx(1 - link["categorical_accuracy"])
        assert 0 <= link["test_accuracy"] <= 1
    assert audit.is_done(profile, "compounded", directory)
