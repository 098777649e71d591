"""The label-noise study: conditions, shared teachers, recovery bookkeeping, numbers, figures."""

import matplotlib

matplotlib.use("Agg")

import json

import matplotlib.pyplot as plt
import numpy as np
import pytest

from kdutils.profiles import config_key, get_profile
from kdutils.studies import get_study, grid, noise
from kdutils.studies import grid_stats as ss
from kdutils.teacher_cache import teacher_paths

ALPHAS = (0.0, 0.5, 1.0)


def test_conditions_are_noise_rates_and_share_the_base_teacher():
    assert get_study("noise") is noise
    for name in ("smoke", "default", "full"):
        profile = get_profile(name)
        names = noise.conditions(profile)
        assert names[:2] == ["rate_0p0", "rate_0p05"] and "rate_0p4" in names
        assert all(n.replace("_", "").isalnum() for n in names)
        for c in names:
            v = noise.variant(profile, c)
            assert v.noise_rate == noise.rate_of(profile, c)
            base = grid.base_profile(profile)
            assert v.replace(noise_rate=0.05, alphas=base.alphas) == base
            assert set(v.alphas) >= {0.0, 0.5, 1.0}
    default = get_profile("default")
    assert noise.conditions(default) == [
        "rate_0p0",
        "rate_0p05",
        "rate_0p1",
        "rate_0p2",
        "rate_0p4",
    ]
    assert len(grid.base_profile(default).seeds) >= 3
    assert noise.variant(default, "rate_0p2").alphas == grid.base_profile(default).alphas
    # 5% is the studies' base condition: the same teachers as every other study's base.
    base = noise.variant(default, "rate_0p05")
    assert grid.teacher_directory(base) == grid.teacher_directory(grid.variant(default))
    noisy = noise.variant(default, "rate_0p2")
    assert grid.teacher_directory(noisy) != grid.teacher_directory(base)
    assert noisy.teacher_config(0)["data"]["noise_rate"] == 0.2  # teacher sees the same noise
    with pytest.raises(ValueError, match="unknown condition"):
        noise.rate_of(default, "rate_0p3")


