"""The calibration study: per-class scores and ECE against hand-computed values, resume, tables."""

import json

import numpy as np
import pytest

from kdutils.distill import metrics
from kdutils.experiment import test_logits_path as logits_path
from kdutils.profiles import get_profile
from kdutils.results import run_path, write_json, write_npz
from kdutils.studies import calibration as study
from kdutils.studies import get_study

RNG = np.random.default_rng(0)

# 3 classes, 6 examples: confusion rows (true) [2, 1, 0], [0, 1, 1], [0, 0, 1].
LABELS = np.array([0, 0, 0, 1, 1, 2])
PREDICTED = np.array([0, 0, 1, 1, 2, 2])


def logits_with_confidence(confidence, predicted, num_classes: int = 10) -> np.ndarray:
    """Logits whose softmax puts `confidence` on `predicted` and the rest evenly elsewhere."""
    confidence = np.asarray(confidence, dtype=float)
    p = np.repeat(((1 - confidence) / (num_classes - 1))[:, None], num_classes, axis=1)
    p[np.arange(len(p)), predicted] = confidence
    return np.log(p)


def test_confusion_and_per_class_scores_by_hand():
    c = metrics.confusion_matrix(LABELS, PREDICTED, 3)
    np.testing.assert_array_equal(c, [[2, 1, 0], [0, 1, 1], [0, 0, 1]])
    s = metrics.per_class(c)
    np.testing.assert_allclose(s["precision"], [1.0, 0.5, 0.5])
    np.testing.assert_allclose(s["recall"], [2 / 3, 0.5, 1.0])
    np.testing.assert_allclose(s["f1"], [0.8, 0.5, 2 / 3])
    np.testing.assert_allclose(s["accuracy"], [5 / 6, 4 / 6, 5 / 6])  # one-vs-rest
    np.testing.assert_array_equal(s["support"], [3, 2, 1])
    assert metrics.macro_f1(c) == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)


def test_a_class_never_seen_nor_predicted_scores_zero():
    s = metrics.per_class(metrics.confusion_matrix(LABELS, PREDICTED, 4))
    assert (s["precision"][3], s["recall"][3], s["f1"][3], s["accuracy"][3]) == (0, 0, 0, 1)
    assert metrics.macro_f1(metrics.confusion_matrix(LABELS, PREDICTED, 4)) == pytest.approx(
        (0.8 + 0.5 + 2 / 3) / 4
    )


def test_per_class_scores_match_sklearn():
    skm = pytest.importorskip("sklearn.metrics")
    labels, predicted = RNG.integers(0, 10, 500), RNG.integers(0, 10, 500)
    s = metrics.per_class(metrics.confusion_matrix(labels, predicted, 10))
    p, r, f, support = skm.precision_recall_fscore_support(
        labels, predicted, labels=range(10), zero_division=0
    )
    np.testing.assert_allclose(s["precision"], p)
    np.testing.assert_allclose(s["recall"], r)
    np.testing.assert_allclose(s["f1"], f)
    np.testing.assert_array_equal(s["support"], support)
    mcm = skm.multilabel_confusion_matrix(labels, predicted, labels=range(10))
    np.testing.assert_allclose(s["accuracy"], (mcm[:, 0, 0] + mcm[:, 1, 1]) / 500)


def test_bins_are_equal_width_and_closed_on_the_right():
    edges = np.arange(16) / 15
    b = metrics.bin_index(np.concatenate([[0.0], edges[1:], edges[1:-1] + 1e-9]))
    np.testing.assert_array_equal(b, [0, *range(15), *range(1, 15)])


def test_ece_is_zero_when_confidence_comes_true_exactly():
    confidence = np.repeat([0.25, 0.55, 0.85, 0.97], 100)
    labels = np.zeros(400, dtype=int)
    predicted = np.zeros(400, dtype=int)
    for i, c in enumerate((0.25, 0.55, 0.85, 0.97)):
        wrong = 100 - round(100 * c)
        predicted[100 * i : 100 * i + wrong] = 1  # the rest are right: 100·c of each 100
    logits = logits_with_confidence(confidence, predicted)
    e = study.evaluate(logits, labels)
    assert e["ece"] == pytest.approx(0.0, abs=1e-12)
    assert e["accuracy"] == pytest.approx(e["mean_confidence"])


