"""The study runner and the performance accounting it is measured with."""

import keras
import pytest

from kdutils import perf, studies
from kdutils.profiles import get_profile
from kdutils.studies import grid


def test_every_study_module_has_the_interface():
    for name in studies.available_studies():
        module = studies.get_study(name)
        for attribute in ("TITLE", "conditions", "run", "is_done", "summary"):
            assert hasattr(module, attribute), f"{name} lacks {attribute}"
        for profile in ("smoke", "default", "full"):
            conditions = module.conditions(get_profile(profile))
            assert conditions, f"{name} has no conditions in {profile}"
            assert all(c.replace("_", "").isalnum() for c in conditions), conditions


def test_unknown_study_and_condition_are_refused():
    with pytest.raises(ValueError, match="unknown study"):
        studies.get_study("nope")
    if "theory" in studies.available_studies():
        with pytest.raises(ValueError, match="has no condition"):
            studies.run_condition(get_profile("smoke"), "theory", "nope")


def test_run_condition_writes_records_that_load_study_finds(tmp_path):
    if "theory" not in studies.available_studies():
        pytest.skip("the theory study is not written yet")
    profile = get_profile("smoke")
    condition = studies.get_study("theory").conditions(profile)[0]
    records = studies.run_condition(profile, "theory", condition, tmp_path)
    assert records
    directory = studies.study_dir(profile, "theory", condition, tmp_path)
    assert studies.get_study("theory").is_done(profile, condition, directory)
    loaded = studies.load_study(profile, "theory", tmp_path)
    assert len(loaded[condition]) == len(records)


def test_study_variants_share_teachers_only_when_their_configs_match():
    profile = get_profile("default")
    base = grid.variant(profile)
    assert (base.train_size, base.epochs, base.teacher_epochs) == (5000, 5, 3)
    hotter = grid.variant(profile, temperature=2.0)
    noisier = grid.variant(profile, noise_rate=0.2)
    assert grid.teacher_directory(hotter) == grid.teacher_directory(base)
    assert grid.teacher_directory(noisier) != grid.teacher_directory(base)


def test_flops_of_the_report_student_by_hand():
    student = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(16, 3, strides=2, padding="same"),  # 14x14x16 outputs
            keras.layers.MaxPooling2D(2, strides=1, padding="same"),
            keras.layers.Conv2D(32, 3, strides=2, padding="same"),  # 7x7x32 outputs
            keras.layers.Flatten(),
            keras.layers.Dense(10),
        ]
    )
    by_hand = 2 * (14 * 14 * 16 * 9 * 1 + 7 * 7 * 32 * 9 * 16 + 10 * 7 * 7 * 32)
    assert perf.forward_flops(student) == by_hand
    assert perf.training_flops(student) == 3 * by_hand
    assert perf.matmul_rate(size=128, repeats=2) > 0
    assert perf.peak_rss_mib() > 10


def test_performance_chapter_lists_only_speed_benchmarks(tmp_path):
    """Other timings in results/benchmarks/ (a study's GPU timing) must not break the table."""
    from kdutils.results import ROOT

    stored = perf.speed_benchmarks(ROOT / "results" / "benchmarks")
    assert "cpu" in stored and "cifar_features_gpu" not in stored
    table = perf.benchmarks_overview(stored)
    assert list(table.index) == list(stored) and table["fused s/epoch"].gt(0).all()

    (tmp_path / "cpu.json").write_text((ROOT / "results/benchmarks/cpu.json").read_text())
    (tmp_path / "study_gpu.json").write_text('{"date": "2026-11-26", "what": "a timing"}')
    assert list(perf.speed_benchmarks(tmp_path)) == ["cpu"]