def test_run_and_is_done_delegate_with_the_condition_variant(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(grid, "run", lambda p, d: seen.append((p, d)) or [])
    profile = get_profile("smoke")
    noise.run(profile, "rate_0p4", tmp_path)
    assert seen == [(noise.variant(profile, "rate_0p4"), tmp_path)]
    assert not noise.is_done(profile, "rate_0p4", tmp_path)


# --- synthetic records, for the arithmetic and plumbing only -----------------------------------


def _record(rate, alpha, seed, val, test, recovery):
    flipped = int(rate * 100)
    noisy = {"recovery": None, "memorisation": None, "flipped": 0}
    if flipped:
        noisy = {"recovery": recovery, "memorisation": 1 - recovery - 0.05, "flipped": flipped}
    return {
        "config": {
            "alpha": alpha,
            "seed": seed,
            "epochs": 2,
            "temperature": 10.0,
            "data": {"train_size": 1000, "noise_rate": rate},
        },
        "budgets": [
            {"epochs": 1, "val_accuracy": 0.5, "test_accuracy": 0.5, "test_fidelity": 0.5},
            {"epochs": 2, "val_accuracy": val, "test_accuracy": test, "test_fidelity": 0.9},
        ],
        "noisy_labels": noisy,
        "train_seconds": 1.0,
        "parameters": 20_490,
    }


def _teacher(rate, seed, recovery):
    flipped = int(rate * 100)
    return {
        "config": {"seed": seed, "epochs": 3},
        "val_accuracy": 0.95,
        "test_accuracy": 0.96 - rate / 10 + seed / 1000,
        "noisy_labels": {"recovery": recovery if flipped else None, "memorisation": 0.1}
        | {"flipped": flipped},
        "train_seconds": 2.0,
    }


def fake_study(rates=(0.0, 0.05, 0.4), seeds=(0, 1, 2)):
    """Validation favours alpha = 0.5 while test favours alpha = 1; recovery at alpha = 0 is
    exactly 10 points above alpha = 1 and 5 points above the teacher, in every seed."""
    study = {}
    for rate in rates:
        records = []
        for seed in seeds:
            for alpha in ALPHAS:
                val = 0.9 + 0.05 * (alpha == 0.5) + seed / 1000
                test = 0.9 + 0.05 * (alpha == 1.0) + seed / 1000
                recovery = 0.8 - 0.1 * alpha + seed / 100
                records.append(_record(rate, alpha, seed, val, test, recovery))
        teachers = [_teacher(rate, s, 0.75 + s / 100) for s in seeds]
        study[rate] = {"records": records, "teachers": teachers, "table": ss.final_table(records)}
    return study


def test_final_table_reads_recovery_at_the_last_budget():
    study = fake_study()
    table = study[0.4]["table"]
    assert set(table["epochs"]) == {2} and len(table) == 9
    row = table[(table["alpha"] == 0.0) & (table["seed"] == 2)].iloc[0]
    assert row["recovery"] == pytest.approx(0.82) and row["memorisation"] == pytest.approx(0.13)
    assert study[0.0]["table"]["recovery"].isna().all()  # nothing flipped, nothing to recover


@pytest.mark.filterwarnings("ignore:Precision loss")  # differences identical in every seed
def test_best_alpha_is_chosen_on_validation_and_differences_are_paired():
    n = noise.rate_numbers(fake_study()[0.4])
    assert n["best_alpha"] == 0.5  # not 1.0, which the test set would have picked
    assert n["gain"]["mean"] == pytest.approx(-0.05) and n["gain"]["sd"] == pytest.approx(0)
    assert n["rec_zero_vs_one"]["mean"] == pytest.approx(0.1)
    assert n["rec_zero_vs_one"]["half_width"] == pytest.approx(0, abs=1e-12)
    assert n["rec_zero_vs_teacher"]["mean"] == pytest.approx(0.05)
    assert n["rec_best_vs_one"]["mean"] == pytest.approx(0.05)
    assert n["most_recovering_alpha"] == 0.0
    assert ss.significant(n["rec_zero_vs_one"]) and not ss.significant(
        n["gain"] | {"low": -1, "high": 1}
    )


def test_run_page_summary_has_recovery_only_where_labels_were_flipped():
    study = fake_study()
    page = noise.summary(study[0.4]["records"])
    assert page.loc[0.0, "recovery"].startswith("81.00%")
    assert "recovery" not in noise.summary(study[0.0]["records"])
    n = noise.rate_numbers(study[0.0])
    assert n["flipped"] == 0 and "recovery" not in n  # nothing flipped, nothing to recover


def test_teacher_records_must_match_the_variant(tmp_path, monkeypatch):
    monkeypatch.setenv("KDUTILS_RESULTS_DIR", str(tmp_path))
    v = noise.variant(get_profile("smoke"), "rate_0p4")
    directory = grid.teacher_directory(v)
    assert str(directory).startswith(str(tmp_path))
    with pytest.raises(FileNotFoundError):
        ss.teacher_records(v)
    for seed in v.seeds:
        path = teacher_paths(directory, seed)[0]
        path.parent.mkdir(parents=True, exist_ok=True)
        key = config_key(v.teacher_config(seed))
        path.write_text(json.dumps({"key": key, "seed": seed}))
    assert [r["seed"] for r in ss.teacher_records(v)] == list(v.seeds)
    path.write_text(json.dumps({"key": "stale"}))
    with pytest.raises(FileNotFoundError, match="no teacher record"):
        ss.teacher_records(v)


def test_band_and_curves_draw_means_with_intervals():
    fig, ax = plt.subplots()
    table = fake_study()[0.4]["table"]
    colours = ss.curves(ax, table.assign(h=1.0), "recovery", "h", {1.0: "x"})
    assert colours == ["C0"] and ax.get_legend_handles_labels()[1] == ["x"]
    ss.band(ax, [0.7, 0.8, 0.9], "C1")
    assert np.isclose(ax.lines[-1].get_ydata()[0], 0.8)
    plt.close(fig)
