"""The AlexNet-to-small-CNN study: settings, configs, data subset and a tiny run."""

import numpy as np
import pytest

from kdutils.profiles import config_key, get_profile
from kdutils.results import by_seed
from kdutils.studies import cifar_alexnet as ca
from kdutils.studies import get_study


def test_conditions_alphas_and_settings():
    assert get_study("cifar_alexnet") is ca
    profile = get_profile("default")
    assert ca.conditions(profile) == ["teacher", "alpha_1p0", "alpha_0p0", "alpha_0p5"]
    assert [ca.alpha_of(c) for c in ca.CONDITIONS[1:]] == [1.0, 0.0, 0.5]
    with pytest.raises(ValueError, match="unknown condition"):
        ca.alpha_of("alpha_0p3")
    for name in ("smoke", "default", "full"):
        p = ca.settings(get_profile(name))
        assert (p.dataset, p.noise_rate, p.teacher, p.student) == (
            "cifar10",
            0.0,
            "alexnet_cifar",
            "cnn_bn_student",
        )
        assert p.alphas == (1.0, 0.0, 0.5) and p.budgets == (p.epochs,)
    assert len(ca.settings(profile).seeds) >= 3
    full = ca.settings(get_profile("full"))
    assert full.train_size is None and full.teacher_epochs == ca.REPORT["teacher_epochs"] == 20
    assert ca.extra(get_profile("full")) == {"teacher_width": 1.0, "test_size": None}


def test_run_configs_differ_where_runs_differ():
    p = get_profile("default")
    configs = {c: ca.run_config(p, c, 0) for c in ca.CONDITIONS}
    assert configs["teacher"]["width"] == ca.SETTINGS["default"]["teacher_width"]
    key = config_key(ca.teacher_config(p, 0))
    for alpha, c in zip(ca.ALPHAS, ca.CONDITIONS[1:], strict=True):
        assert configs[c]["alpha"] == alpha and configs[c]["teacher"] == key
        assert configs[c]["augmentation"] == {"random_crop_padding": 4, "horizontal_flip": True}
        assert configs[c]["teacher_per_step"] is True
    assert ca.run_config(p, "alpha_0p5", 1)["teacher"] != key
    assert configs["teacher"]["optimizer"] == "sgd" and configs["teacher"]["momentum"] == 0.9


def test_test_subset_is_fixed_and_shared_by_seeds():
    p = get_profile("smoke")
    a, b = ca.load_data(p, 0), ca.load_data(p, 1)
    assert len(a.y_test) == ca.SETTINGS["smoke"]["test_size"]
    np.testing.assert_array_equal(a.x_test, b.x_test)
    assert len(np.unique(a.y_test)) == 10  # a random subset, not the first class of the archive
    assert not np.array_equal(a.y_train[:50], b.y_train[:50])  # but seeds split differently


@pytest.fixture
def tiny(monkeypatch):
    tiny = {
        "train_size": 96,
        "validation_size": 64,
        "test_size": 64,
        "seeds": (0,),
        "teacher_epochs": 1,
        "epochs": 2,
        "batch_size": 32,
        "teacher_width": 0.0625,
    }
    monkeypatch.setitem(ca.SETTINGS, "smoke", tiny)
    return get_profile("smoke")


def test_tiny_study_runs_resumes_and_reports(tiny, tmp_path, monkeypatch):
    # A student run trains the teacher it needs, in the teacher condition's folder.
    study = {"alpha_0p5": ca.run(tiny, "alpha_0p5", tmp_path / "alpha_0p5")}
    assert ca.is_done(tiny, "teacher", tmp_path / "teacher")
    for condition in ca.CONDITIONS:
        study[condition] = ca.run(tiny, condition, tmp_path / condition)
        assert ca.is_done(tiny, condition, tmp_path / condition)

    record = study["alpha_0p5"][0]
    assert record["train_examples"] == 96 and record["test_examples"] == 64
    assert len(record["history"]) == 2
    epoch = record["history"][-1]
    assert {"loss", "val_loss", "hard_loss", "soft_loss", "accuracy", "val_accuracy"} <= set(epoch)
    assert all(np.isfinite(v) for h in record["history"] for v in h.values())
    assert 0.0 <= record["test_fidelity"] <= 1.0
    assert record["teacher_test_accuracy"] == study["teacher"][0]["final_test_accuracy"]
    # alpha = 1 trains on the labels only: its objective is its cross-entropy.
    scratch = study["alpha_1p0"][0]["history"][-1]
    assert scratch["loss"] == pytest.approx(scratch["hard_loss"], rel=1e-5)
    assert study["alpha_0p0"][0]["history"][-1]["val_loss"] == pytest.approx(
        study["alpha_0p0"][0]["history"][-1]["val_soft_loss"], rel=1e-5
    )

    # The stored teacher reproduces its cached logits.
    data = ca.load_data(tiny, 0)
    teacher = ca.get_teacher(tiny, 0, tmp_path / "teacher", data)
    predicted = teacher.model.predict(data.x_val, verbose=0)
    np.testing.assert_allclose(predicted, teacher.logits["val"], atol=1e-5)

    # Resume: nothing is trained again, and the same records come back.
    def refuse(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(ca, "train_teacher", refuse)
    monkeypatch.setattr(ca, "train_student", refuse)
    for condition, records in study.items():
        assert ca.run(tiny, condition, tmp_path / condition) == records
    # A changed setting is a different run.
    monkeypatch.setitem(ca.SETTINGS, "smoke", ca.SETTINGS["smoke"] | {"epochs": 3})
    assert not ca.is_done(tiny, "alpha_0p0", tmp_path / "alpha_0p0")
    assert ca.is_done(tiny, "teacher", tmp_path / "teacher")

    assert list(ca.summary(study["alpha_0p0"]).index) == [0]


def test_by_seed_orders_values_by_seed():
    records = [{"config": {"seed": s}, "final_test_accuracy": a} for s, a in ((2, 0.3), (0, 0.1))]
    assert by_seed(records, "final_test_accuracy").tolist() == [0.1, 0.3]
