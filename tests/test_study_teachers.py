"""The teacher-quality study: the tiny teacher, conditions, shared teachers, the numbers."""

import numpy as np
import pytest

from kdutils.distill.models import build_model
from kdutils.profiles import get_profile
from kdutils.studies import get_study, grid, teachers
from kdutils.studies import grid_stats as ss

ALPHAS = (0.0, 0.5, 1.0)


def test_tiny_teacher_is_smaller_than_the_student():
    tiny = build_model("tiny_teacher")
    student = build_model("report_student")
    assert tiny.count_params() == 4_266 < student.count_params() == 20_490
    assert [type(x).__name__ for x in tiny.layers] == [type(x).__name__ for x in student.layers]
    assert tiny.outputs[0].shape[-1] == 10


def test_conditions_hold_the_base_teacher_and_change_only_the_teacher():
    assert get_study("teachers") is teachers
    for name in ("smoke", "default", "full"):
        profile = get_profile(name)
        base = grid.base_profile(profile)
        names = teachers.conditions(profile)
        assert names[-1] == "tiny" and f"epochs_{base.teacher_epochs}" in names
        for c in names:
            v = teachers.variant(profile, c)
            same = {"teacher": base.teacher, "teacher_epochs": base.teacher_epochs}
            assert v.replace(alphas=base.alphas, **same) == base
            assert set(v.alphas) >= {0.0, 0.5, 1.0}
        tiny = teachers.variant(profile, "tiny")
        assert tiny.teacher == "tiny_teacher"
        assert tiny.teacher_epochs == teachers.settings(profile)["trained"]
    default = get_profile("default")
    assert teachers.conditions(default) == [
        "epochs_1",
        "epochs_2",
        "epochs_3",
        "epochs_5",
        "epochs_10",
        "tiny",
    ]
    assert len(grid.base_profile(default).seeds) >= 3
    assert teachers.variant(default, "tiny").alphas == grid.base_profile(default).alphas
    # The 3-epoch teacher is the studies' base teacher, trained once for every study.
    shared = grid.teacher_directory(grid.variant(default))
    assert grid.teacher_directory(teachers.variant(default, "epochs_3")) == shared
    assert grid.teacher_directory(teachers.variant(default, "epochs_10")) != shared
    assert teachers.label(default, "epochs_3") == "3 epochs (base)"
    assert teachers.label(default, "epochs_10") == "10 epochs (longest)"
    assert teachers.label(default, "epochs_1") == "1 epoch"
    assert teachers.label(default, "tiny") == "tiny, 10 epochs"
    for bad in ("epochs_4", "big"):
        with pytest.raises(ValueError, match="unknown condition"):
            teachers.variant(default, bad)


def test_run_and_is_done_delegate_with_the_condition_variant(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(grid, "run", lambda p, d: seen.append((p, d)) or [])
    profile = get_profile("smoke")
    teachers.run(profile, "tiny", tmp_path)
    assert seen == [(teachers.variant(profile, "tiny"), tmp_path)]
    assert not teachers.is_done(profile, "tiny", tmp_path)


# --- synthetic records, for the arithmetic and plumbing only -----------------------------------


def _record(alpha, seed, val, test):
    return {
        "config": {
            "alpha": alpha,
            "seed": seed,
            "epochs": 2,
            "temperature": 10.0,
            "data": {"train_size": 1000, "noise_rate": 0.05},
        },
        "budgets": [
            {"epochs": 2, "val_accuracy": val, "test_accuracy": test, "test_fidelity": 0.9}
        ],
        "noisy_labels": {"recovery": 0.8, "memorisation": 0.1, "flipped": 50},
        "parameters": 20_490,
        "train_seconds": 1.0,
    }


def _teacher(seed, epochs, parameters, quality):
    # Validation accuracy climbs 1 point an epoch, the same in every run of a seed.
    history = [{"val_accuracy": 0.9 + seed / 1000 + e / 100} for e in range(epochs)]
    return {
        "config": {"seed": seed, "epochs": epochs},
        "history": history,
        "parameters": parameters,
        "val_accuracy": history[-1]["val_accuracy"],
        "test_accuracy": quality + seed / 1000,
        "train_seconds": 1.0,
    }


def fake_study(profile):
    """The weaker the teacher, the higher the alpha validation favours; test would favour 0,
    and the test accuracy at alpha = 0.5 is 3 points below alpha = 1 in every seed."""
    study = {}
    for i, c in enumerate(teachers.conditions(profile)):
        v = teachers.variant(profile, c)
        best = 1.0 if c == "tiny" else 0.5
        records = [
            _record(a, s, 0.9 + 0.05 * (a == best) + s / 1000, test + s / 1000)
            for s in v.seeds
            for a, test in zip(ALPHAS, (0.93, 0.87, 0.9), strict=True)
        ]
        size = 4_266 if c == "tiny" else 1_433_610
        quality = 0.85 if c == "tiny" else 0.95 + i / 100
        study[c] = {
            "records": records,
            "teachers": [_teacher(s, v.teacher_epochs, size, quality) for s in v.seeds],
            "table": ss.final_table(records),
            "label": teachers.label(profile, c),
        }
    return study


@pytest.mark.filterwarnings("ignore:Precision loss")  # differences identical in every seed
def test_condition_numbers_choose_on_validation_and_pair_by_seed():
    profile = get_profile("default")
    study = fake_study(profile)
    tiny, base = (teachers.condition_numbers(study[c]) for c in ("tiny", "epochs_3"))
    assert tiny["best_alpha"] == 1.0 and base["best_alpha"] == 0.5  # not 0, test's favourite
    assert tiny["parameters"] == 4_266 and base["epochs"] == 3
    assert base["gain"]["mean"] == pytest.approx(-0.03)  # 3 points below alpha = 1, every seed
    assert ss.significant(base["gain"]) and not ss.significant(tiny["gain"])
    assert base["zero_vs_one"]["mean"] == pytest.approx(0.03)
    # The student at alpha = 0.5 (0.87) minus its teacher (0.95 + 2/100 for the third condition)
    assert base["student_minus_teacher"]["mean"] == pytest.approx(0.87 - 0.97)
    assert not teachers.summary(study["tiny"]["records"]).empty


def test_teacher_curves_are_seeds_by_epochs_and_shorter_teachers_are_prefixes():
    profile = get_profile("default")
    study = fake_study(profile)
    longest = teachers.teacher_curves(study["epochs_10"])
    short = teachers.teacher_curves(study["epochs_3"])
    seeds = teachers.variant(profile, "epochs_10").seeds  # the studies keep per-seed teachers
    assert longest.shape == (len(seeds), 10) and short.shape[1] == 3
    np.testing.assert_allclose(short, longest[:, :3])
    assert longest[0, -1] - longest[0, -4] == pytest.approx(0.03)  # one point an epoch
    smoke = get_profile("smoke")
    assert teachers.teacher_curves(fake_study(smoke)["epochs_3"]).shape == (2, 3)
