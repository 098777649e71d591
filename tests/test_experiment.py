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
    assert {"val_loss", "val_hard_loss", "val_soft_loss", "val_fidelity"} <= set(
        reused[1]["history"][0]
    )
    experiment._COMPILED.clear()
    fresh = run(PROFILE, ALPHAS, 1, tmp_path / "b", teachers=teachers)
    for one, other in zip(reused, fresh, strict=True):
        assert one["history"] and one["config"] == other["config"]
        np.testing.assert_allclose(numbers(one), numbers(other), rtol=1e-6)
    # seed 1 is not seed 0 again: the reused model was reset to seed 1's weights
    seed0 = experiment.load_run(PROFILE, 0.5, 0, tmp_path / "a")
    assert numbers(seed0) != numbers(fresh[1])


def test_validation_scores_are_what_keras_validation_logs():
    """The sweep's students log validation scores from logits computed once per epoch
    (`BudgetEvaluation`); they equal Keras's own validation pass over the same data."""
    from types import SimpleNamespace

    import keras

    from kdutils import Distiller, with_teacher_logits
    from kdutils.distill.models import report_cnn
    from kdutils.distill.repro import set_seed

    rng = np.random.default_rng(0)
    x = rng.random((200, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, 200).astype("int32")
    teacher_logits = rng.normal(0, 3, (200, 10)).astype("float32")
    set_seed(0)
    model = Distiller(report_cnn((4, 8)), alpha=0.3, temperature=4.0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    inputs = with_teacher_logits(x, teacher_logits)
    model.fit(inputs, y, batch_size=64, epochs=1, verbose=0)
    # Keras averages its hard, soft and fidelity means per batch, unweighted: with equal
    # batches that is the mean over examples, which validation_scores computes
    logged = model.evaluate(inputs, y, batch_size=50, return_dict=True, verbose=0)
    ours = experiment.validation_scores(
        model.student.predict(x, verbose=0),
        SimpleNamespace(y_val=y),
        SimpleNamespace(logits={"val": teacher_logits}),
        0.3,
        4.0,
    )
    assert set(ours) <= set(logged)
    for name, value in ours.items():
        np.testing.assert_allclose(value, logged[name], rtol=1e-4, err_msg=name)