def test_ece_is_near_zero_for_a_calibrated_random_model():
    n = 200_000
    confidence = RNG.uniform(0.1, 1.0, n)
    right = RNG.random(n) < confidence  # right with probability equal to the confidence
    labels = RNG.integers(0, 10, n)
    predicted = np.where(right, labels, (labels + RNG.integers(1, 10, n)) % 10)
    p = np.exp(logits_with_confidence(confidence, predicted))
    assert metrics.expected_calibration_error(p, labels) < 0.01


def test_ece_of_overconfident_models():
    # Every prediction at 90% confidence, 60% right: ECE = |0.6 - 0.9| = 0.3.
    labels = np.zeros(10, dtype=int)
    predicted = np.array([0] * 6 + [1] * 4)
    e = study.evaluate(logits_with_confidence(np.full(10, 0.9), predicted), labels)
    assert e["ece"] == pytest.approx(0.3)
    assert e["mean_confidence"] - e["accuracy"] == pytest.approx(0.3)
    # Half at 0.95 confidence with 75% right (gap 0.2), half calibrated at 0.55: ECE = 0.1.
    confidence = np.array([0.95] * 20 + [0.55] * 20)
    predicted = np.array([0] * 15 + [1] * 5 + [0] * 11 + [1] * 9)
    p = np.exp(logits_with_confidence(confidence, predicted))
    assert metrics.expected_calibration_error(p, np.zeros(40, dtype=int)) == pytest.approx(0.1)


def test_evaluate_is_consistent_and_json_serialisable():
    labels = RNG.integers(0, 10, 300)
    logits = RNG.normal(size=(300, 10)).astype("float16")
    e = json.loads(json.dumps(study.evaluate(logits, labels)))
    assert np.sum(e["confusion"]) == 300 and np.sum(e["calibration"]["count"]) == 300
    assert np.trace(e["confusion"]) / 300 == pytest.approx(e["accuracy"])
    assert sum(e["calibration"]["correct"]) / 300 == pytest.approx(e["accuracy"])
    assert sum(e["calibration"]["confidence"]) / 300 == pytest.approx(e["mean_confidence"])
    assert metrics.ece_from_bins(e["calibration"]) == pytest.approx(e["ece"])
    uniform = study.evaluate(np.zeros((5, 10)), np.arange(5))
    assert uniform["nll"] == pytest.approx(np.log(10))


# --- runs ------------------------------------------------------------------------------------


def _fake_sweep(calls):
    """A stand-in for grid.run: writes records and test logits as save_logits=True does."""

    def run(variant, directory, save_logits=False):
        assert save_logits
        records = []
        for alpha in variant.alphas:
            for seed in variant.seeds:
                path = run_path(directory, alpha, seed)
                if not path.exists():
                    calls.append((alpha, seed))
                    logits = RNG.normal(size=(50, 10)).astype("float16")
                    write_npz(logits_path(directory, alpha, seed), test=logits)
                    write_json(path, {"config": variant.run_config(alpha, seed)})
                records.append(json.loads(path.read_text()))
        return records

    return run


def test_settings_and_conditions():
    assert get_study("calibration") is study
    for name in ("smoke", "default", "full"):
        p = study.study_profile(get_profile(name))
        assert p.alphas == (0.0, 0.5, 1.0)
        assert study.conditions(get_profile(name)) == ["base"]
    default = study.study_profile(get_profile("default"))
    assert len(default.seeds) >= 3 and default.train_size == 5_000 and default.epochs == 5


def test_run_adds_metrics_once_and_resumes(tmp_path, monkeypatch):
    profile = get_profile("smoke")
    calls, teacher_calls = [], []
    monkeypatch.setattr(study.grid, "run", _fake_sweep(calls))
    monkeypatch.setattr(study, "_test_labels", lambda p: RNG.integers(0, 10, 50))

    def teacher(p, seed):
        teacher_calls.append(seed)
        return RNG.normal(size=(50, 10)).astype("float32")

    monkeypatch.setattr(study, "_teacher_test_logits", teacher)
    directory = tmp_path / "base"
    assert not study.is_done(profile, "base", directory)
    records = study.run(profile, "base", directory)
    variant = study.study_profile(profile)
    assert len(records) == len(calls) == len(variant.alphas) * len(variant.seeds)
    assert sorted(teacher_calls) == list(variant.seeds)  # one teacher evaluation per seed
    assert study.is_done(profile, "base", directory)
    assert study.check_logits(records, directory) == len(records)
    stored = json.loads(run_path(directory, 0.5, 0).read_text())
    assert stored["test_metrics"]["student"]["bins"] == 15
    assert stored["test_metrics"]["teacher"] == records[0]["test_metrics"]["teacher"]
    study.run(profile, "base", directory)
    assert len(calls) == len(records) and len(teacher_calls) == len(variant.seeds)
    # Without its logits a run is not done; neither is a record from another config.
    logits_path(directory, 1.0, 1).unlink()
    assert not study.is_done(profile, "base", directory)
    with pytest.raises(ValueError, match="condition"):
        study.run(profile, "other", directory)


