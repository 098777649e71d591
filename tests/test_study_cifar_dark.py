"""The CIFAR-10 'dark knowledge' study: the report's setup, finite losses at T = 1 and 1.01,
the tutorial's NaN, the fused multi-temperature students, and a tiny run."""

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import gradient, to_numpy

from kdutils.distill import losses
from kdutils.distill.distiller import with_teacher_logits
from kdutils.distill.models import build_model
from kdutils.profiles import config_key, get_profile
from kdutils.studies import cifar_dark as cd
from kdutils.studies import get_study, load_study
from kdutils.teacher_cache import load_cached


def log_softmax64(z):
    z = np.asarray(z, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def kd_reference(labels, teacher, student, alpha, temperature):
    """alpha * CE + (1 - alpha) * T^2 * KL(p_t || p_s) at T, in float64."""
    ce = -log_softmax64(student)[np.arange(len(labels)), labels].mean()
    log_p, log_q = log_softmax64(teacher / temperature), log_softmax64(student / temperature)
    kl = (np.exp(log_p) * (log_p - log_q)).sum(axis=-1).mean()
    return alpha * ce + (1 - alpha) * temperature**2 * kl


def confident_batch(gap: float = 150.0, n: int = 8, seed: int = 0):
    """Teacher logits with some classes `gap` below the top one; ordinary student logits."""
    rng = np.random.default_rng(seed)
    teacher = rng.normal(size=(n, 10)) * 3
    teacher[:, 0] += gap / 2
    teacher[:, 9] -= gap / 2
    student = rng.normal(size=(n, 10)) * 2
    return teacher.astype("float32"), student.astype("float32")


def test_report_numbers_and_conventions():
    assert get_study("cifar_dark") is cd
    r = cd.REPORT
    assert (r["teacher"], r["light_scratch"], r["light_kd"]) == (80.30, 70.94, 71.01)
    assert (r["simple_scratch"], r["simple_kd"]) == (62.46, 62.50)
    assert r["temperature"] == {2.0: 71.01, 1.5: 70.65, 1.01: 70.44}
    assert r["weights"] == {0.75: 71.01, 0.5: 70.67, 0.25: 71.00}
    # CE 0.75 / KD 0.25 is alpha = 0.75: alpha weights the hard labels.
    assert cd.ALPHA_KD == r["ce_weight"] == 1 - r["kd_weight"] == 0.75 and cd.T_KD == 2.0
    assert build_model("light_nn", (32, 32, 3)).count_params() == 267_738
    assert build_model("simple_nn", (32, 32, 3)).count_params() == 34_290


def test_conditions_runs_and_settings():
    assert cd.conditions(get_profile("default")) == ["teacher", "light_nn", "simple_nn"]
    light = {run.name: run for run in cd.RUNS["light_nn"]}
    assert {(r.alpha, r.temperature) for r in light.values()} == {
        (1.0, 2.0),
        (0.75, 2.0),
        (0.75, 1.5),
        (0.75, 1.01),
        (0.75, 1.0),
        (0.5, 2.0),
        (0.25, 2.0),
    }
    assert all(r.model == "light_nn" for r in light.values())
    assert [(r.name, r.model) for r in cd.RUNS["simple_nn"]] == [
        ("scratch", "simple_nn"),
        ("kd", "simple_nn"),
    ]
    for name in light:
        assert name.replace("_", "").isalnum()  # docname-safe, no dots
    assert {cd.temperature_key(t) for t in cd.TEMPERATURES} | {
        cd.weight_key(a) for a in cd.WEIGHTS
    } == {f"light_nn/{n}" for n in light if n != "scratch"}
    default, full = cd.settings("default"), cd.settings("full")
    assert len(default.seeds) >= 3 and default.epochs == 10 and default.test_size is None
    assert full.train_size is None and full.epochs == full.teacher_epochs == 10
    assert len(full.seeds) >= 5 and cd.teacher_name(full) == "ResNet-18"
    assert cd.teacher_name(default) == "ResNet-18" and default.teacher_profile == "full"
    assert full.batch_size == default.batch_size == 128 and full.learning_rate == 1e-3


def test_run_configs_share_the_teacher_and_differ_where_runs_differ():
    s = cd.settings("default")
    kd, t1 = cd.RUNS["light_nn"][1], cd.RUNS["light_nn"][4]
    a, b = cd.run_config(s, "light_nn", kd, 0), cd.run_config(s, "light_nn", t1, 0)
    assert a["teacher"] == b["teacher"] == config_key(cd.teacher_config(s, 0))
    assert a != b and (a["alpha"], a["temperature"]) == (0.75, 2.0) and b["temperature"] == 1.0
    assert cd.run_config(s, "light_nn", kd, 1)["teacher"] != a["teacher"]
    with pytest.raises(ValueError, match="unknown condition"):
        cd.is_done(get_profile("default"), "ensemble", "/nonexistent")


@pytest.mark.parametrize("temperature", [1.0, 1.01])
def test_our_loss_is_finite_where_the_tutorials_is_nan(temperature):
    teacher, student = confident_batch()
    assert cd.float32_zeros(teacher, temperature).all()  # p_t has exact zeros in float32
    ours = float(to_numpy(losses.distillation_loss(teacher, student, temperature)))
    reference = kd_reference(np.zeros(8, int), teacher, student, 0.0, temperature)
    assert math.isfinite(ours)
    np.testing.assert_allclose(ours, reference, rtol=1e-5)
    # The tutorial's formula logs NaN, but its gradient for the student is still finite and
    # the same as ours: training goes on normally while the logged loss is NaN.
    assert math.isnan(float(to_numpy(cd.tutorial_kd_loss(teacher, student, temperature))))
    g_tutorial = gradient(lambda s: cd.tutorial_kd_loss(teacher, s, temperature), student)
    g_ours = gradient(lambda s: losses.distillation_loss(teacher, s, temperature), student)
    assert np.isfinite(g_tutorial).all()
    np.testing.assert_allclose(g_tutorial, g_ours, rtol=1e-4, atol=1e-7)


def test_tutorial_loss_matches_ours_without_underflow():
    teacher, student = confident_batch(gap=150.0)
    assert not cd.float32_zeros(teacher, 2.0).any()  # at T = 2 a gap of 150 is only 75
    tutorial = float(to_numpy(cd.tutorial_kd_loss(teacher, student, 2.0)))
    np.testing.assert_allclose(
        tutorial, kd_reference(np.zeros(8, int), teacher, student, 0.0, 2.0), rtol=1e-5
    )


def test_underflow_threshold_and_nan_batches():
    gap = cd.underflow_gap()
    assert 103.0 < gap < 105.0
    assert np.exp(np.float32(-gap)) == 0 and np.exp(np.float32(-(gap - 0.5))) > 0
    np.testing.assert_allclose(cd.underflow_gap(1.5), 1.5 * gap, atol=0.02)
    logits = np.zeros((10, 10), np.float32)
    logits[3, 0] = gap + 1  # example 3 underflows at T = 1 but not at T = 1.5
    logits[7, 0] = 1.5 * gap + 2  # example 7 underflows at both
    assert cd.float32_zeros(logits, 1.0).tolist() == [i in (3, 7) for i in range(10)]
    assert cd.float32_zeros(logits, 1.5).tolist() == [i == 7 for i in range(10)]
    assert cd.nan_batches(logits, 1.0, 4) == 2 and cd.nan_batches(logits, 1.0, 5) == 2
    assert cd.nan_batches(logits, 1.5, 4) == 1 and cd.nan_batches(logits, 2.0 * gap, 4) == 0
    scores = cd.logit_scores(logits, 4)
    assert scores["tutorial_zero_examples"]["1"] == 2 and scores["train_batches"] == 3
    assert scores["tutorial_nan_batches"]["1.5"] == 1
    np.testing.assert_allclose(scores["train_max_logit_gap"], 1.5 * gap + 2, rtol=1e-6)


def test_normalise_is_the_tutorials():
    x = np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32)
    out = cd.normalise(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[..., 1], (x[..., 1] - 0.456) / 0.224, rtol=1e-5)


