"""A process that trains several seeds reuses one compiled student model: same training."""

import numpy as np

from kdutils import experiment
from kdutils.profiles import get_profile

PROFILE = get_profile("smoke").override(seeds=[0, 1], train_size=200, epochs=2)
ALPHAS = [0.0, 0.5, 1.0]


def numbers(record: dict) -> list[float]:
    """Every per-epoch and per-budget number of a record, in a fixed order."""
    rows = record["history"] + record["budgets"]
    return [float(v) for row in rows for _, v in sorted(row.items()) if isinstance(v, float)]


def test_reused_model_trains_like_a_new_one(tmp_path):
    teachers = tmp_path / "teachers"
    experiment._COMPILED.clear()
    run = experiment.run_students
    reused = run(PROFILE, ALPHAS, 0, tmp_path / "a", teachers=teachers)
    reused = run(PROFILE, ALPHAS, 1, tmp_path / "a", teachers=teachers)
    assert len(experiment._COMPILED) == 1  # seed 1 reused seed 0's compiled model
    experiment._COMPILED.clear()
    fresh = run(PROFILE, ALPHAS, 1, tmp_path / "b", teachers=teachers)
    for one, other in zip(reused, fresh, strict=True):
        assert one["history"] and one["config"] == other["config"]
        np.testing.assert_allclose(numbers(one), numbers(other), rtol=1e-6)
    # seed 1 is not seed 0 again: the reused model was reset to seed 1's weights
    seed0 = experiment.load_run(PROFILE, 0.5, 0, tmp_path / "a")
    assert numbers(seed0) != numbers(fresh[1])