def test_check_logits_catches_a_mismatch(tmp_path):
    labels = RNG.integers(0, 10, 40)
    logits = RNG.normal(size=(40, 10)).astype("float16")
    record = {"config": {"alpha": 0.0, "seed": 0}}
    record["test_metrics"] = {"student": study.evaluate(logits, labels)}
    write_npz(logits_path(tmp_path, 0.0, 0), test=logits)
    assert study.check_logits([record], tmp_path) == 1
    write_npz(logits_path(tmp_path, 0.0, 0), test=-logits)
    with pytest.raises(ValueError, match="differ"):
        study.check_logits([record], tmp_path)


# --- tables and figures ----------------------------------------------------------------------


def _fake_records(seeds=(0, 1, 2), n=400):
    """Records with the fields the chapter reads (synthetic logits, for the plumbing only)."""
    labels = RNG.integers(0, 10, n)
    onehot = np.eye(10)[labels]
    records = []
    for seed in seeds:
        teacher = study.evaluate(4 * onehot + RNG.normal(size=(n, 10)), labels)
        for alpha in (0.0, 0.5, 1.0):
            logits = (3 + 2 * alpha) * onehot + RNG.normal(size=(n, 10))
            config = {
                "alpha": alpha,
                "seed": seed,
                "epochs": 5,
                "temperature": 10.0,
                "data": {"train_size": 5000, "noise_rate": 0.05},
            }
            metrics = {"student": study.evaluate(logits, labels), "teacher": teacher}
            accuracy = metrics["student"]["accuracy"] + 0.0001 * seed  # as if from float32
            records.append(
                {"config": config, "test_metrics": metrics, "test_accuracy": accuracy}
                | {"test_fidelity": 0.9}
            )
    return records


def test_summary_tables_and_paired_comparisons_from_records():
    records = _fake_records()
    table = study.summary(records)
    assert list(table.index) == ["α = 0", "α = 0.5", "α = 1", "teacher"]
    assert (table["seeds"] == 3).all()
    scores = study.scores_table(records)
    assert len(scores) == 4 * 3
    assert len(study.class_table(records)) == 4 * 3 * 10
    assert study.comparisons(records) == [
        (0.0, 1.0),
        (0.5, 1.0),
        ("teacher", 1.0),
        (0.0, 0.5),
        (0.0, "teacher"),
    ]
    # Larger logits on the true class give the α = 1 fakes higher accuracy than α = 0.
    d = study.paired(scores, "α = 0", "α = 1", "accuracy")
    assert d["mean"] < 0 and d["high"] < 0 and d["n"] == 3
    by_seed = study.by_model_seed(scores, "α = 1", "accuracy")
    assert list(by_seed.index) == [0, 1, 2]
    assert d["mean"] == pytest.approx(
        (study.by_model_seed(scores, "α = 0", "accuracy") - by_seed).mean()
    )
    recall = study.class_differences(records, "recall")
    assert len(recall) == 3 * 10 and set(recall["model"]) == {0.0, 0.5, "teacher"}
    correlation = study.error_correlation(records)
    assert len(correlation) == len(records)
    assert correlation["error_correlation"].dropna().between(-1, 1).all()
    assert study.short_ci([0.5, 0.5, 0.5]) == "50.00 ± 0.00"


def test_pooled_confusion_and_reliability():
    records = _fake_records(seeds=(0, 1))
    pooled = study.pooled_confusion(records)
    assert pooled["teacher"].sum() == 2 * 400  # one teacher per seed, counted once
    assert pooled["α = 0"].sum() == 2 * 400
    np.testing.assert_allclose(study.row_normalise(pooled["α = 1"]).sum(axis=1), 1.0)
    table = study.reliability(study.evaluations(records)[1.0])
    assert len(table) == 15
    assert sum(s["mean"] for s in table["share"]) == pytest.approx(1.0)
    drawn = table[table["drawn"]]
    assert all(r["low"] <= r["confidence"]["mean"] <= r["high"] for _, r in drawn.iterrows())