def test_multi_distiller_trains_each_student_on_its_own_loss():
    runs = [(1.0, 2.0), (0.75, 1.01), (0.25, 1.0)]  # (alpha, T)
    students = [build_model("simple_nn", (32, 32, 3)) for _ in runs]
    model = cd.MultiDistiller(students, [a for a, _ in runs], [t for _, t in runs])
    rng = np.random.default_rng(1)
    x = rng.normal(size=(16, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, 16).astype("int32")
    teacher, _ = confident_batch(gap=150.0, n=16)  # underflows at T = 1 and 1.01
    inputs = with_teacher_logits(x, teacher)
    logits = model(inputs, training=False)
    loss = float(to_numpy(model.compute_loss(inputs, y, logits, training=False)))
    per_student = to_numpy(logits).astype(np.float64)
    reference = sum(
        kd_reference(y, teacher, per_student[:, i], a, t) for i, (a, t) in enumerate(runs)
    )
    assert math.isfinite(loss)
    np.testing.assert_allclose(loss, reference, rtol=1e-5)
    with pytest.raises(ValueError, match="one temperature per student"):
        cd.MultiDistiller([build_model("simple_nn", (32, 32, 3))], [0.5], [1.0, 2.0])


@pytest.fixture
def tiny(monkeypatch):
    """A tiny `full` profile that trains its teachers, and a `smoke` one that borrows them."""
    lender = cd.Settings(
        train_size=192,
        validation_size=64,
        test_size=64,
        seeds=(0, 1),
        epochs=1,
        teacher_epochs=1,
        teacher_widths=(4, 8),
        teacher_blocks=(1, 1),
        batch_size=64,
    )
    borrower = dataclasses.replace(
        lender, train_size=128, seeds=(0,), epochs=2, teacher_profile="full"
    )
    monkeypatch.setitem(cd.SETTINGS, "full", lender)
    monkeypatch.setitem(cd.SETTINGS, "smoke", borrower)
    monkeypatch.setitem(
        cd.RUNS, "light_nn", tuple(r for r in cd.RUNS["light_nn"] if r.name in ("kd", "t_1"))
    )
    return get_profile("smoke")


def test_borrowing_needs_the_same_splits(tiny):
    s = cd.settings(tiny)
    assert cd.check_borrowable(s) is cd.SETTINGS["full"]
    assert cd.teacher_config(s, 0) == cd.teacher_config(cd.SETTINGS["full"], 0)
    directory = Path("/r/smoke/studies/cifar_dark/light_nn")
    assert cd.teacher_dir(s, directory) == Path("/r/full/studies/cifar_dark/teacher")
    for change in ({"validation_size": 32}, {"train_size": 500}, {"seeds": (7,)}):
        with pytest.raises(ValueError, match="cannot borrow"):
            cd.check_borrowable(dataclasses.replace(s, **change))
    default = cd.settings("default")
    assert default.teacher_profile == "full" and default.train_size == 10_000


def test_tiny_study_runs_resumes_and_reports(tiny, tmp_path, monkeypatch):
    root = tmp_path / "smoke" / "studies" / "cifar_dark"
    study = {c: cd.run(tiny, c, root / c) for c in ("simple_nn", "light_nn")}
    # The students trained the teacher they needed, in the lending profile's folder.
    lender = tmp_path / "full" / "studies" / "cifar_dark" / "teacher"
    assert cd.is_done(get_profile("full"), "teacher", lender) is False  # seed 1 not trained
    assert load_cached(cd.teacher_spec(cd.SETTINGS["full"], 0, lender)) is not None
    assert not (root / "teacher").exists()
    study["teacher"] = cd.run(tiny, "teacher", root / "teacher")
    assert cd.is_done(tiny, "teacher", root / "teacher")
    teacher = study["teacher"][0]
    assert teacher["train_examples"] == 192 and teacher["test_examples"] == 64
    s = cd.settings(tiny)
    borrowed = cd.teacher_for(s, 0, root / "teacher", cd.load_data(s, 0))
    record, logits = borrowed.record, borrowed.logits
    assert record == teacher and len(logits["train"]) == 128 and len(logits["val"]) == 64
    assert set(teacher["tutorial_nan_batches"]) == {"1", "1.01", "1.5", "2"}
    for records in study.values():
        for r in records:
            assert all(math.isfinite(v) for epoch in r["history"] for v in epoch.values())
            assert 0.0 <= r["test_accuracy"] <= 1.0
    students = study["simple_nn"] + study["light_nn"]
    assert len(students) == 4 and all(r["all_losses_finite"] for r in students)
    assert all(len(r["history"]) == 2 and "soft_loss" in r["history"][0] for r in students)
    scratch, kd = study["simple_nn"][0], study["simple_nn"][1]
    assert scratch["config"]["alpha"] == 1.0 and kd["config"]["alpha"] == 0.75

    def refuse(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(cd, "train_teacher", refuse)
    monkeypatch.setattr(cd, "train_students", refuse)
    for condition, records in study.items():
        assert cd.run(tiny, condition, root / condition) == records
    changed = dataclasses.replace(cd.SETTINGS["smoke"], epochs=3)
    monkeypatch.setitem(cd.SETTINGS, "smoke", changed)
    assert not cd.is_done(tiny, "simple_nn", root / "simple_nn")
    assert cd.is_done(tiny, "teacher", root / "teacher")

    summary = cd.summary(study["simple_nn"])
    assert list(summary.index.get_level_values("run")) == ["scratch", "kd"]
    runs = cd.runs_of(study)
    assert len(cd.accuracies(runs, "light_nn/t_1")) == 1
    assert not cd.complete(study)
    d = cd.differences(study)
    assert list(d.index) == ["SimpleNN: KD − scratch", "T = 1 − T = 2"]  # the runs trained here
    assert math.isnan(d.loc["T = 1 − T = 2", "report (points)"])  # the report has no T = 1


def fake_study(accuracies: dict[str, list[float]]) -> dict[str, list[dict]]:
    """Records with only a config and a test accuracy, for run keys such as 'light_nn/kd'."""
    study: dict[str, list[dict]] = {}
    for key, values in accuracies.items():
        condition, _, run = key.partition("/")
        for seed, value in enumerate(values):
            config = {"seed": seed} | ({"run": run} if run else {})
            study.setdefault(condition, []).append({"config": config, "test_accuracy": value})
    return study


def test_paired_differences_seed_sd_and_noise_band():
    study = fake_study({"light_nn/kd": [0.60, 0.62, 0.61], "light_nn/scratch": [0.58, 0.61, 0.60]})
    d = cd.differences(study)
    assert list(d.index) == ["LightNN: KD − scratch"]
    row = d.loc["LightNN: KD − scratch"]
    per_seed = np.array([2.0, 1.0, 1.0])  # points, seed by seed
    half = 4.302653 * per_seed.std(ddof=1) / np.sqrt(3)  # t(0.975, 2)
    np.testing.assert_allclose([row["mean"], row["half_width"]], [4 / 3, half], rtol=1e-5)
    assert row["report (points)"] == 0.07 and not row["excludes 0"] and row["report inside CI"]
    runs = cd.runs_of(study)
    sd = cd.seed_sd(runs, ["light_nn/kd", "light_nn/scratch"])
    np.testing.assert_allclose(sd, np.sqrt((1.0 + 7 / 3) / 2))  # pooled variances 1 and 7/3
    np.testing.assert_allclose(cd.noise_band(sd), 1.96 * np.sqrt(2) * sd)


def test_stored_full_profile_records_match_their_configs_and_are_finite():
    study = load_study(get_profile("full"), "cifar_dark")
    if not study:
        pytest.skip("no stored results of the full profile")
    s = cd.settings("full")
    for condition, records in study.items():
        for r in records:
            seed = r["config"]["seed"]
            if condition == "teacher":
                assert r["config"] == cd.teacher_config(s, seed)
                assert r["trainable_parameters"] == 11_173_962
            else:
                run = next(x for x in cd.RUNS[condition] if x.name == r["config"]["run"])
                assert r["config"] == cd.run_config(s, condition, run, seed)
                assert r["all_losses_finite"] and r["train_examples"] == 45_000
            assert all(math.isfinite(v) for epoch in r["history"] for v in epoch.values())
